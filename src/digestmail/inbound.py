"""Mail we receive at the contact address (SendGrid Inbound Parse): kept, read, acted on.

Three steps, in this order, because anybody can write to the contact address and the
post is hostile until read:

1. ``store`` keeps the post exactly as it arrived (bytes, so PostgreSQL's text columns'
   ban on NUL does not apply) in its own transaction. From then on nothing is lost,
   whatever the rest meets.
2. ``parse_post`` reads it: SendGrid's "parsed" fields (each in the character set its
   ``charsets`` entry names) or the whole message in "raw" mode (the ``email`` field).
   It never raises; what it cannot read is named in ``Message.problems``.
3. ``handle`` stores what was read next to the raw post and acts on it: "subscribe" and
   "unsubscribe" both end in a confirmation email, because a From header can be forged.
   A bounce (mail to the bounce address, a delivery status report, a mailer daemon's
   message) goes to ``handle_bounce`` instead, which reads it with ``bounces`` and hands
   its events to ``events.receive``. Bounces fetched from the IMAP mailbox take the
   same path (``store``, ``read_message``, ``handle_bounce``).

``receive`` runs the three; the web hook only checks its token, reads the post and
hands it over, the way a provider's webhook view verifies, parses and hands off.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from email.message import Message as MimeMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import getaddresses
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import QueryableAttribute

from digestmail import bounces, confirmation, events, subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.formdata import Form, parse_form
from digestmail.models import InboundMessage, SubscriberSource, fit, utcnow
from digestmail.transports.base import TransportError

log = logging.getLogger(__name__)

# SendGrid takes messages up to 30 MB; the post around one is a little larger.
MAX_POST_BYTES = 40 * 1024 * 1024
# The fields of an Inbound Parse post that are read; attachments stay in the raw post.
FIELDS = ("from", "to", "subject", "text", "headers", "envelope", "charsets", "email")
# Parts of a raw message looked at for its text, at most: a bomb of nested parts
# costs no more than this.
_MAX_PARTS = 500
# How much of the subject goes into a consent record.
_SUBJECT_IN_CONSENT = 200

_UNSUBSCRIBE = re.compile(r"\b(unsubscribe|unsub|remove me)\b", re.IGNORECASE)
_SUBSCRIBE = re.compile(r"\bsubscribe\b", re.IGNORECASE)
_AUTO = re.compile(r"^auto-submitted:\s*auto-", re.IGNORECASE | re.MULTILINE)
# RFC 2047 encoded words: =?charset?B|Q?text?=
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")
_BARE_ADDRESS = re.compile(r"[^\s<>(),;:\"\[\]@]+@[^\s<>(),;:\"\[\]@]+")


class Action(StrEnum):
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"  # a bounce report, read and applied
    NONE = "none"  # left for staff


@dataclass(frozen=True)
class Message:
    """What the parser made of a post. Every field is text; missing ones are empty."""

    sender: str  # the bare address from the From header (or the envelope); "" if none
    recipients: tuple[str, ...]
    subject: str
    text: str
    headers: str
    problems: tuple[str, ...] = ()
    # The whole message when the post has it (raw mode), else its headers and text.
    raw: bytes = b""


@dataclass(frozen=True)
class Receipt:
    message_id: int
    action: Action


def receive(settings: Settings, database: Database, content_type: str, body: bytes) -> Receipt:
    """Keep a post, then read it and act on it. Once stored, nothing here raises.

    If reading or acting fails after all (a database outage, a bug), the post stays
    stored and unhandled for staff, and the failure is logged with its traceback: a
    retry by the sender could only store it twice.
    """
    message_id = store(database, content_type, body)
    try:
        action = handle(settings, database, message_id, parse_post(content_type, body))
    except Exception:
        log.exception("inbound %s: kept as received, but not handled", message_id)
        action = Action.NONE
    return Receipt(message_id, action)


def store(database: Database, content_type: str, body: bytes) -> int:
    """Keep the post as it arrived, before anything reads it; returns its id."""
    with database.session() as session:
        row = InboundMessage(content_type=_storable(content_type), raw=body)
        session.add(row)
        session.flush()
        return row.id


# --- reading -------------------------------------------------------------------------


def parse_post(content_type: str, body: bytes) -> Message:
    """The parts of an Inbound Parse post we use, in "parsed" or "raw" mode; never raises."""
    problems: list[str] = []
    form = parse_form(content_type, body, FIELDS)
    problems.extend(form.problems)
    charsets = _json_object(form, "charsets", problems)

    def field(name: str) -> str:
        data = form.text(name)
        if data is None:
            return ""
        named = charsets.get(name)
        part = form.fields[name]
        charset = named if isinstance(named, str) else part.charset or "utf-8"
        return _decode(data, charset, problems, name)

    subject, text = field("subject"), field("text")
    raw = form.fields.get("email")
    if raw is not None and not (subject or text):
        headers, from_header, to_header, subject, text = _read_mime(raw.data, problems)
        whole = raw.data
    else:
        headers, from_header, to_header = field("headers"), field("from"), field("to")
        # Parsed mode: the detectors that read text can still work on headers and text.
        whole = (headers.rstrip("\n") + "\n\n" + text).encode("utf-8", "replace")
    envelope = _json_object(form, "envelope", problems)
    sender = _first_address(from_header)
    if not sender and isinstance(envelope.get("from"), str):
        sender = _first_address(envelope["from"])
    recipients = [address for _, address in _addresses(to_header)]
    env_to = envelope.get("to")
    if isinstance(env_to, list):
        recipients += [str(address) for address in env_to if isinstance(address, str)]
    return Message(
        sender=sender,
        recipients=tuple(r.strip() for r in recipients if r.strip()),
        subject=_decode_words(subject, problems).strip(),
        text=text,
        headers=headers,
        problems=tuple(problems),
        raw=whole,
    )


def read_message(data: bytes) -> Message:
    """A whole message (as fetched from a mailbox) read like a raw-mode post; never raises."""
    problems: list[str] = []
    headers, from_header, to_header, subject, text = _read_mime(data, problems)
    return Message(
        sender=_first_address(from_header),
        recipients=tuple(address.strip() for _, address in _addresses(to_header)),
        subject=_decode_words(subject, problems).strip(),
        text=text,
        headers=headers,
        problems=tuple(problems),
        raw=data,
    )


def _decode(data: bytes, charset: str, problems: list[str], what: str) -> str:
    """Bytes as text in the named character set; UTF-8 (with replacements) if unknown."""
    try:
        return data.decode(charset.strip().strip('"'), "replace")
    except Exception:  # LookupError, and what exotic codecs raise even with "replace"
        problems.append(f"{what}: unknown character set {charset[:40]!r}, read as UTF-8")
        return data.decode("utf-8", "replace")


def _json_object(form: Form, name: str, problems: list[str]) -> dict[str, Any]:
    data = form.text(name)
    if not data:
        return {}
    try:
        value = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        problems.append(f"{name}: not readable JSON, ignored")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{name}: not a JSON object, ignored")
        return {}
    return value


def _header_text(value: str) -> str:
    """A raw header value from the byte parser as text: 8-bit bytes read as UTF-8."""
    if _is_escaped(value):
        value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    return " ".join(value.split())


def _is_escaped(value: str) -> bool:
    """Whether the only non-ASCII characters are the byte parser's escapes of 8-bit bytes."""
    return all(ord(c) < 128 or 0xDC80 <= ord(c) <= 0xDCFF for c in value)


def _read_mime(data: bytes, problems: list[str]) -> tuple[str, str, str, str, str]:
    """Headers, From, To, Subject and the plain text of a whole message (raw mode)."""
    try:
        message: MimeMessage = BytesParser(policy=compat32).parsebytes(data)
        body = _plain_text(message, problems)
    except Exception:  # RecursionError on parts nested thousands deep, among others
        problems.append("email: the message's parts cannot be read (nested too deeply?)")
        message = BytesHeaderParser(policy=compat32).parsebytes(data)
        body = ""
    headers = [(name, _header_text(str(value))) for name, value in message.raw_items()]

    def first(name: str) -> str:
        return next((v for k, v in headers if k.lower() == name), "")

    text_headers = "".join(f"{name}: {value}\n" for name, value in headers)
    return text_headers, first("from"), first("to"), first("subject"), body


def _plain_text(message: MimeMessage, problems: list[str]) -> str:
    """The first text/plain part that is not an attachment, found without recursion."""
    stack = [message]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, MimeMessage)]))
            continue
        if part.get_content_type() != "text/plain" or part.get_filename() is not None:
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            return ""
        try:
            charset = part.get_content_charset() or "utf-8"
        except Exception:
            charset = "utf-8"
        return _decode(data, charset, problems, "email")
    return ""


def _decode_words(text: str, problems: list[str]) -> str:
    """RFC 2047 encoded words decoded; whitespace between two of them dropped."""
    out: list[str] = []
    pos = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        if not (after_word and not between.strip()):
            out.append(between)
        charset, encoding, payload = match.groups()
        try:
            if encoding in "Bb":
                data = base64.b64decode(payload + "=" * (-len(payload) % 4))
            else:
                data = binascii.a2b_qp(payload.encode("ascii", "replace"), header=True)
        except (binascii.Error, ValueError):
            out.append(match.group(0))
            after_word = False
        else:
            out.append(_decode(data, charset.split("*", 1)[0], problems, "subject"))
            after_word = True
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def _addresses(header: str) -> list[tuple[str, str]]:
    """(name, address) pairs of an address header; never raises on a broken one."""
    try:
        pairs = getaddresses([header])
    except Exception:  # the standard library's parser trips on some broken headers
        pairs = []
    found = [(name, address) for name, address in pairs if "@" in address]
    if found:
        return found
    return [("", address) for address in _BARE_ADDRESS.findall(header)]


def _first_address(header: str) -> str:
    found = _addresses(header)
    return found[0][1].strip() if found else ""


# --- acting --------------------------------------------------------------------------


def command_of(message: Message, contact_address: str) -> Action:
    """What the message asks for, if anything.

    Only mail to the contact address counts, only the subject or the first non-empty
    line of the body is read (a quoted footer further down says "unsubscribe"), and
    auto-replies never act. Unsubscribe wins when both words appear.
    """
    if _AUTO.search(message.headers):
        return Action.NONE
    contact = contact_address.strip().lower()
    if contact not in {r.strip().lower() for r in message.recipients}:
        return Action.NONE
    first_line = next((line.strip() for line in message.text.splitlines() if line.strip()), "")
    for place in (message.subject, first_line):
        if _UNSUBSCRIBE.search(place):
            return Action.UNSUBSCRIBE
    for place in (message.subject, first_line):
        if _SUBSCRIBE.search(place):
            return Action.SUBSCRIBE
    return Action.NONE


def handle(settings: Settings, database: Database, message_id: int, message: Message) -> Action:
    """Store what was read next to the raw post, act on it, and say what was done."""
    if bounces.looks_like_bounce(settings, message.recipients, message.raw):
        handle_bounce(settings, database, message_id, message, message.raw)
        return Action.BOUNCE
    action = command_of(message, settings.contact_address)
    try:
        address: subscribers.Address | None = subscribers.normalize(message.sender)
    except subscribers.InvalidAddress:
        address = None
        action = Action.NONE
    people: list[tuple[int, str]] = []
    with database.session() as session:
        row = session.get_one(InboundMessage, message_id)
        _fill(row, message, address.email if address else message.sender, message.problems)
        row.action = action
        if address is not None and action is Action.SUBSCRIBE:
            subject = _storable(message.subject[:_SUBJECT_IN_CONSENT])
            request = subscribers.request_subscription(
                session,
                address,
                name=None,
                source=SubscriberSource.EMAIL,
                consent_text=(
                    f"Email from {address.email} to {settings.contact_address} with subject "
                    f"{subject!r}; confirmed by the link in the confirmation email"
                ),
            )
            if request.needs_confirmation:
                people.append((request.subscriber_id, request.email))
        elif address is not None and action is Action.UNSUBSCRIBE:
            sub = subscribers.find(session, address.email)
            if sub is not None and sub.status not in subscribers.SUPPRESSED:
                people.append((sub.id, sub.email))
    if people:
        kind = (
            confirmation.Kind.SUBSCRIBE
            if action is Action.SUBSCRIBE
            else confirmation.Kind.UNSUBSCRIBE
        )
        try:
            confirmation.send(settings, kind, people)
        except TransportError as exc:
            # The message is stored; staff see it unhandled and can act by hand.
            log.error(
                "inbound %s: confirmation not sent: %s",
                message_id,
                confirmation.redact(str(exc), people),
            )
            return action
    with database.session() as session:
        session.get_one(InboundMessage, message_id).handled_at = utcnow()
    return action


@dataclass(frozen=True)
class BounceResult:
    events: int  # failed deliveries the message reports
    stored: int  # of them, new (the message may have been read before)
    changes: list[subscribers.StatusChange]


def handle_bounce(
    settings: Settings, database: Database, message_id: int, message: Message, raw: bytes
) -> BounceResult:
    """Read a stored message as a bounce, store its events and apply the policy.

    The message's row says what was read and ``bounce`` (or ``none`` when it reports
    no failed delivery: an auto-reply, a person writing to the bounce address).
    """
    bounce = bounces.read_bounce(settings, raw, envelope_recipients=message.recipients)
    receipt = events.receive(database, settings, bounce.events)
    with database.session() as session:
        row = session.get_one(InboundMessage, message_id)
        _fill(row, message, message.sender, (*message.problems, *bounce.problems))
        row.action = Action.BOUNCE if bounce.events else Action.NONE
        row.handled_at = utcnow()
    return BounceResult(len(bounce.events), receipt.stored, receipt.changes)


def _fill(row: InboundMessage, message: Message, sender: str, problems: tuple[str, ...]) -> None:
    row.sender = _storable(sender, InboundMessage.sender) or None
    row.recipient = _storable(", ".join(message.recipients), InboundMessage.recipient) or None
    row.subject = _storable(message.subject, InboundMessage.subject) or None
    row.text = _storable(message.text) or None
    row.problem = _storable("\n".join(problems)) or None


def _storable(text: str, column: QueryableAttribute[Any] | None = None) -> str:
    """Text any database column takes: no NUL (PostgreSQL), no lone surrogates, fits.

    The raw post keeps the original bytes; these columns are only the reading of it.
    """
    clean = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return fit(column, clean) if column is not None else clean
