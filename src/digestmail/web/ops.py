"""For the operator: a health check (the outbox is in the staff admin)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from digestmail.web.deps import database_of

router = APIRouter()
_NAME = re.compile(r"^[A-Za-z0-9._@+-]+\.eml$")


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    try:
        with database_of(request).session() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse({"status": "error", "database": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
