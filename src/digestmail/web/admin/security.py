"""The admin's protections below the routes: CSRF tokens and security headers.

CSRF: asgi-csrf (the double-submit cookie: a signed token in a cookie and the same
token in every form's ``csrftoken`` field) guards every ``/admin`` request that is not
a GET or HEAD, the sign-in form included, whether or not the browser sends cookies.
Nothing outside ``/admin`` passes through it: the public subscribe form (embedded on
other sites), the RFC 8058 one-click unsubscribe (posted by mail programs) and the
provider hooks carry no token and need none.

Headers: admin pages may only run the app's own scripts and styles (no inline
script), may not be framed by anyone (``frame-ancestors 'none'``), and are never
cached. A response that set its own policy (an email shown in a sandboxed frame)
keeps it.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import logging
from collections.abc import Callable
from typing import Any

import asgi_csrf as _asgi_csrf
import python_multipart
from asgi_csrf import asgi_csrf
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digestmail.config import Settings
from digestmail.web.admin.common import PREFIX, secure_cookies

log = logging.getLogger(__name__)

CSRF_COOKIE = "digestmail_csrf"
_MARKER = "digestmail.csrf"

ADMIN_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


class _FormParser(python_multipart.FormParser):
    """asgi-csrf 0.11 as python-multipart 0.0.26 and later need it called.

    asgi-csrf builds its multipart parser with ``FileClass=``, which python-multipart
    removed in 0.0.26 (the release that fixed CVE-2026-40347), so every upload would
    fail (simonw/asgi-csrf#38, fix pending in #39). This keeps asgi-csrf's own check and
    its rule that the token comes before any file: a file part reached first ends the
    parse with asgi-csrf's ``FileBeforeToken`` (a refusal). Drop it once asgi-csrf
    calls the new API itself (``tests/web/admin/test_security.py`` says when).
    """

    def __init__(
        self,
        content_type: str,
        on_field: Callable[[Any], None],
        _on_file: object,
        *,
        boundary: bytes | str | None = None,
        FileClass: object = None,  # asgi-csrf's keyword, ignored
    ) -> None:
        def file_first(_file: object) -> None:
            raise _asgi_csrf.FileBeforeToken

        super().__init__(content_type, on_field, file_first, boundary=boundary)


if "FileClass" not in inspect.signature(python_multipart.FormParser).parameters:
    _asgi_csrf.FormParser = _FormParser


def is_admin_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class _AdminPaths:
    """asgi-csrf's ``always_protect``: every admin path, also for a browser sending no
    cookie (a cross-site form post to the sign-in page, say)."""

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and is_admin_path(path)


def _csrf_secret(settings: Settings) -> str:
    """A key of its own for CSRF tokens, derived from the secret key."""
    key = settings.secret_key.get_secret_value().encode("utf-8")
    return hmac.new(key, b"digestmail.admin.csrf", hashlib.sha256).hexdigest()


_FAILED = (
    b"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
    b"<meta name='viewport' content='width=device-width, initial-scale=1'>"
    b"<title>Please try again</title><link rel='stylesheet' href='/static/site.css'></head>"
    b"<body><main id='content'><div class='card'><h1>Please try again</h1>"
    b"<p>This form was out of date or did not come from this site, so nothing was done. "
    b"Go back, reload the page, and try once more.</p>"
    b"<p><a href='/admin'>Go to the admin</a></p></div></main></body></html>"
)


async def _csrf_failed(scope: Scope, send: Send, reason: object) -> None:
    log.warning(
        "admin: %s %s refused: CSRF check failed (%s)",
        scope.get("method"),
        scope.get("path"),
        getattr(reason, "name", reason),
    )
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": _FAILED})


class AdminGuard:
    """ASGI middleware: CSRF checks and security headers on ``/admin``, nothing elsewhere."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.hsts = secure_cookies(settings)
        self.protected = asgi_csrf(
            self._checked,
            cookie_name=CSRF_COOKIE,
            signing_secret=_csrf_secret(settings),
            always_protect=_AdminPaths(),
            cookie_path=PREFIX,
            cookie_secure=secure_cookies(settings),
            cookie_samesite="Lax",
            send_csrf_failed=_csrf_failed,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_admin_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = False
        marker = {"passed": False}
        scope[_MARKER] = marker

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in self._headers():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        try:
            await self.protected(scope, receive, with_headers)
        except (ValueError, IndexError, AssertionError) as exc:
            # asgi-csrf reading a form that is not one (bytes that are not UTF-8, a
            # multipart post without its boundary, a broken part): refused like a
            # missing token.
            # Errors of the routes themselves (past the check) are not ours to answer.
            if marker["passed"] or started:
                raise
            await _csrf_failed(scope, with_headers, type(exc).__name__)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, behind the check: notes that the request got this far."""
        scope[_MARKER]["passed"] = True
        await self.app(scope, receive, send)

    def _headers(self) -> list[tuple[str, str]]:
        headers = [
            ("content-security-policy", ADMIN_CSP),
            ("x-frame-options", "DENY"),
            ("cache-control", "no-store"),
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "same-origin"),
            ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
        ]
        if self.hsts:
            headers.append(("strict-transport-security", "max-age=31536000"))
        return headers
