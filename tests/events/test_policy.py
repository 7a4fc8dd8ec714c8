"""The policy on its own: events stored but never applied are applied later, once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from digestmail import events, subscribers
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised
from digestmail.events.policy import POLICY
from digestmail.models import Event, EventKind, EventSource, SubscriberStatus, utcnow
from tests.campaign_helpers import add_subscribers


def _event(n: int, kind: EventKind, email: str, days_ago: int = 0) -> Normalised:
    return Normalised(
        event_id=f"test:{n}",
        kind=kind,
        source=EventSource.SENDGRID,
        email=email,
        occurred_at=utcnow() - timedelta(days=days_ago),
    )


def test_events_left_unapplied_are_applied_by_apply_pending_and_only_once(
    database: Database, settings: Settings
) -> None:
    add_subscribers(database, 2)
    with database.session() as session:
        events.store(session, settings, [_event(1, EventKind.COMPLAINED, "user0@example.com")])
    with database.session() as session:
        assert session.scalars(select(Event.applied_at)).one() is None
    assert events.apply_pending(database, settings) == 1
    assert events.apply_pending(database, settings) == 0
    with database.session() as session:
        record = subscribers.record_of(session, settings, "user0@example.com")
    assert record is not None and record.subscriber.status is SubscriberStatus.COMPLAINED
    assert len(record.changes) == 1


def test_the_soft_bounce_limit_and_window_come_from_the_settings(
    database: Database, settings: Settings
) -> None:
    add_subscribers(database, 1)
    strict = settings.model_copy(update={"soft_bounce_limit": 2, "soft_bounce_days": 3})
    found = [
        _event(i, EventKind.BLOCKED, "user0@example.com", days_ago=d) for i, d in enumerate([5, 10])
    ]  # outside the 3-day window
    events.receive(database, strict, found)
    with database.session() as session:
        record = subscribers.record_of(session, strict, "user0@example.com")
        assert record is not None and record.soft_bounce_score == 0
    events.receive(database, strict, [_event(7, EventKind.BLOCKED, "user0@example.com", 2)])
    events.receive(database, strict, [_event(8, EventKind.BLOCKED, "user0@example.com", 0)])
    with database.session() as session:
        sub = subscribers.find(session, "user0@example.com")
        assert sub is not None and sub.status is SubscriberStatus.BOUNCED


def test_only_bounces_complaints_unsubscribes_and_blocks_do_anything() -> None:
    assert set(POLICY) == {
        EventKind.BOUNCED,
        EventKind.COMPLAINED,
        EventKind.UNSUBSCRIBED,
        EventKind.BLOCKED,
    }
    assert POLICY[EventKind.BLOCKED].suppress is None and POLICY[EventKind.BLOCKED].soft_bounce


def test_events_about_an_erased_address_do_not_bring_it_back(
    database: Database, settings: Settings
) -> None:
    add_subscribers(database, 1)
    with database.session() as session:
        subscribers.erase(session, settings, "user0@example.com")
    events.receive(database, settings, [_event(1, EventKind.BOUNCED, "USER0@example.com")])
    with database.session() as session:
        row = session.scalars(select(Event)).one()
    assert (row.kind, row.email, row.payload, row.subscriber_id) == (
        EventKind.BOUNCED,
        None,
        {"erased": True},
        None,
    )
