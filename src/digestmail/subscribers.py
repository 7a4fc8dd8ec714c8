"""The list: subscribe, confirm, unsubscribe, suppress, and the staff's bulk tools.

Three promises shape every function here: nobody is mailed without consent (a
subscription is ``pending`` until its confirmation link is followed, unless staff
vouch for it), nobody who left is mailed again (nothing here turns an unsubscribed,
bounced or complained address back to ``active`` without a fresh confirmation), and
no subscription is lost (concurrent requests for one address converge on one row).

Functions take a ``Session`` and leave committing to the caller, so the web app and
the CLI decide where a transaction ends -- and send mail only after it has.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import String, Table, delete, func, literal, select, update
from sqlalchemy.orm import Session

from digestmail.config import Settings
from digestmail.db import insert_ignoring
from digestmail.models import (
    ChangeCause,
    Delivery,
    ErasedAddress,
    Event,
    EventKind,
    InboundMessage,
    SoftBounce,
    Subscriber,
    SubscriberChange,
    SubscriberSource,
    SubscriberStatus,
    SubscriptionRequest,
    fit,
    utcnow,
)
from digestmail.names import clean_name

# Statuses that mean "do not mail": a new subscription request never overrides them
# by itself, only a confirmation does.
SUPPRESSED = frozenset(
    {SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED}
)
# How strong a suppression is: a complaint outranks everything, and an unsubscribe
# is never downgraded to a bounce. Whatever suppresses never moves down this scale.
_SUPPRESSION_RANK = {
    SubscriberStatus.BOUNCED: 1,
    SubscriberStatus.UNSUBSCRIBED: 2,
    SubscriberStatus.COMPLAINED: 3,
}

_T = TypeVar("_T")
# Bulk statements stay well below SQLite's and psycopg's parameter limits.
_CHUNK = 1000


UNMAILABLE_REASON = (
    "this address has characters in the part before the @ that mail services cannot "
    "deliver to; please use another address"
)


class InvalidAddress(ValueError):
    """An address email-validator refuses; the message says why, for a person to read."""

    def __init__(self, address: str, reason: str, *, problem: str = "is not a valid email address"):
        super().__init__(f"{address!r} {problem}: {reason}")
        self.address = address
        self.reason = reason


class UnmailableAddress(InvalidAddress):
    """A valid address that needs SMTPUTF8 (a non-ASCII local part, ``josé@…``).

    Neither our SMTP transport nor SendGrid speaks SMTPUTF8, so such an address
    could be stored but never mailed: the person is told at once instead of waiting
    for a confirmation that cannot arrive.
    """

    def __init__(self, address: str) -> None:
        super().__init__(address, UNMAILABLE_REASON, problem="cannot be mailed")


@dataclass(frozen=True)
class Address:
    email: str  # as typed, domain normalised (what we store and send to)
    key: str  # lower-cased: what uniqueness is decided on


def email_key(address: str) -> str:
    """The lookup key for an already-normalised address.

    ``lower()`` rather than ``casefold()``: case-folding maps "ß" to "ss" and would
    merge two different mailboxes.
    """
    return address.strip().lower()


def normalize(raw: str) -> Address:
    """Validate an address (syntax only: no DNS, which is slow and flaky) and key it.

    Strict: the part before the @ is at most 64 characters (RFC 5321), which mail
    servers are entitled to refuse beyond.

    Only addresses our transports can put in an envelope pass: the ASCII form is
    kept (an internationalised domain becomes its punycode, which every MTA takes,
    and ``jane@bücher.de`` and ``jane@xn--bcher-kva.de`` are then one subscriber).
    """
    text = raw.strip()
    if not text:
        raise InvalidAddress(raw, "it is empty")
    # Imported here, like the dialects below: the sender uses this module's keys and
    # values, and loading a validator and both dialects would slow every send's start.
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False, strict=True)
    except EmailNotValidError as exc:
        if not text.rpartition("@")[0].isascii() and _valid_with_smtputf8(text):
            raise UnmailableAddress(text) from None
        raise InvalidAddress(text, str(exc)) from None
    email = result.ascii_email
    if email is None:  # never without SMTPUTF8; a guard, not a case
        raise UnmailableAddress(text)
    return Address(email, email_key(email))


def _valid_with_smtputf8(text: str) -> bool:
    """Whether SMTPUTF8 is all an address lacks (else its real error is the one to show)."""
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(text, check_deliverability=False, allow_smtputf8=True, strict=True)
    except EmailNotValidError:
        return False
    return True


# The erasure key's own derivation label: never changes, so neither do the hashes
# while the secret key stays the same.
_ERASURE_LABEL = b"digestmail.erased-address.v1"


@lru_cache(maxsize=8)
def _erasure_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), _ERASURE_LABEL, hashlib.sha256).digest()


def erased_hash(settings: Settings, key: str) -> str:
    """What remains of an erased address: enough to recognise it, not to read it.

    An HMAC-SHA256 (64 hex characters), not a plain hash: anybody holding a copy of
    the database could otherwise hash a list of candidate addresses and find out who
    asked to be forgotten. The key is derived from ``DIGESTMAIL_SECRET_KEY`` under a
    label of its own, so it is independent of the link-signing keys and stable for as
    long as the secret key is. Rotating the secret key therefore forgets every
    recorded erasure (the old hashes cannot be recomputed without the addresses, which
    are gone): an erased address could come back through an import of an old list.
    """
    key_bytes = _erasure_key(settings.secret_key.get_secret_value())
    return hmac.new(key_bytes, key.encode("utf-8"), hashlib.sha256).hexdigest()


def find(session: Session, address: str) -> Subscriber | None:
    """The subscriber for an address in any case, or None (invalid addresses: None)."""
    try:
        key = normalize(address).key
    except InvalidAddress:
        key = email_key(address)
    return session.scalars(select(Subscriber).where(Subscriber.email_key == key)).one_or_none()


def is_erased(session: Session, settings: Settings, key: str) -> bool:
    digest = erased_hash(settings, key)
    return (
        session.scalar(select(ErasedAddress.id).where(ErasedAddress.email_hash == digest))
        is not None
    )


# --- inserting without losing a race ------------------------------------------------


def _insert_ignoring_duplicates(
    session: Session, rows: Sequence[dict[str, Any]]
) -> list[tuple[int, str]]:
    """INSERT … ON CONFLICT (email_key) DO NOTHING on both backends; (id, email) of new rows.

    Two requests for one address at the same moment must both succeed and leave one
    row; catching IntegrityError instead would poison the session on PostgreSQL.
    """
    inserted: list[tuple[int, str]] = []
    if not rows:
        return inserted
    table = cast(Table, Subscriber.__table__)
    stmt = insert_ignoring(session, table, "email_key").returning(table.c.id, table.c.email)
    for start in range(0, len(rows), _CHUNK):
        # Core, not the ORM's bulk path: several times faster for 100,000 rows.
        result = session.connection().execute(stmt, list(rows[start : start + _CHUNK]))
        inserted.extend((row.id, row.email) for row in result)
    return inserted


def _consent(now: datetime, ip: str | None, by: str | None, text: str | None) -> dict[str, Any]:
    return {"consent_at": now, "consent_ip": ip, "consent_by": by, "consent_text": text}


# --- every change of status, with its cause -----------------------------------------


@dataclass(frozen=True)
class StatusChange:
    """A change of one subscriber's status, and why; see ``change_status``."""

    subscriber_id: int
    status: SubscriberStatus
    cause: ChangeCause
    detail: str | None = None
    event_id: int | None = None
    event_kind: EventKind | None = None
    by: str | None = None
    # Only a subscriber in one of these statuses changes (None: any other status).
    only_from: frozenset[SubscriberStatus] | None = None


# A creation's cause, by the source of the request that created the row.
_CREATED_BY = {
    SubscriberSource.FORM: ChangeCause.FORM,
    SubscriberSource.EMAIL: ChangeCause.EMAIL,
    SubscriberSource.STAFF: ChangeCause.STAFF,
    SubscriberSource.IMPORT: ChangeCause.IMPORT,
}


def change_status(session: Session, changes: Sequence[StatusChange]) -> list[StatusChange]:
    """The one way a subscriber's status changes: the change and its record, together.

    Bulk (a statement per target status and a history insert, however many rows), so
    the event policy can apply a whole webhook batch in one call. Changes apply in
    order; one that would change nothing (same status, or not from ``only_from``) is
    skipped, and so is one for a subscriber that is gone. Returns those that applied.
    The dates that go with a status (``unsubscribed_at``, ``confirmed_at``) are set here
    too, and a confirmed subscriber's soft-bounce points are forgotten.
    """
    if not changes:
        return []
    now = utcnow()
    current: dict[int, SubscriberStatus] = {}
    ids = sorted({c.subscriber_id for c in changes})
    for chunk in _chunks(ids, _CHUNK):
        rows = session.execute(
            select(Subscriber.id, Subscriber.status)
            .where(Subscriber.id.in_(chunk))
            .with_for_update()
        )
        current.update((row.id, SubscriberStatus(row.status)) for row in rows)
    applied: list[tuple[StatusChange, SubscriberStatus]] = []
    for change in changes:
        old = current.get(change.subscriber_id)
        if old is None or old is change.status:
            continue
        if change.only_from is not None and old not in change.only_from:
            continue
        current[change.subscriber_id] = change.status
        applied.append((change, old))
    final: dict[SubscriberStatus, list[int]] = {}
    for sid in {c.subscriber_id for c, _ in applied}:
        final.setdefault(current[sid], []).append(sid)
    for status, sids in final.items():
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if status is SubscriberStatus.UNSUBSCRIBED:
            values["unsubscribed_at"] = now
        if status is SubscriberStatus.ACTIVE:
            values.update(confirmed_at=now, soft_bounce_score=0, soft_bounce_at=None)
        for chunk in _chunks(sorted(sids), _CHUNK):
            session.execute(
                update(Subscriber).where(Subscriber.id.in_(chunk)).values(**values),
                execution_options={"synchronize_session": "evaluate"},
            )
            if status is SubscriberStatus.ACTIVE:
                session.execute(delete(SoftBounce).where(SoftBounce.subscriber_id.in_(chunk)))
    _record(
        session,
        [
            {
                "subscriber_id": c.subscriber_id,
                "old_status": old,
                "new_status": c.status,
                "cause": c.cause,
                "event_id": c.event_id,
                "event_kind": c.event_kind,
                "detail": c.detail,
                "by": fit(SubscriberChange.by, c.by) if c.by else None,
                "at": now,
            }
            for c, old in applied
        ],
    )
    return [c for c, _ in applied]


def _created(
    session: Session,
    rows: Sequence[tuple[int, str]],
    status: SubscriberStatus,
    cause: ChangeCause,
    *,
    by: str | None = None,
    detail: str | None = None,
) -> None:
    """Record the first status of rows just inserted (``change_status``'s twin for inserts)."""
    now = utcnow()
    by = fit(SubscriberChange.by, by) if by else None
    _record(
        session,
        [
            {
                "subscriber_id": sid,
                "old_status": None,
                "new_status": status,
                "cause": cause,
                "event_id": None,
                "event_kind": None,
                "detail": detail,
                "by": by,
                "at": now,
            }
            for sid, _ in rows
        ],
    )


def _created_if(
    session: Session,
    subscriber_id: int,
    created: bool,
    status: SubscriberStatus,
    cause: ChangeCause,
    by: str | None,
) -> None:
    """``_created`` for one row that may or may not be new, in one statement either way.

    INSERT … SELECT … WHERE ``created``: the public form does the same work whether or
    not the address was already on the list (see ``request_subscription``).
    """
    table = cast(Table, SubscriberChange.__table__)
    by = fit(SubscriberChange.by, by) if by else None
    row = select(
        literal(subscriber_id, table.c.subscriber_id.type),
        literal(status.value, String),
        literal(cause.value, String),
        literal(by, String),
        literal(utcnow(), table.c.at.type),
    ).where(literal(created))
    session.execute(
        table.insert().from_select(["subscriber_id", "new_status", "cause", "by", "at"], row)
    )


def _record(session: Session, rows: list[dict[str, Any]]) -> None:
    table = cast(Table, SubscriberChange.__table__)
    for start in range(0, len(rows), _CHUNK):
        session.execute(table.insert(), rows[start : start + _CHUNK])


# --- double opt-in ------------------------------------------------------------------

# Unconfirmed requests kept per subscriber: enough for every link a person could still
# be holding, few enough that somebody posting one address over and over fills nothing.
_OPEN_REQUESTS_KEPT = 10


class Outcome(StrEnum):
    """What a subscription request led to (never shown to the public: no enumeration)."""

    CONFIRM_SENT = "confirm"  # a confirmation email is due
    ALREADY_ACTIVE = "active"  # nothing to do
    # They marked our mail as spam: nothing is sent, and only staff can take them back.
    COMPLAINED = "complained"


@dataclass(frozen=True)
class Request:
    subscriber_id: int
    email: str
    outcome: Outcome
    request_id: int

    @property
    def needs_confirmation(self) -> bool:
        return self.outcome is Outcome.CONFIRM_SENT


_OUTCOMES = {
    SubscriberStatus.ACTIVE: Outcome.ALREADY_ACTIVE,
    SubscriberStatus.COMPLAINED: Outcome.COMPLAINED,
}


def request_subscription(
    session: Session,
    address: Address,
    *,
    name: str | None,
    source: SubscriberSource,
    consent_text: str,
    ip: str | None = None,
    by: str | None = None,
) -> Request:
    """Record a request to subscribe; the caller sends the confirmation when told to.

    The request is kept as a ``SubscriptionRequest`` of its own: a stranger can type
    anybody's address, so nothing stored about an existing subscriber changes here
    (status, name, source, consent record). Its details reach the subscriber only
    through ``confirm`` (the link it led to) or staff vouching. A new address becomes
    ``pending``, its row holding this first request's details; an active one needs
    nothing; an unsubscribed, bounced or complained one keeps its status. Somebody
    who marked our mail as spam is never mailed again, not even a confirmation: the
    answer is the same, and only staff can take them back (``add_by_staff``).

    The work is the same whatever the address's state -- one insert attempt, one locked
    read, one request row, one prune -- so the time taken does not tell an active
    subscriber from anybody else.
    """
    now = utcnow()
    clean = clean_name(name)
    ip = fit(SubscriptionRequest.ip, ip) if ip is not None else None
    by = fit(SubscriptionRequest.by, by) if by is not None else None
    created = _insert_ignoring_duplicates(
        session,
        [
            {
                "email": address.email,
                "email_key": address.key,
                "name": clean,
                "status": SubscriberStatus.PENDING,
                "source": source,
                "created_at": now,
                "updated_at": now,
                **_consent(now, ip, by, consent_text),
            }
        ],
    )
    sub = session.scalars(
        select(Subscriber).where(Subscriber.email_key == address.key).with_for_update()
    ).one()
    _created_if(session, sub.id, bool(created), SubscriberStatus.PENDING, _CREATED_BY[source], by)
    request = SubscriptionRequest(
        subscriber_id=sub.id,
        name=clean,
        source=source,
        ip=ip,
        by=by,
        text=consent_text,
        requested_at=now,
    )
    session.add(request)
    session.flush()
    _prune_requests(session, sub.id)
    outcome = _OUTCOMES.get(sub.status, Outcome.CONFIRM_SENT)
    return Request(sub.id, sub.email, outcome, request.id)


def _prune_requests(session: Session, subscriber_id: int) -> None:
    """Drop all but the newest unconfirmed requests of one subscriber."""
    keep = (
        select(SubscriptionRequest.id)
        .where(
            SubscriptionRequest.subscriber_id == subscriber_id,
            SubscriptionRequest.confirmed_at.is_(None),
        )
        .order_by(SubscriptionRequest.id.desc())
        .limit(_OPEN_REQUESTS_KEPT)
    )
    session.execute(
        delete(SubscriptionRequest)
        .where(
            SubscriptionRequest.subscriber_id == subscriber_id,
            SubscriptionRequest.confirmed_at.is_(None),
            SubscriptionRequest.id.not_in(keep.scalar_subquery()),
        )
        .execution_options(synchronize_session=False)
    )


class ConfirmResult(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY = "already"
    UNKNOWN = "unknown"  # the subscriber is gone (erased)
    STALE = "stale"  # they unsubscribed after asking; an old link must not undo that


# Tokens carry their signing time to the second, after the request they confirm was
# stored: a request up to this long after the time in the token is still its own.
_TOKEN_CLOCK = timedelta(seconds=1)


def confirm(
    session: Session,
    settings: Settings,
    subscriber_id: int,
    signed_at: datetime | None = None,
) -> tuple[ConfirmResult, Subscriber | None]:
    """Activate a subscriber whose confirmation token checked out.

    ``signed_at`` (the token's time) picks the request the link was sent for: the
    newest one made before it. That request's details become the consent record, so
    the record says who asked, when, from where and with which wording, and a later
    request by somebody else changes nothing. Links sent before requests were kept
    (no request that old) activate the subscriber with the record the row holds.
    A link older than the person's unsubscribe is stale: it must not undo it. So is
    every link of somebody who marked our mail as spam: only staff take them back.
    """
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return ConfirmResult.UNKNOWN, None
    if sub.status is SubscriberStatus.ACTIVE:
        return ConfirmResult.ALREADY, sub
    if sub.status is SubscriberStatus.COMPLAINED:
        return ConfirmResult.STALE, sub
    stmt = select(SubscriptionRequest).where(SubscriptionRequest.subscriber_id == sub.id)
    if signed_at is not None:
        stmt = stmt.where(SubscriptionRequest.requested_at < signed_at + _TOKEN_CLOCK)
    request = session.scalars(
        stmt.order_by(SubscriptionRequest.requested_at.desc(), SubscriptionRequest.id.desc())
    ).first()
    asked_at = request.requested_at if request is not None else signed_at or sub.consent_at
    if sub.unsubscribed_at is not None and asked_at is not None and asked_at < sub.unsubscribed_at:
        return ConfirmResult.STALE, sub
    _activate(session, settings, sub, request, ChangeCause.CONFIRMATION_LINK)
    return ConfirmResult.CONFIRMED, sub


def _activate(
    session: Session,
    settings: Settings,
    sub: Subscriber,
    request: SubscriptionRequest | None,
    cause: ChangeCause,
    *,
    by: str | None = None,
    detail: str | None = None,
) -> None:
    """Make ``sub`` active on the strength of ``request`` (its link followed, or staff)."""
    now = utcnow()
    if request is not None:
        request.confirmed_at = now
        sub.source = request.source
        for attr, value in _consent(
            request.requested_at, request.ip, request.by, request.text
        ).items():
            setattr(sub, attr, value)
        if request.name:
            sub.name = request.name
    change_status(session, [StatusChange(sub.id, SubscriberStatus.ACTIVE, cause, detail, by=by)])
    # They asked again and proved the mailbox is theirs: an old erasure no longer applies.
    session.execute(
        delete(ErasedAddress).where(
            ErasedAddress.email_hash == erased_hash(settings, sub.email_key)
        )
    )
    session.flush()


_UNSUBSCRIBABLE = frozenset(
    {SubscriberStatus.ACTIVE, SubscriberStatus.PENDING, SubscriberStatus.BOUNCED}
)


def unsubscribe(session: Session, subscriber_id: int) -> Subscriber | None:
    """Stop mail to a subscriber at once (their link); idempotent; None if they are gone."""
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return None
    change = StatusChange(
        sub.id,
        SubscriberStatus.UNSUBSCRIBED,
        ChangeCause.UNSUBSCRIBE_LINK,
        only_from=_UNSUBSCRIBABLE,
    )
    change_status(session, [change])
    return sub


def suppress(
    session: Session,
    subscriber_id: int,
    status: SubscriberStatus,
    *,
    cause: ChangeCause = ChangeCause.STAFF,
    by: str | None = None,
) -> Subscriber | None:
    """Mark a subscriber as one never to mail (staff; the event policy uses
    ``suppress_many``).

    A complaint outranks everything; an unsubscribe is never downgraded to a bounce.
    """
    sub = session.get(Subscriber, subscriber_id, with_for_update=True)
    if sub is None:
        return None
    suppress_many(session, [StatusChange(sub.id, status, cause, by=by)])
    return sub


def suppress_many(session: Session, changes: Sequence[StatusChange]) -> list[StatusChange]:
    """Suppress many subscribers at once, each only upwards on ``_SUPPRESSION_RANK``."""
    ranked = []
    for change in changes:
        if change.status not in SUPPRESSED:
            raise ValueError(f"{change.status} is not a suppression status")
        rank = _SUPPRESSION_RANK[change.status]
        weaker = frozenset(s for s in SubscriberStatus if _SUPPRESSION_RANK.get(s, 0) < rank)
        ranked.append(replace(change, only_from=weaker))
    return change_status(session, ranked)


# --- staff ---------------------------------------------------------------------------


class Erased(Exception):
    """The address was erased on request; staff cannot add it back on their own."""


class Complained(Exception):
    """The person marked our mail as spam: staff take them back only by vouching."""

    def __init__(self, email: str) -> None:
        super().__init__(email)
        self.email = email


def add_by_staff(
    session: Session,
    address: Address,
    *,
    name: str | None,
    confirmed: bool,
    staff: str,
    settings: Settings,
) -> tuple[Subscriber, bool]:
    """Add one subscriber; returns it and whether a confirmation email is due.

    ``confirmed``: staff vouch for consent (a reader who wrote in), so the row is
    active at once -- unless the person had unsubscribed or bounced: they are sent a
    confirmation and come back by following it. Somebody who marked our mail as spam
    is never sent anything unasked: without ``confirmed`` this raises ``Complained``;
    with it, staff take them back (recorded as theirs, with the complaint overruled).
    """
    if is_erased(session, settings, address.key):
        raise Erased(address.email)
    text = (
        "Added by staff, who vouch for the subscriber's consent"
        if confirmed
        else "Added by staff; confirmation requested by email"
    )
    request = request_subscription(
        session,
        address,
        name=name,
        source=SubscriberSource.STAFF,
        consent_text=text,
        by=staff,
    )
    sub = session.get_one(Subscriber, request.subscriber_id)
    vouched = session.get_one(SubscriptionRequest, request.request_id)
    if request.outcome is Outcome.COMPLAINED:
        if not confirmed:
            raise Complained(sub.email)
        _activate(
            session,
            settings,
            sub,
            vouched,
            ChangeCause.STAFF,
            by=staff,
            detail="staff vouch for consent after a spam complaint",
        )
        return sub, False
    if not request.needs_confirmation:
        return sub, False
    if confirmed and sub.status is SubscriberStatus.PENDING:
        _activate(session, settings, sub, vouched, ChangeCause.STAFF, by=staff)
        return sub, False
    return sub, True


def remove(session: Session, address: str, *, by: str | None = None) -> Subscriber | None:
    """Staff removal: the row stays, as ``unsubscribed``, so the address is never mailed again.

    Goes through ``suppress`` and its ranking, so a stronger record is never
    downgraded: a complaint stays a complaint (what the sending policy and the reports
    rely on), an earlier unsubscribe keeps its date, and a bounce becomes an
    unsubscribe (the same order ``unsubscribe`` follows: leaving outranks bouncing).
    """
    sub = find(session, address)
    if sub is None:
        return None
    return suppress(session, sub.id, SubscriberStatus.UNSUBSCRIBED, by=by)


def erase(session: Session, settings: Settings, address: str) -> bool:
    """GDPR erasure: delete the person's data everywhere, keep only a hash of the address.

    Returns whether a subscriber existed. The hash is recorded either way, so that a
    later import of an old list does not bring the address back.
    """
    try:
        key = normalize(address).key
    except InvalidAddress:
        key = email_key(address)
    sub = session.scalars(select(Subscriber).where(Subscriber.email_key == key)).one_or_none()
    if sub is not None:
        # The ledger and the event log keep their counts, not the person.
        session.execute(
            update(Delivery).where(Delivery.subscriber_id == sub.id).values(email="erased")
        )
        session.execute(
            update(Event)
            .where(Event.subscriber_id == sub.id)
            .values(email=None, payload={"erased": True}, reason=None)
        )
        session.delete(sub)
    session.execute(
        update(Event)
        .where(func.lower(Event.email) == key)
        .values(email=None, payload={"erased": True}, reason=None)
    )
    session.execute(delete(InboundMessage).where(func.lower(InboundMessage.sender) == key))
    _erase_inbound_mentions(session, key)
    digest = erased_hash(settings, key)
    if session.scalar(select(ErasedAddress.id).where(ErasedAddress.email_hash == digest)) is None:
        session.add(ErasedAddress(email_hash=digest))
    session.flush()
    return sub is not None


def _erase_inbound_mentions(session: Session, key: str) -> None:
    """Delete kept inbound mail whose raw post names the address anywhere.

    A post whose From could not be read has no ``sender`` to match, but the person's
    address is still in its raw bytes (a header, the body, the envelope). Mail to the
    contact address is a few messages a day, so reading the raw posts here is cheap,
    and comparing bytes works on both databases whatever the posts' encodings.
    """
    needle = key.encode("utf-8")
    rows = session.execute(
        select(InboundMessage.id, InboundMessage.raw)
        .where(InboundMessage.raw.is_not(None))
        .execution_options(yield_per=200)
    )
    doomed = [row.id for row in rows if row.raw is not None and needle in row.raw.lower()]
    for chunk in range(0, len(doomed), _CHUNK):
        session.execute(
            delete(InboundMessage).where(InboundMessage.id.in_(doomed[chunk : chunk + _CHUNK]))
        )


# --- bulk import ---------------------------------------------------------------------


@dataclass(frozen=True)
class BadRow:
    line: int
    value: str
    reason: str


@dataclass
class ImportReport:
    added: list[tuple[int, str]] = field(default_factory=list)  # (id, email) of new rows
    existing: int = 0  # already on the list: left exactly as they were
    duplicates: int = 0  # repeated within the file
    erased: int = 0  # erased on request: never resurrected
    bad: list[BadRow] = field(default_factory=list)


@dataclass(frozen=True)
class ImportRow:
    line: int
    email: str
    name: str | None


def import_rows(
    session: Session,
    rows: Iterable[ImportRow],
    *,
    double_opt_in: bool,
    staff: str,
    source_label: str,
    settings: Settings,
) -> ImportReport:
    """Add many subscribers in a few statements; safe to run again on the same file.

    Existing rows are never touched (an unsubscribed person stays unsubscribed), so a
    re-import only adds what is new. Erased addresses are skipped.
    """
    report = ImportReport()
    parsed: dict[str, tuple[Address, str | None]] = {}
    for row in rows:
        try:
            address = normalize(row.email)
        except InvalidAddress as exc:
            report.bad.append(BadRow(row.line, row.email, exc.reason))
            continue
        if address.key in parsed:
            report.duplicates += 1
            continue
        parsed[address.key] = (address, clean_name(row.name))

    erased = set(session.scalars(select(ErasedAddress.email_hash)))
    keys = list(parsed)
    existing: set[str] = set()
    for chunk in _chunks(keys, _CHUNK):
        existing.update(
            session.scalars(select(Subscriber.email_key).where(Subscriber.email_key.in_(chunk)))
        )

    now = utcnow()
    status = SubscriberStatus.PENDING if double_opt_in else SubscriberStatus.ACTIVE
    text = (
        f"Imported by staff from {source_label}; confirmation requested by email"
        if double_opt_in
        else f"Imported by staff from {source_label}, who vouch for the subscribers' consent"
    )
    new: list[dict[str, Any]] = []
    for key, (address, name) in parsed.items():
        if key in existing:
            report.existing += 1
        elif erased and erased_hash(settings, key) in erased:
            report.erased += 1
        else:
            new.append(
                {
                    "email": address.email,
                    "email_key": key,
                    "name": name,
                    "status": status,
                    "source": SubscriberSource.IMPORT,
                    "confirmed_at": None if double_opt_in else now,
                    "created_at": now,
                    "updated_at": now,
                    "soft_bounce_score": 0,
                    **_consent(now, None, staff, text),
                }
            )
    report.added = _insert_ignoring_duplicates(session, new)
    _created(session, report.added, status, ChangeCause.IMPORT, by=staff, detail=source_label)
    report.existing += len(new) - len(report.added)  # lost a race to a concurrent insert
    return report


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def iter_subscribers(
    session: Session, status: SubscriberStatus | None = None
) -> Iterator[Subscriber]:
    """Every subscriber in id order, streamed (an export of 100,000 rows stays small)."""
    stmt = select(Subscriber).order_by(Subscriber.id).execution_options(yield_per=1000)
    if status is not None:
        stmt = stmt.where(Subscriber.status == status)
    yield from session.scalars(stmt)


# --- one subscriber's record ----------------------------------------------------------


def soft_bounce_since(settings: Settings, now: datetime) -> date:
    """The first day whose soft-bounce points still count (the rule's one home)."""
    return now.date() - timedelta(days=settings.soft_bounce_days - 1)


@dataclass(frozen=True)
class Change:
    at: datetime
    old_status: SubscriberStatus | None
    new_status: SubscriberStatus
    cause: ChangeCause
    detail: str | None
    by: str | None
    event_id: int | None
    event_kind: EventKind | None
    provider_event_id: str | None


@dataclass(frozen=True)
class MailEvent:
    """A bounce, complaint or refusal on record for the subscriber."""

    at: datetime
    kind: EventKind
    source: str
    reason: str | None
    campaign_id: int | None
    provider_event_id: str


@dataclass(frozen=True)
class SubscriberRecord:
    """Everything the list knows about one person: for staff (``show``) and the admin."""

    subscriber: Subscriber
    changes: list[Change]
    events: list[MailEvent]
    soft_bounce_days: list[date]  # the points that still count, oldest first
    soft_bounce_limit: int
    soft_bounce_window: int  # days

    @property
    def soft_bounce_score(self) -> int:
        return len(self.soft_bounce_days)


# Events worth showing on a person's record: what happened to mail that did not arrive
# or that they objected to (opens and deliveries are only counted, per campaign).
_RECORDED_KINDS = (
    EventKind.BOUNCED,
    EventKind.BLOCKED,
    EventKind.DROPPED,
    EventKind.COMPLAINED,
    EventKind.UNSUBSCRIBED,
)
_RECORD_EVENTS_MAX = 200


def record_of(session: Session, settings: Settings, address: str) -> SubscriberRecord | None:
    """The subscriber with their history of status changes, bounces and soft-bounce score."""
    sub = find(session, address)
    if sub is None:
        return None
    changes = [
        Change(
            at=c.at,
            old_status=c.old_status,
            new_status=c.new_status,
            cause=c.cause,
            detail=c.detail,
            by=c.by,
            event_id=c.event_id,
            event_kind=c.event_kind,
            provider_event_id=pid,
        )
        for c, pid in session.execute(
            select(SubscriberChange, Event.provider_event_id)
            .outerjoin(Event, Event.id == SubscriberChange.event_id)
            .where(SubscriberChange.subscriber_id == sub.id)
            .order_by(SubscriberChange.at, SubscriberChange.id)
        )
    ]
    events = [
        MailEvent(
            e.occurred_at, e.kind, e.source.value, e.reason, e.campaign_id, e.provider_event_id
        )
        for e in session.scalars(
            select(Event)
            .where(Event.subscriber_id == sub.id, Event.kind.in_(_RECORDED_KINDS))
            .order_by(Event.occurred_at.desc(), Event.id.desc())
            .limit(_RECORD_EVENTS_MAX)
        )
    ]
    events.reverse()
    since = soft_bounce_since(settings, utcnow())
    days = list(
        session.scalars(
            select(SoftBounce.day)
            .where(SoftBounce.subscriber_id == sub.id, SoftBounce.day >= since)
            .order_by(SoftBounce.day)
        )
    )
    return SubscriberRecord(
        sub, changes, events, days, settings.soft_bounce_limit, settings.soft_bounce_days
    )


@dataclass(frozen=True)
class SearchPage:
    subscribers: list[Subscriber]
    total: int  # matching subscribers in all pages


def _like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its own ``%`` and ``_`` literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(
    session: Session,
    text: str = "",
    *,
    status: SubscriberStatus | None = None,
    offset: int = 0,
    limit: int = 50,
) -> SearchPage:
    """Subscribers whose address or name contains ``text`` (any case), newest first."""
    stmt = select(Subscriber)
    words = text.strip()
    if words:
        pattern = _like_pattern(words.lower())
        stmt = stmt.where(
            Subscriber.email_key.like(pattern, escape="\\")
            | func.lower(Subscriber.name).like(pattern, escape="\\")
        )
    if status is not None:
        stmt = stmt.where(Subscriber.status == status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(Subscriber.id.desc()).offset(max(offset, 0)).limit(limit)
    ).all()
    return SearchPage(list(rows), int(total))


def requests_of(session: Session, subscriber_id: int) -> list[SubscriptionRequest]:
    """Every request kept for a subscriber (the consent history), newest first."""
    return list(
        session.scalars(
            select(SubscriptionRequest)
            .where(SubscriptionRequest.subscriber_id == subscriber_id)
            .order_by(SubscriptionRequest.requested_at.desc(), SubscriptionRequest.id.desc())
        )
    )


def count_by_status(session: Session) -> dict[SubscriberStatus, int]:
    """How many subscribers are in each status (every status present, zeros included)."""
    out = dict.fromkeys(SubscriberStatus, 0)
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    for status, n in rows:
        out[SubscriberStatus(status)] = int(n)
    return out
