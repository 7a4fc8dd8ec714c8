"""Transports: one module per way of handing mail over, behind ``base.Transport``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digestmail.transports.base import Transport

if TYPE_CHECKING:
    from digestmail.config import Settings


def get_transport(settings: Settings) -> Transport:
    """The transport the settings name."""
    if settings.transport == "outbox":
        from digestmail.transports.outbox import OutboxTransport

        return OutboxTransport(settings)
    if settings.transport == "smtp":
        from digestmail.transports.smtp import SMTPTransport

        return SMTPTransport(settings)
    if settings.transport == "sendgrid":
        from digestmail.transports.sendgrid import SendGridTransport

        return SendGridTransport(settings)
    raise ValueError(f"unknown transport {settings.transport!r}")
