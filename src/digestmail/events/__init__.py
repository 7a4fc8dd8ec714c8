"""Events: what happened to the mail we sent, from every source, and what it does.

Normalise first, then policy, the way django-anymail does:

- ``normalise``: SendGrid's events (and, in ``digestmail.bounces``, bounce messages)
  become ``Normalised`` events of our own kinds (``models.EventKind``).
- ``store``: kept once each (the unique event id makes replays no-ops), tied to the
  delivery, campaign and subscriber, with the event as it came.
- ``policy``: a table of kinds and one function, the only code that changes a
  subscriber because of an event (through ``subscribers.suppress_many``, which records
  each change with its cause).

Events are stored in one transaction and the policy applied in the next, so an error
in the policy loses no event: it stays stored, unapplied, and ``apply_pending`` (run
with every bounce fetch) applies it later. A refusal while sending by SMTP is the one
exception: it is stored and applied inside the send loop's own transaction, with the
ledger row that records it (``record_refusals``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised
from digestmail.events.policy import apply
from digestmail.events.store import store
from digestmail.models import Event, EventKind, EventSource, utcnow
from digestmail.subscribers import StatusChange

log = logging.getLogger(__name__)

__all__ = [
    "Normalised",
    "Receipt",
    "Refusal",
    "apply",
    "apply_pending",
    "receive",
    "record_refusals",
    "store",
]


@dataclass(frozen=True)
class Receipt:
    received: int  # events handed in
    stored: int  # new ones (the others were stored before)
    changes: list[StatusChange] = field(default_factory=list)
    applied: bool = True  # False: the policy failed; the events wait for ``apply_pending``

    @property
    def duplicates(self) -> int:
        return self.received - self.stored


def receive(db: Database, settings: Settings, events: Sequence[Normalised]) -> Receipt:
    """Store events (committed), then apply the policy to the new ones.

    Raises only if storing fails (the caller must then not acknowledge the events);
    a failure of the policy is logged and leaves the events stored for later.
    """
    with db.session() as session:
        new = store(session, settings, events)
    try:
        with db.session() as session:
            changes = apply(session, settings, new)
    except Exception:
        log.exception("events %s…: stored, but the policy failed; they wait", new[:3])
        return Receipt(len(events), len(new), applied=False)
    return Receipt(len(events), len(new), changes)


def apply_pending(db: Database, settings: Settings, *, limit: int = 10_000) -> int:
    """Apply the policy to stored events it never finished with; how many were applied."""
    with db.session() as session:
        ids = list(
            session.scalars(
                select(Event.id).where(Event.applied_at.is_(None)).order_by(Event.id).limit(limit)
            )
        )
        if ids:
            apply(session, settings, ids)
    return len(ids)


@dataclass(frozen=True)
class Refusal:
    """A recipient the receiving SMTP server refused for good while we sent (5xx)."""

    delivery_id: int
    email: str
    error: str


def record_refusals(
    conn: Connection,
    settings: Settings,
    campaign_id: int,
    batch: int,
    refusals: Sequence[Refusal],
) -> list[StatusChange]:
    """Permanent SMTP refusals of one batch as ``bounced`` events, applied at once.

    On the caller's connection and in its transaction (the send loop's, which records
    the same rows in the ledger): one store and one policy call per batch.
    """
    if not refusals:
        return []
    now = utcnow()
    events = [
        Normalised(
            event_id=f"smtp:{r.delivery_id}:{batch}",
            kind=EventKind.BOUNCED,
            source=EventSource.SMTP,
            email=r.email,
            occurred_at=now,
            campaign_id=campaign_id,
            delivery_id=r.delivery_id,
            reason=r.error[:2000],
            payload={"delivery_id": r.delivery_id, "batch": batch, "error": r.error[:2000]},
        )
        for r in refusals
    ]
    with Session(bind=conn, join_transaction_mode="create_savepoint") as session:
        new = store(session, settings, events)
        changes = apply(session, settings, new, now=now)
        session.commit()  # releases the savepoint; the caller's transaction decides
    return changes
