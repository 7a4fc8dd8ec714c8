"""What an event does to the list: a table of kinds, and one short function applying it.

Only ``EventKind`` is read here, never a provider's field: a hard bounce is a hard
bounce whether SendGrid, a bounce message or an SMTP server said so.

- ``bounced``: the address does not work; ``bounced`` at once, never mailed again.
- ``complained``: marked as spam; ``complained``, which nothing but staff undoes.
- ``unsubscribed``: they left through the provider; ``unsubscribed``.
- ``blocked`` (soft bounces: SendGrid's blocks and expiries, bounce messages that gave
  up on a temporary failure): a point on the day it happened, at most one a day;
  points older than ``DIGESTMAIL_SOFT_BOUNCE_DAYS`` no longer count, and at
  ``DIGESTMAIL_SOFT_BOUNCE_LIMIT`` points the subscriber is ``bounced``.
- everything else is kept for the figures and changes nothing.

Statuses only move up ``subscribers._SUPPRESSION_RANK`` (a bounce never turns a
complaint into less), and an event from before the subscriber's latest confirmation
changes nothing: they have since proved the address works and asked for the mail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from digestmail import subscribers
from digestmail.config import Settings
from digestmail.db import insert_ignoring
from digestmail.models import (
    ChangeCause,
    Event,
    EventKind,
    SoftBounce,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

_CHUNK = 1000
SOFT = cast(Table, SoftBounce.__table__)
SUBS = cast(Table, Subscriber.__table__)


@dataclass(frozen=True)
class Rule:
    suppress: SubscriberStatus | None = None  # the status the event leads to
    soft_bounce: bool = False  # a point towards the soft-bounce limit


POLICY: Mapping[EventKind, Rule] = {
    EventKind.BOUNCED: Rule(suppress=SubscriberStatus.BOUNCED),
    EventKind.COMPLAINED: Rule(suppress=SubscriberStatus.COMPLAINED),
    EventKind.UNSUBSCRIBED: Rule(suppress=SubscriberStatus.UNSUBSCRIBED),
    EventKind.BLOCKED: Rule(soft_bounce=True),
}


@dataclass(frozen=True)
class _Point:
    subscriber_id: int
    day: date
    event_id: int


def apply(
    session: Session, settings: Settings, event_ids: Sequence[int], *, now: datetime | None = None
) -> list[subscribers.StatusChange]:
    """Apply the policy to stored events not applied before; the status changes made.

    Bulk: one read of the events, one soft-bounce insert and count, one call of
    ``subscribers.suppress_many``, one update marking the events applied.
    """
    now = now or utcnow()
    rows: list[Any] = []
    for start in range(0, len(event_ids), _CHUNK):
        chunk = list(event_ids[start : start + _CHUNK])
        rows.extend(
            session.execute(
                select(
                    Event.id,
                    Event.kind,
                    Event.subscriber_id,
                    Event.occurred_at,
                    Event.reason,
                    Subscriber.confirmed_at,
                )
                .outerjoin(Subscriber, Subscriber.id == Event.subscriber_id)
                .where(Event.id.in_(chunk), Event.applied_at.is_(None))
            ).all()
        )
    rows.sort(key=lambda r: (r.occurred_at, r.id))
    changes: list[subscribers.StatusChange] = []
    points: list[_Point] = []
    for row in rows:
        rule = POLICY.get(EventKind(row.kind))
        if rule is None or row.subscriber_id is None:
            continue
        if row.confirmed_at is not None and row.occurred_at < row.confirmed_at:
            continue
        if rule.suppress is not None:
            changes.append(
                subscribers.StatusChange(
                    row.subscriber_id,
                    rule.suppress,
                    ChangeCause.EVENT,
                    detail=row.reason,
                    event_id=row.id,
                    event_kind=EventKind(row.kind),
                )
            )
        if rule.soft_bounce:
            points.append(_Point(row.subscriber_id, row.occurred_at.date(), row.id))
    changes.extend(_score(session, settings, points, now))
    applied = subscribers.suppress_many(session, changes)
    ids = [r.id for r in rows]
    for start in range(0, len(ids), _CHUNK):
        session.execute(
            update(Event).where(Event.id.in_(ids[start : start + _CHUNK])).values(applied_at=now),
            execution_options={"synchronize_session": False},
        )
    return applied


def _score(
    session: Session, settings: Settings, points: Sequence[_Point], now: datetime
) -> list[subscribers.StatusChange]:
    """Record the points (one per subscriber and day), recount, and suppress at the limit."""
    if not points:
        return []
    session.connection().execute(
        insert_ignoring(session, SOFT, "subscriber_id", "day"),
        [{"subscriber_id": p.subscriber_id, "day": p.day, "event_id": p.event_id} for p in points],
    )
    last_event = {p.subscriber_id: p.event_id for p in points}
    since = subscribers.soft_bounce_since(settings, now)
    scores: dict[int, int] = dict.fromkeys(last_event, 0)
    sids = sorted(last_event)
    for start in range(0, len(sids), _CHUNK):
        counted = session.execute(
            select(SoftBounce.subscriber_id, func.count())
            .where(
                SoftBounce.subscriber_id.in_(sids[start : start + _CHUNK]),
                SoftBounce.day >= since,
            )
            .group_by(SoftBounce.subscriber_id)
        )
        scores.update((sid, int(n)) for sid, n in counted)
    session.connection().execute(
        update(SUBS)
        .where(SUBS.c.id == bindparam("b_id"))
        .values(soft_bounce_score=bindparam("b_score"), soft_bounce_at=now),
        [{"b_id": sid, "b_score": score} for sid, score in scores.items()],
    )
    return [
        subscribers.StatusChange(
            sid,
            SubscriberStatus.BOUNCED,
            ChangeCause.EVENT,
            detail=(
                f"{score} soft bounces on different days within {settings.soft_bounce_days} days"
            ),
            event_id=last_event[sid],
            event_kind=EventKind.BLOCKED,
        )
        for sid, score in scores.items()
        if score >= settings.soft_bounce_limit
    ]
