"""The outbox in the admin: what the outbox transport wrote, each message viewable.

Only with ``DIGESTMAIL_TRANSPORT=outbox`` (otherwise these pages do not exist). A
message's HTML is shown as a mail program would: in a sandbox, no scripts, no same
origin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_binary_file, policy
from email.message import EmailMessage
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response

from digestmail.web.admin.common import PREFIX, current_staff, page, sandboxed
from digestmail.web.deps import settings_of

router = APIRouter(dependencies=[Depends(current_staff)])
_NAME = re.compile(r"^[A-Za-z0-9._@+-]+\.eml$")
SHOWN = 500


@dataclass(frozen=True)
class OutboxItem:
    name: str
    to: str
    subject: str
    when: str


def _folder(request: Request) -> Path:
    settings = settings_of(request)
    if settings.transport != "outbox":
        raise HTTPException(404)
    return Path(settings.outbox_dir)


def _summary(path: Path) -> OutboxItem:
    with path.open("rb") as fh:
        msg = message_from_binary_file(fh, policy=policy.default)
    stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%d %b %Y, %H:%M:%S UTC")
    return OutboxItem(path.name, str(msg.get("to", "")), str(msg.get("subject", "")), stamp)


@router.get(f"{PREFIX}/outbox")
def outbox(request: Request) -> Response:
    folder = _folder(request)
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    return page(
        request,
        "outbox.html",
        section="outbox",
        items=[_summary(p) for p in files[:SHOWN]],
        total=len(files),
        folder=str(folder.resolve()),
    )


def _file(request: Request, name: str) -> Path:
    folder = _folder(request)
    if not _NAME.match(name) or not (folder / name).is_file():
        raise HTTPException(404)
    return folder / name


@router.get(f"{PREFIX}/outbox/{{name}}")
def outbox_raw(request: Request, name: str) -> FileResponse:
    return FileResponse(_file(request, name), media_type="message/rfc822", filename=name)


@router.get(f"{PREFIX}/outbox/{{name}}/html")
def outbox_html(request: Request, name: str) -> Response:
    """The HTML part as a mail program shows it (or the text part if it has none)."""
    with _file(request, name).open("rb") as fh:
        msg = message_from_binary_file(fh, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("html", "plain"))
    body = part.get_content() if part is not None else ""
    html = part is not None and part.get_content_subtype() == "html"
    return sandboxed(body, "text/html" if html else "text/plain")
