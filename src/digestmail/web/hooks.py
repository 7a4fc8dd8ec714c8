"""Mail to the contact address, posted by SendGrid Inbound Parse.

Subscribe and unsubscribe by email both end in a confirmation email, because the
From header can be forged; every message is kept for staff, whatever it says.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass
from email import message_from_string, policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from digestmail import confirmation, subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import InboundMessage, SubscriberSource, utcnow
from digestmail.transports.base import TransportError
from digestmail.web.deps import database_of, settings_of

log = logging.getLogger(__name__)
router = APIRouter()

# SendGrid accepts messages up to 30 MB; python-multipart's default part limit is 1 MB.
MAX_PART_SIZE = 32 * 1024 * 1024
_UNSUBSCRIBE = re.compile(r"\b(unsubscribe|unsub|remove me)\b", re.IGNORECASE)
_SUBSCRIBE = re.compile(r"\bsubscribe\b", re.IGNORECASE)
_AUTO = re.compile(r"^auto-submitted:\s*auto-", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Inbound:
    sender: str  # the bare address from the From header (or the envelope)
    recipients: list[str]
    subject: str
    text: str
    headers: str


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _recode(value: str, charset: str | None) -> str:
    """Honour SendGrid's ``charsets`` for fields Starlette decoded as Latin-1 fallback."""
    if not charset or charset.lower().replace("_", "-") in ("utf-8", "utf8"):
        return value
    try:
        return value.encode("latin-1").decode(charset)
    except (UnicodeError, LookupError):
        return value


def parse_post(form: FormData) -> Inbound:
    """The parts of an Inbound Parse post we use, in "parsed" or "raw" (``email``) mode."""
    try:
        charsets = json.loads(_field(form, "charsets") or "{}")
    except ValueError:
        charsets = {}
    if not isinstance(charsets, dict):
        charsets = {}

    def get(name: str) -> str:
        return _recode(_field(form, name), charsets.get(name))

    raw = get("email")
    subject, text, headers, from_header = get("subject"), get("text"), get("headers"), get("from")
    to_header = get("to")
    if raw and not (text or subject):
        message = message_from_string(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        subject = str(message.get("subject", ""))
        from_header = str(message.get("from", ""))
        to_header = str(message.get("to", ""))
        headers = "".join(f"{k}: {v}\n" for k, v in message.items())
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
    try:
        envelope = json.loads(get("envelope") or "{}")
    except ValueError:
        envelope = {}
    if not isinstance(envelope, dict):
        envelope = {}
    sender = parseaddr(from_header)[1] or str(envelope.get("from") or "")
    recipients = [addr for _, addr in getaddresses([to_header]) if addr]
    env_to = envelope.get("to")
    if isinstance(env_to, list):
        recipients += [str(addr) for addr in env_to]
    return Inbound(sender.strip(), recipients, subject.strip(), text, headers)


def command_of(message: Inbound, contact_address: str) -> str:
    """ "subscribe", "unsubscribe" or "none" (left for staff).

    Only mail to the contact address counts, only the subject or the first non-empty
    line of the body is read (a quoted footer further down says "unsubscribe"), and
    auto-replies never act. Unsubscribe wins when both words appear.
    """
    if _AUTO.search(message.headers):
        return "none"
    contact = contact_address.strip().lower()
    if contact not in {r.strip().lower() for r in message.recipients}:
        return "none"
    first_line = next((line.strip() for line in message.text.splitlines() if line.strip()), "")
    for place in (message.subject, first_line):
        if _UNSUBSCRIBE.search(place):
            return "unsubscribe"
    for place in (message.subject, first_line):
        if _SUBSCRIBE.search(place):
            return "subscribe"
    return "none"


def handle(settings: Settings, database: Database, message: Inbound) -> str:
    """Store the message, act on it, and say what was done."""
    action = command_of(message, settings.contact_address)
    try:
        address = subscribers.normalize(message.sender)
    except subscribers.InvalidAddress:
        address = None
        action = "none"
    with database.session() as session:
        stored = InboundMessage(
            sender=(address.email if address else message.sender)[:320],
            recipient=", ".join(message.recipients)[:1000] or None,
            subject=message.subject[:1000] or None,
            text=message.text or None,
            action=action,
        )
        session.add(stored)
        people: list[tuple[int, str]] = []
        if address is not None and action == "subscribe":
            request = subscribers.request_subscription(
                session,
                address,
                name=None,
                source=SubscriberSource.EMAIL,
                consent_text=(
                    f"Email to {settings.contact_address} with subject {message.subject!r}; "
                    "confirmed by the link in the confirmation email"
                ),
                by=f"email from {address.email}",
            )
            if request.needs_confirmation:
                people.append((request.subscriber_id, request.email))
        elif address is not None and action == "unsubscribe":
            sub = subscribers.find(session, address.email)
            if sub is not None and sub.status not in subscribers.SUPPRESSED:
                people.append((sub.id, sub.email))
        session.flush()
        stored_id = stored.id
    if people:
        kind = (
            confirmation.Kind.SUBSCRIBE if action == "subscribe" else confirmation.Kind.UNSUBSCRIBE
        )
        try:
            confirmation.send(settings, kind, people)
        except TransportError as exc:
            # The message is stored; staff see it unhandled and can act by hand.
            log.error(
                "inbound %s: confirmation not sent: %s",
                stored_id,
                confirmation.redact(str(exc), people),
            )
            return action
    with database.session() as session:
        row = session.get_one(InboundMessage, stored_id)
        row.handled_at = utcnow()
    return action


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
    try:
        form = await request.form(max_part_size=MAX_PART_SIZE)
    except Exception as exc:  # malformed multipart: Starlette raises several kinds
        return PlainTextResponse(f"could not read the form: {exc}\n", status_code=400)
    try:
        message = parse_post(form)
    finally:
        for value in form.values():
            if isinstance(value, UploadFile):
                await value.close()
    if not message.sender:
        message = Inbound(
            "(unknown sender)", message.recipients, message.subject, message.text, message.headers
        )
    action = await run_in_threadpool(handle, settings, database_of(request), message)
    # 2xx tells SendGrid not to retry; the message is stored whatever it said.
    return JSONResponse({"stored": True, "action": action})
