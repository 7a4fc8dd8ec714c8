"""SendGrid's Signed Event Webhook: is this body what SendGrid signed?

SendGrid signs ``timestamp + body`` with ECDSA P-256 / SHA-256 and sends the signature
(base64 of its DER form) and the timestamp in two headers; the public key is shown in
its settings as base64 text (``DIGESTMAIL_SENDGRID_WEBHOOK_KEY``). The check uses the
official helper (``sendgrid.helpers.eventwebhook``), over the body exactly as received.

The helper takes text and encodes it as UTF-8, and raises on a signature that is not
base64; both are answered here as a refused signature, never as an error: a body that
is not UTF-8 is not one SendGrid signed, since SendGrid posts UTF-8 JSON.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

SIGNATURE_HEADER: str = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER: str = EventWebhookHeader.TIMESTAMP
# A DER ECDSA P-256 signature is at most 72 bytes; base64 of it under 100 characters.
_SIGNATURE_MAX = 200
_TIMESTAMP_MAX = 20


class BadSignature(Exception):
    """The post is not signed by the holder of the configured key; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@lru_cache(maxsize=4)
def _verifier(key: str) -> Any:
    return EventWebhook(key)


def verify(key: str, body: bytes, signature: str | None, timestamp: str | None) -> None:
    """Return if ``signature`` is the key's signature of ``timestamp + body``; raise
    ``BadSignature`` otherwise (missing, malformed or wrong)."""
    if not signature or not timestamp:
        raise BadSignature("the post is not signed")
    if len(signature) > _SIGNATURE_MAX or len(timestamp) > _TIMESTAMP_MAX:
        raise BadSignature("the signature or its timestamp is malformed")
    if not timestamp.isascii() or not timestamp.strip().isdigit():
        raise BadSignature("the signature's timestamp is not a number")
    try:
        base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("the signature is not base64") from None
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("the signature does not match the body") from None
    try:
        ok = _verifier(key).verify_signature(payload, signature, timestamp)
    except (ValueError, binascii.Error):
        ok = False
    if not ok:
        raise BadSignature("the signature does not match the body")
