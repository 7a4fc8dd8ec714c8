"""SendGrid's posts: Inbound Parse (mail to us) and the Event Webhook (what became of ours).

Both hooks only check who is posting, read the post and hand it off, the way anymail's
webhook views verify, parse and hand off:

- ``/hooks/sendgrid/inbound`` checks the token and hands the post to
  ``digestmail.inbound``, which stores it raw before anything reads it: every post that
  is a message at all is kept and answered 2xx (SendGrid retries a 5xx, which could
  only store it twice).
- ``/hooks/sendgrid/events`` checks SendGrid's signature over the raw body, reads the
  batch (``events.normalise``) and hands it to ``events.receive``, which stores every
  event before the policy looks at any.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from digestmail import events, inbound
from digestmail.config import Settings
from digestmail.events import normalise, webhook
from digestmail.formdata import is_form
from digestmail.web.deps import database_of, read_body, settings_of

log = logging.getLogger(__name__)
router = APIRouter()

# SendGrid posts batches of up to a few thousand events (well under 2 MB); larger
# bodies are refused before they are read whole.
EVENTS_MAX_BYTES = 5 * 1024 * 1024


def _token_ok(settings: Settings, given: str | None) -> bool:
    expected = settings.inbound_token.get_secret_value() if settings.inbound_token else ""
    return bool(expected) and hmac.compare_digest(
        (given or "").encode("utf-8"), expected.encode("utf-8")
    )


@router.post("/hooks/sendgrid/inbound")
async def sendgrid_inbound(request: Request) -> Response:
    settings = settings_of(request)
    given = request.query_params.get("token")
    if not given:
        return PlainTextResponse("token required\n", status_code=401)
    if not _token_ok(settings, given):
        return PlainTextResponse("forbidden\n", status_code=403)
    content_type = request.headers.get("content-type", "")
    if not is_form(content_type):
        return PlainTextResponse("expected a form post (multipart/form-data)\n", status_code=415)
    body = await read_body(request, inbound.MAX_POST_BYTES)
    if body is None:
        return PlainTextResponse("the post is larger than any message\n", status_code=413)
    if not body:
        return PlainTextResponse("the post is empty\n", status_code=400)
    receipt = await run_in_threadpool(
        inbound.receive, settings, database_of(request), content_type, body
    )
    return JSONResponse({"stored": True, "action": receipt.action.value})


@router.post("/hooks/sendgrid/events")
async def sendgrid_events(request: Request) -> Response:
    settings = settings_of(request)
    if settings.sendgrid_webhook_key is None:
        log.error(
            "Event Webhook post refused: no verification key is configured "
            "(DIGESTMAIL_SENDGRID_WEBHOOK_KEY); unsigned events are never accepted"
        )
        return PlainTextResponse("event webhook not configured\n", status_code=503)
    body = await read_body(request, EVENTS_MAX_BYTES)
    if body is None:
        return PlainTextResponse("the batch is larger than 5 MB\n", status_code=413)
    try:
        webhook.verify(
            settings.sendgrid_webhook_key.get_secret_value(),
            body,
            request.headers.get(webhook.SIGNATURE_HEADER),
            request.headers.get(webhook.TIMESTAMP_HEADER),
        )
    except webhook.BadSignature as exc:
        log.warning("Event Webhook post refused: %s", exc.reason)
        return PlainTextResponse(f"{exc.reason}\n", status_code=401)
    try:
        batch = normalise.parse_sendgrid(body)
    except normalise.NotABatch as exc:
        log.warning("Event Webhook post refused: %s", exc.reason)
        return PlainTextResponse(f"{exc.reason}\n", status_code=400)
    receipt = await run_in_threadpool(events.receive, database_of(request), settings, batch.events)
    return JSONResponse(
        {
            "received": receipt.received + batch.duplicates + len(batch.refused),
            "stored": receipt.stored,
            "duplicates": receipt.duplicates + batch.duplicates,
            "refused": [{"index": r.index, "reason": r.reason} for r in batch.refused],
        }
    )
