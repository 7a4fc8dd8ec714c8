"""Provider events in our own words: one ``Normalised`` per event, whatever sent it.

The tables below are the only place that knows SendGrid's event names, bounce types
and drop reasons; the policy (``events.policy``) reads ``EventKind`` and nothing else,
the way django-anymail maps every provider onto one set of event types. Bounce
messages (``digestmail.bounces``) and refusals while sending by SMTP
(``events.record_refusals``) build ``Normalised`` values of their own.

``parse_sendgrid`` reads a webhook body. The body is signed by SendGrid, but it is
read as if it were not: any field may be missing, of the wrong type or huge. What is
an event object is accepted and kept whole (its fields read as well as they can be);
what is not is refused with the reason, by its place in the batch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from digestmail.config import Settings
from digestmail.models import ID_MAX, Event, EventKind, EventSource, max_length

# SendGrid's ``event`` field.
SENDGRID_EVENTS: Mapping[str, EventKind] = {
    "processed": EventKind.OTHER,
    "delivered": EventKind.DELIVERED,
    "deferred": EventKind.DEFERRED,
    "bounce": EventKind.BOUNCED,  # refined by its type and classification below
    "dropped": EventKind.DROPPED,  # refined by its reason below
    "open": EventKind.OPENED,
    "click": EventKind.CLICKED,
    "spamreport": EventKind.COMPLAINED,
    "unsubscribe": EventKind.UNSUBSCRIBED,
    "group_unsubscribe": EventKind.UNSUBSCRIBED,
    "group_resubscribe": EventKind.OTHER,
}
# A ``bounce`` event's ``type``: "bounce" is a hard bounce, "blocked" a soft one.
SENDGRID_BOUNCE_TYPES: Mapping[str, EventKind] = {
    "bounce": EventKind.BOUNCED,
    "blocked": EventKind.BLOCKED,
    "expired": EventKind.BLOCKED,
}
# A ``bounce`` event's ``bounce_classification`` that overrides its type: SendGrid
# gives up on a message still deferred after 72 hours and reports it "Expired", which
# is a soft bounce (deferrals past SendGrid's retries), not a dead address.
SENDGRID_BOUNCE_CLASSES: Mapping[str, EventKind] = {"expired": EventKind.BLOCKED}
# A ``dropped`` event's ``reason`` (lower-cased): SendGrid did not send because the
# address is on one of its lists. Other reasons ("Invalid SMTPAPI header", …) are
# about the message, not the address, and stay ``dropped``.
SENDGRID_DROP_REASONS: Mapping[str, EventKind] = {
    "bounced address": EventKind.BOUNCED,
    "invalid": EventKind.BOUNCED,
    "spam reporting address": EventKind.COMPLAINED,
    "unsubscribed address": EventKind.UNSUBSCRIBED,
}

# Largest ids the custom args may name: Integer keys (campaign, subscriber), BigInteger
# (delivery). Larger numbers name nothing and are dropped, not passed to the driver.
_DELIVERY_ID_MAX = 2**63 - 1
# How much of a provider's reason text is kept in its own column (the payload has all).
REASON_MAX = 2000
_ID_MAX_LEN = 200
_EMAIL_MAX = max_length(Event.email)
# JSON escapes of a NUL or of a surrogate (a lone one cannot be stored).
_ESCAPES = re.compile(r"\\u(?:0000|d[89a-f])", re.IGNORECASE)


@dataclass(frozen=True)
class Normalised:
    """One event in our words, ready to store; ``payload`` is the event as it came."""

    event_id: str  # unique across sources: replays and duplicates store once
    kind: EventKind
    source: EventSource
    email: str | None
    occurred_at: datetime
    campaign_id: int | None = None
    subscriber_id: int | None = None
    delivery_id: int | None = None
    reason: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refused:
    index: int  # its place in the batch, from 0
    reason: str


@dataclass(frozen=True)
class ParsedBatch:
    events: list[Normalised]  # accepted, duplicates within the batch removed
    refused: list[Refused]
    duplicates: int = 0  # repeated within this batch (the same event id)


class NotABatch(ValueError):
    """The body is not a JSON list: nothing in it can be read as events."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_sendgrid(body: bytes, *, received_at: datetime | None = None) -> ParsedBatch:
    """A webhook body as normalised events; raises only ``NotABatch``.

    Every item that is a JSON object is accepted (``Normalised.payload`` keeps it
    whole); other items are refused by index. Events repeated within the batch are
    kept once.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotABatch(f"the body is not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise NotABatch(f"the body is not readable JSON ({str(exc)[:200]})") from None
    if not isinstance(data, list):
        raise NotABatch(f"expected a JSON list of events, got a JSON {_json_type(data)}")
    now = received_at or datetime.now(UTC)
    # Only a body that spells out a NUL or a surrogate in an escape can hold one.
    clean = _ESCAPES.search(text) is not None
    events: list[Normalised] = []
    refused: list[Refused] = []
    seen: set[str] = set()
    duplicates = 0
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            refused.append(Refused(index, f"not an event object but a JSON {_json_type(item)}"))
            continue
        event = sendgrid_event(item, now, clean=clean)
        if event.event_id in seen:
            duplicates += 1
            continue
        seen.add(event.event_id)
        events.append(event)
    return ParsedBatch(events, refused, duplicates)


def _not_json(name: str) -> Any:
    # Python reads NaN and Infinity; JSON (and PostgreSQL's JSON columns) has neither.
    raise ValueError(f"{name} is not a JSON value")


def sendgrid_event(
    item: dict[str, Any], received_at: datetime, *, clean: bool = True
) -> Normalised:
    """One SendGrid event object in our words; never raises.

    ``clean=False``: the caller knows no string in it holds a NUL or a lone surrogate.
    """
    name = _text(item.get("event")).lower()
    kind = SENDGRID_EVENTS.get(name, EventKind.OTHER)
    reason = _text(item.get("reason")) or _text(item.get("response")) or None
    if name == "bounce":
        kind = SENDGRID_BOUNCE_TYPES.get(_text(item.get("type")).lower(), EventKind.BOUNCED)
        kind = SENDGRID_BOUNCE_CLASSES.get(_text(item.get("bounce_classification")).lower(), kind)
    elif name == "dropped":
        kind = SENDGRID_DROP_REASONS.get((reason or "").strip().lower(), EventKind.DROPPED)
    status = _text(item.get("status"))
    if reason and status and status not in reason:
        reason = f"{status} {reason}"
    email = _text(item.get("email")).strip() or None
    return Normalised(
        event_id=_sendgrid_event_id(item),
        kind=kind,
        source=EventSource.SENDGRID,
        email=email[:_EMAIL_MAX] if email else None,
        occurred_at=unix_time(item.get("timestamp")) or received_at,
        campaign_id=id_value(item.get("campaign_id"), ID_MAX),
        subscriber_id=id_value(item.get("subscriber_id"), ID_MAX),
        delivery_id=id_value(item.get("delivery_id"), _DELIVERY_ID_MAX),
        reason=reason[:REASON_MAX] if reason else None,
        payload=storable(item) if clean else item,
    )


def _sendgrid_event_id(item: dict[str, Any]) -> str:
    """``sendgrid:`` and SendGrid's ``sg_event_id``; a hash of the event when it has none
    usable, so that the same event posted twice is still stored once."""
    given = item.get("sg_event_id")
    if (
        isinstance(given, str)
        and given.strip()
        and clean_text(given) == given
        and len(given) <= _ID_MAX_LEN - 9
    ):
        return f"sendgrid:{given}"
    return f"sendgrid-hash:{content_hash(item)}"


_ADDRESS_LABEL = b"digestmail.event-address.v1"


def address_id(settings: Settings, email: str) -> str:
    """An address as it appears in event ids: keyed and one-way, so that an id says
    nothing about the person once their address is erased (and nobody holding the
    database can test guessed addresses against it)."""
    key = hmac.new(settings.secret_key.get_secret_value().encode(), _ADDRESS_LABEL, "sha256")
    mac = hmac.new(key.digest(), email.strip().lower().encode("utf-8", "replace"), "sha256")
    return mac.hexdigest()[:32]


def content_hash(value: Any) -> str:
    """A stable hash of a JSON value (keys sorted), for events that carry no id."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def unix_time(value: Any) -> datetime | None:
    """Seconds since 1970 (a number, or digits in a string) as a UTC time; None if unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value or len(value) > 20:
            return None
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 <= value < 253402300800:  # before year 10000
        return None
    return datetime.fromtimestamp(value, UTC)


def id_value(value: Any, maximum: int) -> int | None:
    """A positive id from a custom arg (SendGrid sends them back as strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            return None
        value = int(value)
    if isinstance(value, int) and 0 < value <= maximum:
        return value
    return None


def _text(value: Any) -> str:
    """A string field as text (numbers too: SendGrid's ``status`` may be either)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def clean_text(value: str) -> str:
    """Text every database takes: no NUL, no lone surrogate (JSON's ``\\ud800`` decodes
    to one, and neither PostgreSQL nor UTF-8 can hold it)."""
    if value.isascii():
        return value.replace("\x00", "")
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def storable(value: Any) -> Any:
    """A JSON value with every string (keys too) made storable by ``clean_text``.

    Walks with a stack of its own, not recursion: the parser has already accepted the
    nesting, and this must not be the place that fails on it.
    """
    if isinstance(value, str):
        return clean_text(value)
    if not isinstance(value, dict | list):
        return value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, key = stack.pop()
        if isinstance(item, dict):
            keys = [(clean_text(k), v) for k, v in item.items()]
            copy: Any = dict.fromkeys(k for k, _ in keys)  # the order as it came
            for k, v in keys:
                stack.append((v, copy, k))
        elif isinstance(item, list):
            copy = [None] * len(item)
            for i, v in enumerate(item):
                stack.append((v, copy, i))
        elif isinstance(item, str):
            copy = clean_text(item)
        else:
            copy = item
        parent[key] = copy
    return root[0]


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
