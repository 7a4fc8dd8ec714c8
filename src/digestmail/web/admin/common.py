"""What every admin page shares: who is signed in, the page frame, and notices.

A signed-in browser holds the session cookie: the session's token, signed with a key
derived from ``DIGESTMAIL_SECRET_KEY`` and checked for age before the database is
asked (``staff.session_member``). Every admin route but the sign-in page depends on
``current_staff``; without a live session it raises ``LoginRequired``, which the app
answers with a redirect to the sign-in page (pages) or 401 (anything else).

After an action the browser is redirected (so that reloading does not repeat it),
and what happened travels to the next page in a short-lived signed cookie: the
"notice" at the top of the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import FormData, UploadFile

from digestmail import staff
from digestmail.config import Settings
from digestmail.web.deps import database_of, pages_of, settings_of

PREFIX = "/admin"
SESSION_COOKIE = "digestmail_admin"
NOTICE_COOKIE = "digestmail_notice"
NOTICE_MAX_AGE = 120
# Where a sign-in may send the browser afterwards: an admin page of this site, nothing else.
_NEXT = re.compile(r"^/admin(?:/[A-Za-z0-9._~%/-]*)?(?:\?[A-Za-z0-9._~%&=+-]*)?$")


class LoginRequired(Exception):
    """The request needs a signed-in staff member and has none."""


def _serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        settings.secret_key.get_secret_value(), salt=f"digestmail.admin.{purpose}"
    )


def secure_cookies(settings: Settings) -> bool:
    """Cookies only over TLS when the site is served over TLS."""
    return settings.base_url.startswith("https://")


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        _serializer(settings, "session").dumps(token),
        max_age=settings.admin_session_max_age,
        path=PREFIX,
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=PREFIX,
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


def session_token(request: Request) -> str | None:
    """The session token from the cookie, if its signature holds and it is not too old."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    settings = settings_of(request)
    try:
        token = _serializer(settings, "session").loads(raw, max_age=settings.admin_session_max_age)
    except BadSignature:
        return None
    return token if isinstance(token, str) else None


def current_staff(request: Request) -> staff.StaffMember:
    """The signed-in staff member (a dependency of every admin route)."""
    token = session_token(request)
    member = staff.session_member(database_of(request), token) if token else None
    if member is None:
        raise LoginRequired
    request.state.staff = member
    return member


def safe_next(value: str | None) -> str:
    """Where to go after signing in: the page asked for, if it is an admin page."""
    if value and _NEXT.match(value) and "//" not in value:
        return value
    return PREFIX


# --- notices -----------------------------------------------------------------------------

Kind = Literal["ok", "problem"]


@dataclass(frozen=True)
class Notice:
    text: str
    kind: Kind = "ok"


def redirect(request: Request, url: str, text: str | None = None, kind: Kind = "ok") -> Response:
    """Go to ``url`` (303: the next request is a GET), saying what happened there."""
    response = RedirectResponse(url, status_code=303)
    if text:
        settings = settings_of(request)
        response.set_cookie(
            NOTICE_COOKIE,
            _serializer(settings, "notice").dumps({"text": text, "kind": kind}),
            max_age=NOTICE_MAX_AGE,
            path=PREFIX,
            secure=secure_cookies(settings),
            httponly=True,
            samesite="lax",
        )
    return response


def _notice(request: Request) -> Notice | None:
    raw = request.cookies.get(NOTICE_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(settings_of(request), "notice").loads(raw, max_age=NOTICE_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return None
    return Notice(data["text"], "problem" if data.get("kind") == "problem" else "ok")


def csrf_token(request: Request) -> str:
    """The form token asgi-csrf checks on every admin POST (it sets the cookie)."""
    get = request.scope.get("csrftoken")
    return str(get()) if callable(get) else ""


def page(
    request: Request,
    template: str,
    /,
    status_code: int = 200,
    notice: Notice | None = None,
    **context: Any,
) -> HTMLResponse:
    """An admin page (``templates/web/admin/TEMPLATE``) in the admin's frame."""
    pending = _notice(request)
    settings = settings_of(request)
    response = pages_of(request).render(
        request,
        f"admin/{template}",
        status_code=status_code,
        staff=getattr(request.state, "staff", None),
        csrf_token=csrf_token(request),
        notice=notice or pending,
        outbox=settings.transport == "outbox",
        **context,
    )
    if pending is not None:
        response.delete_cookie(NOTICE_COOKIE, path=PREFIX)
    return response


# --- forms -------------------------------------------------------------------------------


def form_text(form: FormData, name: str) -> str:
    """A text field of a parsed form ("" when absent, or a file in its place)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def form_file(form: FormData, name: str) -> UploadFile | None:
    """A file field of a parsed form, if a file was chosen."""
    value = form.get(name)
    if isinstance(value, UploadFile) and value.filename:
        return value
    return None


def too_large(request: Request, limit: int) -> bool:
    """Whether the request says its body is over ``limit`` bytes (checked before reading)."""
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > limit


# --- the email as a mail program shows it -------------------------------------------------

# A message's HTML in a frame of its own: no scripts, no same origin, no network but
# pictures; framed by admin pages only.
SANDBOX_CSP = (
    "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'"
)


def sandboxed(body: str, media_type: str = "text/html") -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Security-Policy": SANDBOX_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )
