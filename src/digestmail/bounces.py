"""Bounce messages: VERP return paths, reading bounces, and the IMAP mailbox they wait in.

Mail sent by SMTP carries a return path of its own per message (VERP):
``DIGESTMAIL_BOUNCE_ADDRESS`` = ``bounces@bounce.example.org`` becomes the envelope
sender ``bounces+TOKEN@bounce.example.org``, where TOKEN names the delivery (the
ledger row) and is signed, so that a bounce finds its way back to the message even
when it names a forwarded-to address, and nobody can forge bounces for others. TOKEN
is the delivery id in decimal, a dash, and 16 base32 letters of an HMAC: only
lower-case letters, digits and a dash, because some mail servers lower-case the part
before the @.

A bounce message is read with ``flufl.bounce`` (Mailman's detectors: RFC 3464 DSNs
and many older formats) and becomes normalised events (``events.normalise``): a
permanent failure is ``bounced``; a DSN that gives up on a temporary failure
(status 4.x.x) is ``blocked``, a soft bounce; a "still trying" notice is
``deferred``, which changes nothing. Bounces arrive by the Inbound Parse hook (when
the bounce domain's MX points at SendGrid; see ``inbound``) or from an IMAP mailbox
(``fetch_bounces``), where each message is kept in the database before it is moved
to the ``Processed`` folder, and never deleted.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import imaplib
import logging
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from imap_tools.errors import ImapToolsError

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised, address_id, clean_text
from digestmail.models import EventKind, EventSource, utcnow

log = logging.getLogger(__name__)
# flufl.bounce narrates every detector it tries at INFO.
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)

_VERP_LABEL = b"digestmail.verp.v1"
_MAC_BYTES = 10  # 80 bits: 16 base32 letters
_TOKEN = re.compile(r"([0-9]{1,19})-([a-z2-7]{16})")
_DELIVERY_ID_MAX = 2**63 - 1
# Headers a receiving server puts the envelope recipient in (the bounce address + token).
_RECIPIENT_HEADERS = (
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "x-envelope-to",
    "x-delivered-to",
    "to",
)
_SENDERS = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)
# Parts of a bounce read for the statuses of its recipients, at most.
_MAX_PARTS = 200
_REASON_MAX = 2000


# --- VERP ---------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _verp_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), _VERP_LABEL, hashlib.sha256).digest()


def _mac(settings: Settings, delivery_id: int) -> str:
    key = _verp_key(settings.secret_key.get_secret_value())
    digest = hmac.new(key, str(delivery_id).encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest[:_MAC_BYTES]).decode("ascii").lower()


def return_path(settings: Settings, delivery_id: int | None) -> str | None:
    """The envelope sender for one message: the bounce address with the delivery's token,
    the bare bounce address for mail outside a campaign, None without a bounce address."""
    if not settings.bounce_address:
        return None
    if delivery_id is None:
        return settings.bounce_address
    local, _, domain = settings.bounce_address.rpartition("@")
    return f"{local}+{delivery_id}-{_mac(settings, delivery_id)}@{domain}"


def delivery_of(settings: Settings, address: str) -> int | None:
    """The delivery a VERP address names, if it is ours and its token checks out."""
    if not settings.bounce_address:
        return None
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = settings.bounce_address.rpartition("@")
    if domain.lower() != base_domain.lower():
        return None
    prefix = base_local.lower() + "+"
    if not local.lower().startswith(prefix):
        return None
    match = _TOKEN.fullmatch(local[len(prefix) :].lower())
    if match is None:
        return None
    delivery_id = int(match.group(1))
    if not 0 < delivery_id <= _DELIVERY_ID_MAX:
        return None
    if not hmac.compare_digest(match.group(2), _mac(settings, delivery_id)):
        return None
    return delivery_id


def is_bounce_address(settings: Settings, address: str) -> bool:
    """The bounce address itself, or it with any ``+token`` (valid or not)."""
    if not settings.bounce_address:
        return False
    local, _, domain = address.strip().strip("<>").lower().rpartition("@")
    base_local, _, base_domain = settings.bounce_address.lower().rpartition("@")
    return domain == base_domain and (local == base_local or local.startswith(base_local + "+"))


# --- reading a bounce ---------------------------------------------------------------


@dataclass(frozen=True)
class Bounce:
    """What a message says about mail that did not arrive; ``events`` is empty when it is
    not a bounce at all (an auto-reply, a person writing to the bounce address)."""

    events: list[Normalised] = field(default_factory=list)
    delivery_id: int | None = None
    problems: tuple[str, ...] = ()


def looks_like_bounce(settings: Settings, recipients: Iterable[str], raw: bytes) -> bool:
    """Whether a message received is for the bounce reader: sent to the bounce address,
    or a delivery status report (RFC 3464), or from a mailer daemon."""
    if any(is_bounce_address(settings, r) for r in recipients):
        return True
    try:
        headers = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
        content_type = str(headers.get("content-type", "")).lower()
        sender = str(headers.get("from", ""))
    except Exception:
        return False
    return "report-type=delivery-status" in content_type.replace('"', "").replace(" ", "") or bool(
        _SENDERS.search(sender)
    )


def read_bounce(
    settings: Settings,
    raw: bytes,
    *,
    envelope_recipients: Iterable[str] = (),
    message_key: str | None = None,
) -> Bounce:
    """The events a bounce message reports; never raises.

    ``envelope_recipients``: where the message was delivered (the Inbound Parse
    envelope); the message's own headers are searched too. ``message_key`` names the
    message in event ids (default: a hash of its bytes), so that reading the same
    message again stores nothing new.
    """
    problems: list[str] = []
    key = message_key or hashlib.sha256(raw).hexdigest()[:32]
    try:
        message = BytesParser(policy=compat32).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; a guard, not a case
        return Bounce(problems=(f"not readable as a message: {type(exc).__name__}",))
    delivery_id = _delivery(settings, message, envelope_recipients)
    try:
        from flufl.bounce import all_failures

        temporary, permanent = all_failures(message)
    except Exception as exc:
        problems.append(f"the bounce detectors failed: {type(exc).__name__}: {exc}"[:300])
        temporary, permanent = frozenset(), frozenset()
    statuses = _dsn_statuses(message)
    occurred = utcnow()
    events: list[Normalised] = []
    found: list[tuple[str, EventKind]] = []
    for address in sorted(permanent):
        email = _address_text(address)
        status, diagnostic = statuses.get(email.lower(), ("", ""))
        kind = EventKind.BLOCKED if status.startswith("4") else EventKind.BOUNCED
        found.append((email, kind))
    for address in sorted(temporary - permanent):
        found.append((_address_text(address), EventKind.DEFERRED))
    for email, kind in found:
        status, diagnostic = statuses.get(email.lower(), ("", ""))
        reason = " ".join(p for p in (status, diagnostic) if p) or None
        events.append(
            Normalised(
                event_id=f"bounce:{key}:{address_id(settings, email)}",
                kind=kind,
                source=EventSource.BOUNCE_MESSAGE,
                email=email[:320] or None,
                occurred_at=occurred,
                delivery_id=delivery_id,
                reason=clean_text(reason)[:_REASON_MAX] if reason else None,
                payload={
                    "message": key,
                    "recipient": email,
                    "status": status or None,
                    "diagnostic": clean_text(diagnostic)[:_REASON_MAX] or None,
                    "delivery_id": delivery_id,
                    "subject": clean_text(str(message.get("subject", "")))[:300],
                },
            )
        )
    return Bounce(events, delivery_id, tuple(problems))


def _address_text(address: bytes) -> str:
    return address.decode("ascii", "replace").strip().strip("<>")


def _delivery(settings: Settings, message: Message, envelope: Iterable[str]) -> int | None:
    candidates = list(envelope)
    for name in _RECIPIENT_HEADERS:
        for value in message.get_all(name, []) or []:
            try:
                candidates.extend(a for _, a in getaddresses([str(value)]))
            except Exception:
                continue
    for address in candidates:
        found = delivery_of(settings, address)
        if found is not None:
            return found
    return None


def _dsn_statuses(message: Message) -> dict[str, tuple[str, str]]:
    """Recipient (lower-cased) -> (Status, Diagnostic-Code) from a DSN's status part."""
    out: dict[str, tuple[str, str]] = {}
    try:
        parts = list(_walk(message))
    except Exception:
        return out
    for part in parts:
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if not isinstance(payload, list):
            continue
        for block in payload:
            if not isinstance(block, Message):
                continue
            recipient = ""
            for name in ("original-recipient", "final-recipient"):
                value = str(block.get(name, ""))
                if ";" in value:
                    recipient = value.split(";", 1)[1].strip().strip("<>").lower()
                    if recipient:
                        break
            if recipient:
                status = str(block.get("status", "")).strip()[:32]
                diagnostic = " ".join(str(block.get("diagnostic-code", "")).split())
                if ";" in diagnostic:
                    diagnostic = diagnostic.split(";", 1)[1].strip()
                out.setdefault(recipient, (status, diagnostic[:_REASON_MAX]))
    return out


def _walk(message: Message) -> Iterable[Message]:
    """The message's parts, depth first, without recursion and at most ``_MAX_PARTS``."""
    stack = [message]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


# --- the IMAP mailbox ---------------------------------------------------------------

PROCESSED_FOLDER = "Processed"
# Messages read per fetch at most; the rest wait for the next.
FETCH_MAX = 500
IMAP_TIMEOUT = 30.0
_IMAP_ERRORS = (imaplib.IMAP4.error, ImapToolsError, OSError)


@dataclass(frozen=True)
class ImapAddress:
    host: str
    port: int
    tls: bool
    user: str
    password: str = field(repr=False)
    folder: str

    @classmethod
    def parse(cls, url: str) -> ImapAddress:
        """``imaps://user:password@host:993/INBOX`` (``config`` has checked its shape)."""
        parts = urlsplit(url)
        tls = parts.scheme == "imaps"
        return cls(
            host=parts.hostname or "",
            port=parts.port or (993 if tls else 143),
            tls=tls,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            folder=unquote(parts.path.strip("/")) or "INBOX",
        )


class FetchError(Exception):
    """The mailbox could not be read (connection, login, folder); nothing was moved."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


@dataclass
class FetchReport:
    read: int = 0  # messages stored and moved to the processed folder
    bounces: int = 0  # of them, those that reported a failed delivery
    stored_events: int = 0
    changes: list[Any] = field(default_factory=list)  # subscribers.StatusChange
    failed: int = 0  # left in the mailbox for the next fetch (the log says why)


def fetch_bounces(
    db: Database, settings: Settings, *, ssl_context: ssl.SSLContext | None = None
) -> FetchReport:
    """Read the bounce mailbox once: each message is stored, read, and moved to
    ``Processed``; events the policy has not finished with are applied too.

    The periodic job and the on-demand fetch. Takes nothing but the database and the
    settings (a scheduler can call it as it is). Raises ``FetchError`` when the
    mailbox cannot be read at all; a message that cannot be stored or read stays in
    the mailbox for the next fetch. Without ``DIGESTMAIL_BOUNCE_IMAP_URL`` only the
    pending events are applied.
    """
    from digestmail import events, inbound

    report = FetchReport()
    events.apply_pending(db, settings)
    if settings.bounce_imap_url is None:
        return report
    where = ImapAddress.parse(settings.bounce_imap_url.get_secret_value())
    box = _login(where, ssl_context)
    try:
        if not box.folder.exists(PROCESSED_FOLDER):
            box.folder.create(PROCESSED_FOLDER)
        box.folder.set(where.folder)
        uids = list(box.uids())[:FETCH_MAX]
        for uid in uids:
            try:
                raw = _fetch_raw(box, uid)
                message_id = inbound.store(db, "message/rfc822", raw)
                result = inbound.handle_bounce(
                    settings, db, message_id, inbound.read_message(raw), raw
                )
            except Exception:
                log.exception("bounce mailbox: message %s left in %s", uid, where.folder)
                report.failed += 1
                continue
            box.move(uid, PROCESSED_FOLDER)
            report.read += 1
            if result.stored or result.events:
                report.bounces += 1
            report.stored_events += result.stored
            report.changes.extend(result.changes)
    except _IMAP_ERRORS as exc:
        raise FetchError(where.host, _imap_reason(exc)) from None
    finally:
        with contextlib.suppress(*_IMAP_ERRORS):
            box.logout()
    return report


def _login(where: ImapAddress, ssl_context: ssl.SSLContext | None) -> Any:
    from imap_tools import MailBox, MailBoxUnencrypted

    try:
        box: Any
        if where.tls:
            box = MailBox(where.host, where.port, timeout=IMAP_TIMEOUT, ssl_context=ssl_context)
        else:
            box = MailBoxUnencrypted(where.host, where.port, timeout=IMAP_TIMEOUT)
    except _IMAP_ERRORS as exc:
        raise FetchError(where.host, f"cannot connect: {_imap_reason(exc)}") from None
    try:
        box.login(where.user, where.password, initial_folder=where.folder)
    except _IMAP_ERRORS as exc:
        with contextlib.suppress(*_IMAP_ERRORS):
            box.logout()
        raise FetchError(where.host, f"login or folder refused: {_imap_reason(exc)}") from None
    return box


def _fetch_raw(box: Any, uid: str) -> bytes:
    """The message's bytes exactly as stored (imap-tools keeps only a parsed copy)."""
    status, data = box.client.uid("FETCH", uid, "(BODY.PEEK[])")
    if status != "OK":
        raise FetchError("imap", f"FETCH {uid} answered {status}")
    for item in data:
        if isinstance(item, tuple) and len(item) > 1 and isinstance(item[1], bytes):
            return item[1]
    raise FetchError("imap", f"FETCH {uid} returned no message")


def _imap_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
