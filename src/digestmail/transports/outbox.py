"""The default transport: each message becomes one ``.eml`` file in the outbox folder.

The files are exactly what the SMTP transport would send, so staff can open a test
issue in their mail program and nothing leaves the machine.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from email.utils import parseaddr
from pathlib import Path

from digestmail.config import Settings
from digestmail.transports.base import Accepted, BatchResult, MessageTemplate, Recipient
from digestmail.transports.mime import build_message

_SAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


class OutboxTransport:
    name = "outbox"
    max_batch = 1000

    def __init__(self, settings: Settings) -> None:
        self.directory = Path(settings.outbox_dir)
        self.domain = parseaddr(settings.from_)[1].rpartition("@")[2] or "localhost"

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        self.directory.mkdir(parents=True, exist_ok=True)
        result = BatchResult()
        for recipient in recipients:
            data = build_message(template, recipient, domain=self.domain)
            message_id = uuid.uuid4().hex
            name = f"{_SAFE.sub('_', recipient.email)}-{message_id[:12]}.eml"
            tmp = self.directory / f".{name}.tmp"
            tmp.write_bytes(data)
            # Rename is atomic: a reader never sees half a message.
            os.replace(tmp, self.directory / name)
            result.accepted.append(Accepted(recipient.email, message_id))
        return result

    def close(self) -> None:
        pass
