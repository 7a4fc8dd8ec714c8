"""Placeholder until the sendgrid transport lands (issue 4)."""

from __future__ import annotations

from collections.abc import Sequence

from digestmail.config import Settings
from digestmail.transports.base import BatchResult, MessageTemplate, Recipient


class SendGridTransport:
    name = "sendgrid"
    max_batch = 1000

    def __init__(self, settings: Settings) -> None:
        raise NotImplementedError("the sendgrid transport is not built yet")

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        raise NotImplementedError

    def close(self) -> None:
        pass
