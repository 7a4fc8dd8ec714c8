"""Shared by the web tests: read what the outbox transport wrote."""

from __future__ import annotations

import re
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

_LINK = re.compile(r"https?://\S+/(?:confirm|unsubscribe)/[A-Za-z0-9._-]+")


def outbox_messages(folder: Path) -> list[EmailMessage]:
    messages = []
    for path in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        messages.append(msg)
    return messages


def wait_for_messages(folder: Path, count: int, timeout: float = 10.0) -> list[EmailMessage]:
    """The outbox once it holds ``count`` messages: the web app mails after answering."""
    deadline = time.monotonic() + timeout
    while True:
        messages = outbox_messages(folder) if folder.exists() else []
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        time.sleep(0.02)


def link_in(message: EmailMessage) -> str:
    """The confirmation link of a message, checked to be the same in both parts."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    links = _LINK.findall(text.get_content())
    assert links, "no link in the text part"
    assert links[0] in html.get_content()
    return str(links[0])
