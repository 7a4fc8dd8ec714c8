"""Events signed the way SendGrid signs them: ECDSA P-256 over ``timestamp + body``.

The key pair is made here; the public key is given as SendGrid shows it (base64 of
the DER SubjectPublicKeyInfo), which is what ``DIGESTMAIL_SENDGRID_WEBHOOK_KEY`` holds.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


class Signer:
    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode("ascii")

    def signature(self, body: bytes, timestamp: str) -> str:
        signed = self.private_key.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signed).decode("ascii")

    def headers(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        stamp = timestamp or str(int(time.time()))
        return {
            "Content-Type": "application/json",
            SIGNATURE: self.signature(body, stamp),
            TIMESTAMP: stamp,
        }


def body_of(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode("utf-8")


_counter = iter(range(1, 10**9))


def sg_event(event: str, email: str, **fields: Any) -> dict[str, Any]:
    """One SendGrid event object, as the webhook posts it (a fresh ``sg_event_id``)."""
    n = next(_counter)
    return {
        "email": email,
        "timestamp": fields.pop("timestamp", int(time.time())),
        "event": event,
        "sg_event_id": fields.pop("sg_event_id", f"ev{n:08d}-test"),
        "sg_message_id": f"msg{n}.filter0001",
        **fields,
    }
