"""Shared by the admin tests: a staff account, and a client that signs in and posts forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from digestmail import staff
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.web.admin.security import CSRF_COOKIE
from tests.liveserver import serve

EMAIL = "editor@institute.example"
PASSWORD = "four unrelated words here"
_NOTICE = re.compile(r'<div class="notice (?:ok|problem)" role="status">([^<]*)</div>')


def make_staff(settings: Settings, email: str = EMAIL, password: str = PASSWORD) -> None:
    db = Database(settings.database_url)
    try:
        staff.add(db, email, password)
    finally:
        db.dispose()


class Admin:
    """An HTTP client of the live app, as a browser uses it: cookies, form tokens."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def token(self) -> str:
        if CSRF_COOKIE not in self.client.cookies:
            self.client.get("/admin/login")
        return self.client.cookies[CSRF_COOKIE]

    def login(self, email: str = EMAIL, password: str = PASSWORD, **headers: str) -> httpx.Response:
        return self.post("/admin/login", {"email": email, "password": password}, headers=headers)

    def post(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        files: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.client.post(
            path, data={"csrftoken": self.token(), **(data or {})}, files=files, headers=headers
        )

    def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 303, (response.status_code, response.text[:500])
        return self.client.get(response.headers["location"])

    @staticmethod
    def notice(page: httpx.Response) -> str:
        found = _NOTICE.search(page.text)
        assert found, f"no notice on {page.url}"
        return found.group(1)


@contextmanager
def admin_client(settings: Settings, *, login: bool = True) -> Iterator[Admin]:
    """The app served live, a staff account, and a client signed in to it."""
    make_staff(settings)
    with serve(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        admin = Admin(client)
        if login:
            assert admin.login().status_code == 303
        yield admin
