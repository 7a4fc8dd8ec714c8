"""The default transport: each message becomes one ``.eml`` file in the outbox folder.

The files are exactly what the SMTP transport would send, so staff can open a test
issue in their mail program and nothing leaves the machine. A folder that cannot be
written (it is a file, the disk is full) is a permanent ``TransportError`` naming it:
trying again cannot help until staff fix it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from email.utils import parseaddr
from functools import partial
from pathlib import Path

from digestmail.config import Settings
from digestmail.transports.base import (
    Accepted,
    BatchResult,
    Handover,
    MessageTemplate,
    Recipient,
    Rejected,
    TransportError,
)
from digestmail.transports.mime import CompiledMessage, InvalidRecipient

_SAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def sender_domain(from_addr: str) -> str:
    """The domain for Message-IDs: the sender's, so they are unique to us."""
    return parseaddr(from_addr)[1].rpartition("@")[2] or "localhost"


class OutboxTransport:
    name = "outbox"
    max_batch = 1000
    # Each message is a file of its own: batches may be written side by side.
    max_in_flight = 32

    def __init__(self, settings: Settings) -> None:
        self.directory = Path(settings.outbox_dir)
        self.domain = sender_domain(settings.from_)
        self._compiled: CompiledMessage | None = None

    def compiled(self, template: MessageTemplate) -> CompiledMessage:
        """The template encoded once and reused for every batch of the same message."""
        if self._compiled is None or self._compiled.template != template:
            self._compiled = CompiledMessage(template, domain=self.domain)
        return self._compiled

    def prepare(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> Handover:
        """Nothing to do ahead: the whole batch is handed over in the call."""
        return partial(self.send_batch, template, recipients)

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        compiled = self.compiled(template)
        result = BatchResult()
        written: list[Path] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for recipient in recipients:
                try:
                    message = compiled.render(recipient)
                except InvalidRecipient as exc:
                    result.rejected.append(Rejected(recipient.email, str(exc), permanent=True))
                    continue
                local = message.message_id.partition("@")[0]
                name = f"{_SAFE.sub('_', recipient.email)}-{local[:12]}.eml"
                tmp = self.directory / f".{name}.tmp"
                try:
                    tmp.write_bytes(message.data)
                    # Rename is atomic: a reader never sees half a message.
                    os.replace(tmp, self.directory / name)
                except OSError:
                    with contextlib.suppress(OSError):
                        tmp.unlink(missing_ok=True)
                    raise
                written.append(self.directory / name)
                result.accepted.append(Accepted(recipient.email, message.message_id))
        except OSError as exc:
            # The whole batch fails, so take back what of it was written: a resume after
            # the folder is fixed writes each message once.
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            reason = exc.strerror or type(exc).__name__
            raise TransportError(
                f"cannot write to the outbox folder {self.directory}: {reason}", permanent=True
            ) from exc
        return result

    def close(self) -> None:
        pass
