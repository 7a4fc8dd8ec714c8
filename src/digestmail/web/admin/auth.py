"""Signing in and out of the admin.

Failed sign-ins are counted per client address and per account in the rate-limit
storage every web process shares (``DIGESTMAIL_LOGIN_LIMIT``, default 5 a minute):
past the limit the form refuses to check any password, right or wrong, until the
window has moved on. Every failure and refusal is logged with the address tried and
the client's IP, never the password.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from digestmail import staff
from digestmail.web.admin.common import (
    PREFIX,
    clear_session_cookie,
    page,
    redirect,
    safe_next,
    session_token,
    set_session_cookie,
)
from digestmail.web.deps import client_ip, database_of, settings_of

log = logging.getLogger(__name__)
router = APIRouter()

TOO_MANY = (
    "Too many sign-in attempts went wrong. For your safety, signing in is paused for a "
    "minute. Please wait, then try again."
)
WRONG = "That email address and password do not match an account. Please try again."


@router.get(f"{PREFIX}/login")
def login_form(request: Request, next: str = "") -> Response:
    token = session_token(request)
    if token and staff.session_member(database_of(request), token):
        return redirect(request, safe_next(next))
    return page(request, "login.html", email="", next=safe_next(next), error=None)


@router.post(f"{PREFIX}/login")
def login(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form(""),
) -> Response:
    settings = settings_of(request)
    db = database_of(request)
    limiter = request.app.state.login_limiter  # a web.ratelimit.Limiter
    ip = client_ip(request)
    account = email.strip().lower()[:320]
    shown = email.strip()[:320]
    if not (limiter.allows("ip", ip) and limiter.allows("account", account)):
        log.warning("admin sign-in refused (too many failures): account %r from %s", account, ip)
        response = page(
            request,
            "login.html",
            status_code=429,
            email=shown,
            next=safe_next(next),
            error=TOO_MANY,
        )
        response.headers["Retry-After"] = "60"
        return response
    member = staff.authenticate(db, email, password)
    if member is None:
        limiter.hit("ip", ip)
        limiter.hit("account", account)
        log.warning("admin sign-in failed: account %r from %s", account, ip)
        return page(
            request, "login.html", status_code=401, email=shown, next=safe_next(next), error=WRONG
        )
    token = staff.start_session(db, member, settings.admin_session_max_age)
    log.info("admin sign-in: %s from %s", member.email, ip)
    signed_in = redirect(request, safe_next(next))
    set_session_cookie(signed_in, settings, token)
    return signed_in


@router.post(f"{PREFIX}/logout")
def logout(request: Request) -> Response:
    token = session_token(request)
    if token:
        staff.end_session(database_of(request), token)
    response = redirect(request, f"{PREFIX}/login", "You are signed out.")
    clear_session_cookie(response, settings_of(request))
    return response
