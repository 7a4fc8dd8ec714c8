"""Campaign figures from events: unique recipients, rates, complaint warnings."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from typer.testing import CliRunner

from digestmail import events, stats, subscribers
from digestmail.cli import app
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised
from digestmail.models import (
    EventKind,
    EventSource,
    Subscriber,
    SubscriberChange,
    SubscriberSource,
    SubscriberStatus,
    utcnow,
)
from tests.campaign_helpers import add_subscribers, deliveries, sent_campaign

runner = CliRunner()


def _events(
    db: Database, settings: Settings, cid: int, kind: EventKind, emails: list[str], tag: str
) -> None:
    rows = deliveries(db, cid)
    found = [
        Normalised(
            event_id=f"test:{tag}:{kind}:{i}",
            kind=kind,
            source=EventSource.SENDGRID,
            email=email,
            occurred_at=utcnow(),
            delivery_id=rows[email][0],
        )
        for i, email in enumerate(emails)
    ]
    events.receive(db, settings, found)


@pytest.mark.parametrize(
    ("rate", "level"),
    [
        (0.0, stats.Level.OK),
        (0.001, stats.Level.OK),
        (0.0011, stats.Level.WARNING),
        (0.0029, stats.Level.WARNING),
        (0.003, stats.Level.ALARM),
        (0.02, stats.Level.ALARM),
    ],
)
def test_complaint_levels(rate: float, level: stats.Level) -> None:
    assert stats.complaint_level(rate) is level


def test_figures_count_recipients_once_and_rate_them(
    database: Database, settings: Settings
) -> None:
    sg = settings.model_copy(update={"transport": "outbox"})
    cid = sent_campaign(database, sg, 20)
    emails = [f"user{i}@example.com" for i in range(20)]
    # Pretend SendGrid reported on it: fix the transport so delivered means SendGrid's word.
    with database.engine.begin() as conn:
        from digestmail.campaigns.tables import C

        conn.execute(C.update().where(C.c.id == cid).values(transport="sendgrid"))
    _events(database, sg, cid, EventKind.DELIVERED, emails[:16], "a")
    _events(database, sg, cid, EventKind.OPENED, emails[:8] + emails[:8], "b")  # twice each
    _events(database, sg, cid, EventKind.CLICKED, emails[:2], "c")
    _events(database, sg, cid, EventKind.BOUNCED, emails[16:20], "d")
    _events(database, sg, cid, EventKind.COMPLAINED, emails[5:6], "e")
    _events(database, sg, cid, EventKind.UNSUBSCRIBED, emails[6:8], "f")
    fig = stats.campaign_figures(database, cid)
    assert fig is not None
    assert (fig.sent, fig.delivered, fig.bounced, fig.opened, fig.clicked) == (20, 16, 4, 8, 2)
    assert (fig.complained, fig.unsubscribed) == (1, 2)
    assert fig.rates["opened"] == 0.5 and fig.rates["bounced"] == 0.2
    assert fig.complaint_level is stats.Level.ALARM  # 1 in 16
    r = runner.invoke(app, ["campaign", "status", str(cid)])
    assert r.exit_code == 0, r.output
    assert "Unique opens         8  50% of delivered" in r.output
    assert "ALARM" in r.output
    data = json.loads(runner.invoke(app, ["campaign", "status", str(cid), "--json"]).output)
    assert data["figures"]["unique_opens"] == 8 and data["figures"]["complaint_level"] == "alarm"


def test_stats_puts_the_last_campaigns_side_by_side(database: Database, settings: Settings) -> None:
    first = sent_campaign(database, settings, 5)
    from digestmail import campaigns

    slug = campaigns.campaign_info(database, first).issue_slug
    second = campaigns.create_campaign(database, settings, slug, again=True)
    campaigns.run_campaign(database, settings, second)
    _events(database, settings, second, EventKind.BOUNCED, ["user1@example.com"], "x")
    r = runner.invoke(app, ["stats", "--json", "--last", "2"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [d["campaign"] for d in data] == [first, second]
    assert [d["bounced"] for d in data] == [0, 1]
    # The outbox reports no deliveries: what it accepted counts as delivered.
    assert [d["delivered"] for d in data] == [5, 5]
    assert len(json.loads(runner.invoke(app, ["stats", "--json", "--last", "1"]).output)) == 1
    r = runner.invoke(app, ["stats"])
    assert r.exit_code == 0, r.output
    assert "Compl." in r.output and "20%" in r.output  # 1 of 5 bounced


# --- the list over time -------------------------------------------------------------------

# A Wednesday; its week starts on Monday 2025-03-10, its month on 2025-03-01.
NOW = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
MONDAY = date(2025, 3, 10)


def _join(db: Database, settings: Settings, email: str, when: datetime) -> int:
    """An address imported as subscribed, its history dated ``when``."""
    with db.session() as session:
        report = subscribers.import_rows(
            session,
            [subscribers.ImportRow(1, email, None)],
            double_opt_in=False,
            staff="test",
            source_label="test",
            settings=settings,
        )
    sid = report.added[0][0]
    _date_last_change(db, sid, when)
    return sid


def _date_last_change(db: Database, sid: int, when: datetime) -> None:
    """Say the subscriber's latest change of status happened ``when``."""
    with db.engine.begin() as conn:
        last = conn.scalar(
            select(func.max(SubscriberChange.id)).where(SubscriberChange.subscriber_id == sid)
        )
        conn.execute(update(SubscriberChange).where(SubscriberChange.id == last).values(at=when))


def _leave(db: Database, sid: int, when: datetime) -> None:
    with db.session() as session:
        subscribers.unsubscribe(session, sid)
    _date_last_change(db, sid, when)


def test_growth_of_an_empty_list_has_no_points(database: Database) -> None:
    assert stats.list_growth(database, period=stats.Period.WEEK, now=NOW) == []
    assert stats.list_growth(database, period=stats.Period.MONTH, now=NOW) == []


def test_growth_of_a_list_started_this_week_is_one_point(
    database: Database, settings: Settings
) -> None:
    _join(database, settings, "first@example.org", NOW - timedelta(hours=1))
    add_subscribers(database, 3, status="pending")  # never subscribed: not counted
    points = stats.list_growth(database, period=stats.Period.WEEK, periods=8, now=NOW)
    assert points == [stats.GrowthPoint(MONDAY, active=1, joined=1, left=0)]


def test_growth_week_by_week_and_month_by_month(database: Database, settings: Settings) -> None:
    week = timedelta(days=7)
    _join(database, settings, "old@example.org", NOW - 10 * week)  # before the chart
    _join(database, settings, "b@example.org", NOW - 2 * week)
    c = _join(database, settings, "c@example.org", NOW - 2 * week)
    _leave(database, c, NOW - week)
    # Something in the future of "now" is not counted yet.
    _join(database, settings, "later@example.org", NOW + timedelta(hours=1))
    points = stats.list_growth(database, period=stats.Period.WEEK, periods=4, now=NOW)
    assert points == [
        stats.GrowthPoint(MONDAY - 3 * week, active=1, joined=0, left=0),
        stats.GrowthPoint(MONDAY - 2 * week, active=3, joined=2, left=0),
        stats.GrowthPoint(MONDAY - week, active=2, joined=0, left=1),
        stats.GrowthPoint(MONDAY, active=2, joined=0, left=0),
    ]
    months = stats.list_growth(database, period=stats.Period.MONTH, periods=12, now=NOW)
    # January: old joined; February: b and c joined (Feb 26), c left on March 5.
    assert months == [
        stats.GrowthPoint(date(2025, 1, 1), active=1, joined=1, left=0),
        stats.GrowthPoint(date(2025, 2, 1), active=3, joined=2, left=0),
        stats.GrowthPoint(date(2025, 3, 1), active=2, joined=0, left=1),
    ]


def test_growth_follows_the_calendar_of_the_zone(database: Database, settings: Settings) -> None:
    # 23:30 UTC on the last day of February is already March 1 in Tokyo.
    _join(database, settings, "tokyo@example.org", datetime(2025, 2, 28, 23, 30, tzinfo=UTC))
    utc = stats.list_growth(database, period=stats.Period.MONTH, now=NOW)
    tokyo = stats.list_growth(database, period=stats.Period.MONTH, now=NOW, zone="Asia/Tokyo")
    assert [p.start for p in utc] == [date(2025, 2, 1), date(2025, 3, 1)]
    assert tokyo == [stats.GrowthPoint(date(2025, 3, 1), active=1, joined=1, left=0)]


def test_growth_counts_subscribers_from_before_the_history_was_kept(
    database: Database, settings: Settings
) -> None:
    """Rows from before status changes were recorded are counted from their dates."""
    _join(database, settings, "kept@example.org", NOW - timedelta(days=3))
    with database.engine.begin() as conn:
        conn.execute(
            insert(Subscriber),
            [
                {
                    "email": f"{name}@example.org",
                    "email_key": f"{name}@example.org",
                    "status": status,
                    "source": SubscriberSource.FORM,
                    "soft_bounce_score": 0,
                    "created_at": datetime(2025, 1, 5, tzinfo=UTC),
                    "confirmed_at": datetime(2025, 1, 6, tzinfo=UTC) if confirmed else None,
                    "unsubscribed_at": left,
                    "updated_at": datetime(2025, 2, 20, tzinfo=UTC),
                }
                for name, status, confirmed, left in [
                    ("stayed", SubscriberStatus.ACTIVE, True, None),
                    ("went", SubscriberStatus.UNSUBSCRIBED, True, datetime(2025, 2, 3, tzinfo=UTC)),
                    ("bounced", SubscriberStatus.BOUNCED, True, None),  # left when last changed
                    ("never", SubscriberStatus.PENDING, False, None),
                ]
            ],
        )
    months = stats.list_growth(database, period=stats.Period.MONTH, periods=3, now=NOW)
    assert months == [
        stats.GrowthPoint(date(2025, 1, 1), active=3, joined=3, left=0),
        stats.GrowthPoint(date(2025, 2, 1), active=1, joined=0, left=2),
        stats.GrowthPoint(date(2025, 3, 1), active=2, joined=1, left=0),
    ]
    # A history that starts while the person was subscribed: since they were added.
    with database.engine.begin() as conn:
        sid = conn.scalar(select(Subscriber.id).where(Subscriber.email_key == "stayed@example.org"))
    with database.session() as session:
        subscribers.unsubscribe(session, sid)
    _date_last_change(database, sid, datetime(2025, 3, 11, tzinfo=UTC))
    months = stats.list_growth(database, period=stats.Period.MONTH, periods=3, now=NOW)
    assert months[0] == stats.GrowthPoint(date(2025, 1, 1), active=3, joined=3, left=0)
    assert months[-1] == stats.GrowthPoint(date(2025, 3, 1), active=1, joined=1, left=1)


@pytest.mark.parametrize(
    ("day", "period", "start"),
    [
        (date(2025, 3, 10), stats.Period.WEEK, date(2025, 3, 10)),
        (date(2025, 3, 16), stats.Period.WEEK, date(2025, 3, 10)),
        (date(2025, 1, 1), stats.Period.WEEK, date(2024, 12, 30)),
        (date(2025, 3, 31), stats.Period.MONTH, date(2025, 3, 1)),
        (date(2024, 2, 29), stats.Period.MONTH, date(2024, 2, 1)),
    ],
)
def test_period_start(day: date, period: stats.Period, start: date) -> None:
    assert stats.period_start(day, period) == start
