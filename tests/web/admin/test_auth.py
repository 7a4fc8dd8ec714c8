"""Signing in, sessions, and what protects every admin page (web/admin/auth.py, common.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from digestmail import staff, tokens
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import StaffSession, utcnow
from digestmail.subscribers import find
from digestmail.web import create_app
from digestmail.web.admin.common import SESSION_COOKIE
from digestmail.web.admin.security import CSRF_COOKIE
from tests.adminhelpers import EMAIL, PASSWORD, Admin, admin_client, make_staff
from tests.liveserver import serve


def _routes(routes: list[Any]) -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            yield from _routes(included.routes)
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            yield method, getattr(route, "path", "")


def _admin_routes() -> list[tuple[str, str]]:
    """Every (method, path) the app answers under /admin, from its route table."""
    app = create_app(Settings())
    return [
        (method, path)
        for method, path in _routes(app.routes)
        if method != "HEAD" and (path == "/admin" or path.startswith("/admin/"))
    ]


PUBLIC = {("GET", "/admin/login"), ("POST", "/admin/login"), ("POST", "/admin/logout")}


def test_every_admin_route_refuses_anonymous_visitors(sqlite_url: str) -> None:
    routes = _admin_routes()
    assert len(routes) > 20  # the walk covers the whole admin
    settings = Settings()
    with serve(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        for method, pattern in routes:
            if (method, pattern) in PUBLIC:
                continue
            path = re.sub(r"\{[a-z_]+\}", "1", pattern)
            if method == "GET":
                r = client.get(path)
                assert r.status_code in (303, 401), (method, path, r.status_code)
                if r.status_code == 303:
                    assert r.headers["location"].startswith("/admin/login?next=")
            else:
                # With the form token, so the refusal is the sign-in's, not the CSRF check's.
                admin = Admin(client)
                r = client.post(path, data={"csrftoken": admin.token()})
                assert r.status_code == 401, (method, path, r.status_code)
                # And without it: refused before anything runs.
                r = httpx.post(f"{url}{path}", data={"x": "1"})
                assert r.status_code == 403, (method, path, r.status_code)


def test_sign_in_cookie_and_sign_out(sqlite_url: str) -> None:
    with admin_client(Settings(), login=False) as admin:
        page = admin.client.get("/admin/subscribers")
        assert page.headers["location"] == "/admin/login?next=/admin/subscribers"
        r = admin.post(
            "/admin/login", {"email": EMAIL, "password": PASSWORD, "next": "/admin/subscribers"}
        )
        assert r.status_code == 303 and r.headers["location"] == "/admin/subscribers"
        cookie = r.headers["set-cookie"]
        assert SESSION_COOKIE in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/admin" in cookie
        assert "Secure" not in cookie  # the base URL is http://127.0.0.1
        assert admin.client.get("/admin/subscribers").status_code == 200
        stolen = admin.client.cookies[SESSION_COOKIE]

        out = admin.follow(admin.post("/admin/logout"))
        assert "You are signed out." in out.text
        assert admin.client.get("/admin").status_code == 303
        # A copy of the cookie kept from before is worthless: the session is gone.
        r = httpx.get(f"{admin.client.base_url}/admin", cookies={SESSION_COOKIE: stolen})
        assert r.status_code == 303


def test_secure_cookies_when_the_site_is_https(sqlite_url: str) -> None:
    settings = Settings(base_url="https://digest.example.org", secret_key="x" * 40)
    with admin_client(settings, login=False) as admin:
        form = admin.client.get("/admin/login")
        assert "strict-transport-security" in form.headers
        assert "Secure" in form.headers["set-cookie"]  # the CSRF cookie
        # The test speaks plain HTTP, where a client keeps Secure cookies to itself.
        token = admin.client.cookies[CSRF_COOKIE]
        r = httpx.post(
            f"{admin.client.base_url}/admin/login",
            data={"email": EMAIL, "password": PASSWORD, "csrftoken": token},
            headers={"Cookie": f"{CSRF_COOKIE}={token}"},
        )
        assert r.status_code == 303
        assert "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/subscribe"])
def test_sign_in_never_sends_the_browser_off_the_admin(sqlite_url: str, target: str) -> None:
    with admin_client(Settings(), login=False) as admin:
        r = admin.post("/admin/login", {"email": EMAIL, "password": PASSWORD, "next": target})
        assert r.headers["location"] == "/admin"


def test_a_changed_password_or_a_removed_account_ends_the_session(db_url: str) -> None:
    settings = Settings()
    with admin_client(settings) as admin:
        assert admin.client.get("/admin").status_code == 200
        db = Database(settings.database_url)
        staff.set_password(db, EMAIL, "a brand new password")
        assert admin.client.get("/admin").status_code == 303
        assert admin.login(password="a brand new password").status_code == 303
        assert admin.client.get("/admin").status_code == 200
        staff.remove(db, EMAIL)
        assert admin.client.get("/admin").status_code == 303
        db.dispose()


def test_sessions_expire(sqlite_url: str) -> None:
    settings = Settings()
    with admin_client(settings) as admin:
        db = Database(settings.database_url)
        with db.session() as session:
            session.execute(update(StaffSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.dispose()
        assert admin.client.get("/admin").status_code == 303


def test_failed_sign_ins_are_slowed_per_account_and_per_address(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(login_limit="5/minute")
    caplog.set_level(logging.INFO)
    with admin_client(settings, login=False) as admin:
        codes = [admin.login(password=f"wrong guess {i}").status_code for i in range(10)]
        assert codes == [401] * 5 + [429] * 5
        # Even the right password waits now: the form checks none until the minute is over.
        r = admin.login()
        assert r.status_code == 429 and "paused for a minute" in r.text
        assert r.headers["retry-after"] == "60"
        # The same account from another address is slowed too ...
        assert admin.login(**{"X-Forwarded-For": "198.51.100.7"}).status_code == 429
        # ... and another account from this address (which failed ten times) as well.
        make_staff(settings, "other@institute.example")
        assert admin.login("other@institute.example").status_code == 429
        # A fresh address and a fresh account sign in.
        fresh = admin.login("other@institute.example", **{"X-Forwarded-For": "198.51.100.8"})
        assert fresh.status_code == 303
    failures = [r.getMessage() for r in caplog.records if "sign-in" in r.getMessage()]
    assert len([m for m in failures if "failed" in m]) == 5
    assert len([m for m in failures if "refused" in m]) >= 6
    assert all("wrong guess" not in m and PASSWORD not in m for m in failures)
    assert any(EMAIL in m and "127.0.0.1" in m for m in failures)


def test_csrf_token_required_on_admin_forms_only(sqlite_url: str) -> None:
    settings = Settings()
    with admin_client(settings) as admin:
        # Signed in, with cookies, but no token: refused, nothing done.
        r = admin.client.post("/admin/subscribers/add", data={"email": "x@example.org"})
        assert r.status_code == 403 and "Please try again" in r.text
        r = admin.client.post(
            "/admin/subscribers/add", data={"email": "x@example.org", "csrftoken": "forged"}
        )
        assert r.status_code == 403
        # An upload without the token, or with the file before it: refused as well.
        r = admin.client.post(
            "/admin/issues/new", files={"source_file": ("a.md", b"x", "text/markdown")}
        )
        assert r.status_code == 403
        r = admin.client.post(
            "/admin/issues/new",
            files=[
                ("source_file", ("a.md", b"x", "text/markdown")),
                ("csrftoken", (None, admin.token())),
            ],
        )
        assert r.status_code == 403
        # With it, the upload goes through (and is checked: an empty file is refused).
        r = admin.post("/admin/issues/new", files={"source_file": ("a.md", b" ", "text/markdown")})
        assert r.status_code == 422

        # Outside /admin nothing asks for a token, cookies or not.
        public = admin.client.post("/subscribe", data={"email": "reader@example.org"})
        assert public.status_code == 200
        db = Database(settings.database_url)
        with db.session() as session:
            assert find(session, "x@example.org") is None  # the refused posts did nothing
            sub = find(session, "reader@example.org")
            assert sub is not None
            sid = sub.id
        db.dispose()
        token = tokens.make_token(settings, tokens.Purpose.UNSUBSCRIBE, sid)
        one_click = admin.client.post(
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200
        hook = httpx.post(f"{admin.client.base_url}/hooks/sendgrid/events", json=[])
        assert "Please try again" not in hook.text  # the hook answered, not the CSRF check


def test_admin_pages_carry_security_headers(sqlite_url: str) -> None:
    with admin_client(Settings()) as admin:
        for path in ("/admin", "/admin/login"):
            r = admin.client.get(path)
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["cache-control"] == "no-store"
            assert r.headers["x-content-type-options"] == "nosniff"
        # Public pages are not the admin's business.
        assert "frame-ancestors" not in admin.client.get("/subscribe").headers.get(
            "content-security-policy", ""
        )
        css = admin.client.get("/static/admin.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert admin.client.get("/static/site.css").text.startswith("/*")
