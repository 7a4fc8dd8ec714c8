"""For the operator: a health check, and the outbox when mail stays on this machine.

There is no staff login yet, so the outbox page answers loopback clients only, and
only when no proxy header says the request came from elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_binary_file, policy
from email.message import EmailMessage
from ipaddress import ip_address
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy import text

from digestmail.web.deps import database_of, pages_of, settings_of

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


def _require_local_outbox(request: Request) -> Path:
    if settings_of(request).transport != "outbox":
        raise HTTPException(404)
    host = request.client.host if request.client else ""
    try:
        local = ip_address(host).is_loopback
    except ValueError:
        local = False
    proxied = any(h in request.headers for h in ("x-forwarded-for", "forwarded", "x-real-ip"))
    if not local or proxied:
        raise HTTPException(403, "The outbox is only shown to this machine.")
    return Path(settings_of(request).outbox_dir)


@dataclass(frozen=True)
class OutboxItem:
    name: str
    to: str
    subject: str
    when: str


def _summary(path: Path) -> OutboxItem:
    with path.open("rb") as fh:
        msg = message_from_binary_file(fh, policy=policy.default)
    stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return OutboxItem(path.name, str(msg.get("to", "")), str(msg.get("subject", "")), stamp)


@router.get("/admin/outbox", response_class=HTMLResponse)
def outbox(request: Request) -> HTMLResponse:
    folder = _require_local_outbox(request)
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    items = [_summary(p) for p in files[:500]]
    return pages_of(request).render(
        request, "outbox.html", items=items, total=len(files), folder=str(folder.resolve())
    )


def _outbox_file(request: Request, name: str) -> Path:
    folder = _require_local_outbox(request)
    if not _NAME.match(name) or not (folder / name).is_file():
        raise HTTPException(404)
    return folder / name


@router.get("/admin/outbox/{name}")
def outbox_raw(request: Request, name: str) -> FileResponse:
    return FileResponse(_outbox_file(request, name), media_type="message/rfc822", filename=name)


@router.get("/admin/outbox/{name}/html")
def outbox_html(request: Request, name: str) -> Response:
    """The HTML part as a mail program shows it, sandboxed: no scripts, no same origin."""
    with _outbox_file(request, name).open("rb") as fh:
        msg = message_from_binary_file(fh, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("html", "plain"))
    body = part.get_content() if part is not None else ""
    media = (
        "text/html" if part is not None and part.get_content_subtype() == "html" else "text/plain"
    )
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Security-Policy": (
                "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'"
            )
        },
    )
