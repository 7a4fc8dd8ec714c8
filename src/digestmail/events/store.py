"""Keeping normalised events: tied to their delivery, campaign and subscriber, stored once.

Bulk, because a webhook batch holds up to a few thousand events: a handful of lookups
(deliveries, campaigns, subscribers by id, subscribers by address) and one INSERT …
ON CONFLICT DO NOTHING per thousand events, whatever the batch holds. The unique
event id makes a replay, or the same event twice in one batch, store nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from digestmail.config import Settings
from digestmail.db import insert_ignoring
from digestmail.events.normalise import Normalised
from digestmail.models import Campaign, Delivery, ErasedAddress, Event, Subscriber, utcnow
from digestmail.subscribers import email_key, erased_hash

_CHUNK = 1000
EVENTS = cast(Table, Event.__table__)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _lookup(session: Session, query: Any, column: Any, keys: Iterable[Any]) -> list[Any]:
    found: list[Any] = []
    unique = sorted(set(keys))
    for chunk in _chunks(unique):
        found.extend(session.execute(query.where(column.in_(chunk))).all())
    return found


def store(session: Session, settings: Settings, events: Sequence[Normalised]) -> list[int]:
    """Insert the events not stored before; the row ids of those that are new.

    Each is tied to what it is about: the delivery its custom args (or VERP token)
    name, and through it the campaign and subscriber; else the campaign and
    subscriber ids it names, when they exist; else the subscriber with its address
    (mail sent before events carried ids). Ids that name nothing are dropped.

    An event about an address erased on request keeps its kind and time but not the
    address (nor the payload that repeats it): a provider reporting on old mail, or
    its suppression lists read back, must not bring the person back into the database.
    """
    if not events:
        return []
    deliveries = {
        row.id: row
        for row in _lookup(
            session,
            select(Delivery.id, Delivery.campaign_id, Delivery.subscriber_id),
            Delivery.id,
            (e.delivery_id for e in events if e.delivery_id is not None),
        )
    }
    campaigns = {
        row.id
        for row in _lookup(
            session,
            select(Campaign.id),
            Campaign.id,
            (e.campaign_id for e in events if e.campaign_id is not None),
        )
    }
    subscribers = {
        row.id
        for row in _lookup(
            session,
            select(Subscriber.id),
            Subscriber.id,
            (e.subscriber_id for e in events if e.subscriber_id is not None),
        )
    }
    rows: list[dict[str, Any]] = []
    by_address: dict[str, list[dict[str, Any]]] = {}
    received = utcnow()
    for e in events:
        delivery = deliveries.get(e.delivery_id) if e.delivery_id is not None else None
        if delivery is not None:
            campaign_id, subscriber_id = delivery.campaign_id, delivery.subscriber_id
        else:
            campaign_id = e.campaign_id if e.campaign_id in campaigns else None
            subscriber_id = e.subscriber_id if e.subscriber_id in subscribers else None
        row = {
            "provider_event_id": e.event_id,
            "type": e.kind,
            "source": e.source,
            "email": e.email,
            "subscriber_id": subscriber_id,
            "campaign_id": campaign_id,
            "delivery_id": delivery.id if delivery is not None else None,
            "reason": e.reason,
            "payload": e.payload,
            "occurred_at": e.occurred_at,
            "received_at": received,
            "applied_at": None,
        }
        rows.append(row)
        if subscriber_id is None and e.email:
            by_address.setdefault(email_key(e.email), []).append(row)
    for row in _lookup(
        session, select(Subscriber.id, Subscriber.email_key), Subscriber.email_key, by_address
    ):
        for event_row in by_address.pop(row.email_key):
            event_row["subscriber_id"] = row.id
    _forget_erased(session, settings, by_address)
    return _insert_new(session, rows)


def _forget_erased(
    session: Session, settings: Settings, by_address: dict[str, list[dict[str, Any]]]
) -> None:
    """Drop the address from events about nobody on the list whose address was erased."""
    if not by_address or session.scalar(select(ErasedAddress.id).limit(1)) is None:
        return
    hashes = {erased_hash(settings, key): key for key in by_address}
    for row in _lookup(session, select(ErasedAddress.email_hash), ErasedAddress.email_hash, hashes):
        for event_row in by_address[hashes[row.email_hash]]:
            event_row.update(email=None, reason=None, payload={"erased": True})


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """INSERT … ON CONFLICT (provider_event_id) DO NOTHING on both backends; new row ids."""
    new: list[int] = []
    stmt = insert_ignoring(session, EVENTS, "provider_event_id").returning(EVENTS.c.id)
    for chunk in _chunks(rows):
        new.extend(session.connection().execute(stmt, list(chunk)).scalars())
    return new
