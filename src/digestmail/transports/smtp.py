"""Placeholder until the smtp transport lands (issue 4)."""

from __future__ import annotations

from collections.abc import Sequence

from digestmail.config import Settings
from digestmail.transports.base import BatchResult, MessageTemplate, Recipient


class SMTPTransport:
    name = "smtp"
    max_batch = 1000

    def __init__(self, settings: Settings) -> None:
        raise NotImplementedError("the smtp transport is not built yet")

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        raise NotImplementedError

    def close(self) -> None:
        pass
