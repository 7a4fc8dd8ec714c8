"""What route handlers take from the app: settings, database, pages, client address."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.web.pages import Pages


def settings_of(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def database_of(request: Request) -> Database:
    return cast(Database, request.app.state.database)


def pages_of(request: Request) -> Pages:
    return cast(Pages, request.app.state.pages)


def client_ip(request: Request) -> str:
    """The client's address; uvicorn has already applied X-Forwarded-For from a trusted proxy."""
    return request.client.host if request.client else "unknown"
