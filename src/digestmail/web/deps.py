"""What route handlers take from the app and the request: settings, database, pages, body."""

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


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is longer than ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
