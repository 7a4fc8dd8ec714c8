"""Public pages: subscribe, confirm, unsubscribe (including RFC 8058 one-click).

The subscribe form carries no CSRF token on purpose: it is embedded in the
publication's own website and posts across sites. A honeypot field and a per-IP
rate limit keep bots out instead; double opt-in keeps out everybody else.

``POST /subscribe`` gives the same page, with the same timing, whatever the address's
state: the confirmation email goes out after the response (a background task), so a
slow SMTP server or API cannot reveal who is already on the list.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from digestmail import confirmation, subscribers
from digestmail.db import Database
from digestmail.formdata import is_form, parse_form
from digestmail.models import Subscriber, SubscriberSource, SubscriberStatus
from digestmail.tokens import Purpose, TokenError, read_signed, read_token
from digestmail.web.deps import client_ip, database_of, pages_of, read_body, settings_of
from digestmail.web.pages import consent_wording

log = logging.getLogger(__name__)
router = APIRouter()

# The honeypot's field name: plausible to a form-filling bot, hidden from people.
HONEYPOT = "website"
FORM_FIELDS = ("email", "name", HONEYPOT)
# A subscribe form post is a few hundred bytes; one far larger is not a person's.
FORM_MAX_BYTES = 64 * 1024
UNREADABLE = "Sorry, what was sent could not be read as text. Please type your address again."


@router.get("/", include_in_schema=False)
@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request) -> HTMLResponse:
    return pages_of(request).render(request, "subscribe.html", email="", name="", error=None)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe_submit(request: Request, background: BackgroundTasks) -> HTMLResponse:
    settings = settings_of(request)
    pages = pages_of(request)
    ip = client_ip(request)
    if not request.app.state.subscribe_limiter.hit(ip):  # a web.ratelimit.Limiter
        response = pages.render(request, "rate_limited.html", status_code=429)
        response.headers["Retry-After"] = "60"
        return response
    fields = await _form_fields(request)
    if fields is None:
        return pages.render(
            request, "subscribe.html", status_code=400, email="", name="", error=UNREADABLE
        )
    email, name = fields["email"], fields["name"]
    if fields[HONEYPOT].strip():
        # A bot filled the hidden field: answer as if it worked, do nothing.
        log.info("subscribe: honeypot filled, ignored")
        return pages.render(request, "thanks.html", email=email.strip())
    try:
        address = subscribers.normalize(email)
    except subscribers.InvalidAddress as exc:
        return pages.render(
            request,
            "subscribe.html",
            status_code=422,
            email=email.strip(),
            name=name.strip(),
            error=_friendly(exc),
        )
    # The request is on record (committed) before the answer; only the mail waits.
    outcome = await run_in_threadpool(
        _record_request, database_of(request), address, name, consent_wording(settings), ip
    )
    if outcome.needs_confirmation:
        background.add_task(
            confirmation.send_in_background,
            settings,
            confirmation.Kind.SUBSCRIBE,
            outcome.subscriber_id,
            outcome.email,
        )
    return pages.render(request, "thanks.html", email=address.email)


def _record_request(
    database: Database, address: subscribers.Address, name: str, wording: str, ip: str
) -> subscribers.Request:
    with database.session() as session:
        return subscribers.request_subscription(
            session,
            address,
            name=name,
            source=SubscriberSource.FORM,
            consent_text=wording,
            ip=ip,
        )


async def _form_fields(request: Request) -> dict[str, str] | None:
    """The form's text fields, or None if they are not readable as UTF-8 text.

    Read by hand rather than by FastAPI's ``Form``: that answers a file in a text field
    with a JSON error, and reads bytes that are not UTF-8 as Latin-1, which would be
    stored as mojibake in place of what the person typed.
    """
    content_type = request.headers.get("content-type", "")
    if not is_form(content_type):
        return None
    body = await read_body(request, FORM_MAX_BYTES)
    if body is None:
        return None
    form = parse_form(content_type, body, FORM_FIELDS)
    if form.problems:
        return None
    fields: dict[str, str] = {}
    for name in FORM_FIELDS:
        part = form.fields.get(name)
        if part is not None and part.filename is not None:
            return None
        try:
            fields[name] = part.data.decode("utf-8") if part is not None else ""
        except UnicodeDecodeError:
            return None
    return fields


def _friendly(exc: subscribers.InvalidAddress) -> str:
    if isinstance(exc, subscribers.UnmailableAddress):
        return f"Sorry, {exc.reason}."
    return f"That does not look like a complete email address ({exc.reason.rstrip('.')})."


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm(request: Request, token: str) -> HTMLResponse:
    settings = settings_of(request)
    pages = pages_of(request)
    try:
        signed = read_signed(settings, Purpose.CONFIRM, token)
    except TokenError as exc:
        return pages.render(
            request,
            "link_problem.html",
            status_code=410 if exc.expired else 400,
            problem="expired" if exc.expired else "invalid",
        )
    with database_of(request).session() as session:
        result, sub = subscribers.confirm(session, settings, signed.subscriber_id, signed.signed_at)
        email = sub.email if sub else ""
    if result is subscribers.ConfirmResult.UNKNOWN:
        return pages.render(request, "link_problem.html", status_code=404, problem="unknown")
    if result is subscribers.ConfirmResult.STALE:
        return pages.render(request, "link_problem.html", status_code=409, problem="stale")
    return pages.render(
        request,
        "confirmed.html",
        email=email,
        already=result is subscribers.ConfirmResult.ALREADY,
    )


def _unsubscribe_id(request: Request, token: str) -> int | HTMLResponse:
    try:
        return read_token(settings_of(request), Purpose.UNSUBSCRIBE, token)
    except TokenError:
        return pages_of(request).render(
            request, "link_problem.html", status_code=400, problem="invalid"
        )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    """Only a page with a button: mail scanners follow links, people press buttons."""
    subscriber_id = _unsubscribe_id(request, token)
    if isinstance(subscriber_id, HTMLResponse):
        return subscriber_id
    with database_of(request).session() as session:
        sub = session.get(Subscriber, subscriber_id)
        email = sub.email if sub else None
        gone = sub is None or sub.status in subscribers.SUPPRESSED
        already = sub is not None and sub.status is SubscriberStatus.UNSUBSCRIBED
    return pages_of(request).render(
        request, "unsubscribe.html", token=token, email=email, gone=gone, already=already
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_now(request: Request, token: str) -> HTMLResponse:
    """The button's target and the RFC 8058 one-click target (no cookie, no CSRF token).

    The body (``List-Unsubscribe=One-Click`` or the button's form) is not needed: the
    signed token says who. Answers 200 without a redirect, as RFC 8058 expects.
    """
    subscriber_id = _unsubscribe_id(request, token)
    if isinstance(subscriber_id, HTMLResponse):
        return subscriber_id
    with database_of(request).session() as session:
        sub = subscribers.unsubscribe(session, subscriber_id)
        email = sub.email if sub else None
    log.info("unsubscribed subscriber %s", subscriber_id)
    return pages_of(request).render(request, "goodbye.html", email=email)
