"""Mail to the contact address, posted by SendGrid Inbound Parse.

This hook only checks the token, reads the post and hands it to ``digestmail.inbound``,
which stores it raw before anything reads it: every post that is a message at all is
kept and answered 2xx (SendGrid retries a 5xx, which could only store it twice).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from digestmail import inbound
from digestmail.config import Settings
from digestmail.formdata import is_form
from digestmail.web.deps import database_of, read_body, settings_of

router = APIRouter()


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
