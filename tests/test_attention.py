"""What needs staff's attention (attention.py): the dashboard's warnings, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from digestmail import attention, campaigns, events, scheduling
from digestmail.attention import Concern, ConcernKind
from digestmail.campaigns.tables import C
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.events.normalise import Normalised
from digestmail.models import (
    CampaignStatus,
    EventKind,
    EventSource,
    SkipReason,
    StopReason,
    utcnow,
)
from digestmail.scheduling import occurrences
from digestmail.stats import Level
from tests.campaign_helpers import add_subscribers, deliveries, sent_campaign, store_volume

NY = "America/New_York"
NOW = datetime(2025, 2, 24, 17, 0, tzinfo=UTC)  # Monday noon in New York
FRIDAY = datetime(2025, 2, 28, 14, 0, tzinfo=UTC)  # the cadence's first slot, 09:00 EST


def _kinds(found: list[Concern]) -> list[tuple[ConcernKind, Level]]:
    return [(c.kind, c.level) for c in found]


def test_nothing_to_say_about_a_new_list(database: Database) -> None:
    assert attention.concerns(database, now=NOW) == []


def test_the_next_sends_with_nothing_ready_warn_and_alarm_the_day_before(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    cadence = scheduling.add_cadence(
        database, settings, every="2w", on="fri", at="09:00", tz=NY, now=NOW
    )
    found = attention.concerns(database, now=NOW)
    assert found == [
        Concern(ConcernKind.NOTHING_READY, Level.WARNING, cadence.id, FRIDAY, NY),
    ]
    thursday = FRIDAY - timedelta(hours=20)
    assert _kinds(attention.concerns(database, now=thursday)) == [
        (ConcernKind.NOTHING_READY, Level.ALARM)
    ]
    # An issue ready: nothing to say. A one-off whose issue is a draft again: a warning.
    store_volume(database, settings, tmp_path, "9.2", "2024-03-15", ready=True)
    assert attention.concerns(database, now=NOW) == []
    draft = store_volume(database, settings, tmp_path, "9.3", "2024-03-29")
    once = scheduling.add_one_off(database, settings, draft, at="2025-03-20T09:00", tz=NY, now=NOW)
    scheduling.set_ready(database, draft, False)
    found = attention.concerns(database, now=NOW)
    assert [(c.kind, c.schedule_id, c.issue_slug) for c in found] == [
        (ConcernKind.DRAFT, once.id, draft)
    ]


def test_sends_nobody_took_missed_and_skipped(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    grace = settings.model_copy(update={"misfire_grace": 3600})
    cadence = scheduling.add_cadence(
        database, grace, every="1w", on="fri", at="09:00", tz=NY, now=NOW
    )
    store_volume(database, grace, tmp_path, "9.2", "2024-03-15", ready=True)
    # Friday's send, half an hour late with no scheduler: an alarm.
    late = FRIDAY + timedelta(minutes=30)
    found = attention.concerns(database, now=late)
    assert found == [Concern(ConcernKind.OVERDUE, Level.ALARM, cadence.id, FRIDAY, NY)]
    # A scheduler came up after the grace: the send is recorded missed, and said so.
    saturday = FRIDAY + timedelta(days=1)
    occurrences.settle(database, grace, saturday)
    found = attention.concerns(database, now=saturday)
    assert found == [Concern(ConcernKind.MISSED, Level.WARNING, cadence.id, FRIDAY, NY)]
    # The next Friday, nobody to send to: skipped, and why.
    next_friday = FRIDAY + timedelta(days=7)
    occurrences.take_slot(database, grace, cadence.id, next_friday)
    found = attention.concerns(database, now=next_friday + timedelta(minutes=5))
    assert [(c.kind, c.skip_reason) for c in found] == [
        (ConcernKind.SKIPPED, SkipReason.NO_SUBSCRIBERS),
        (ConcernKind.MISSED, None),
    ]
    # Two weeks on, both are history (the schedule pages still list them).
    found = attention.concerns(database, now=next_friday + timedelta(days=14, hours=1))
    assert [c.kind for c in found] == [ConcernKind.OVERDUE]  # nobody has run since


def test_campaigns_stopped_stalled_or_complained_about(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    cid = sent_campaign(database, settings, 5)
    assert attention.concerns(database) == []
    # One of five marked it as spam: 20%, an alarm.
    email = "user1@example.com"
    events.receive(
        database,
        settings,
        [
            Normalised(
                event_id="test:complaint",
                kind=EventKind.COMPLAINED,
                source=EventSource.SENDGRID,
                email=email,
                occurred_at=utcnow(),
                delivery_id=deliveries(database, cid)[email][0],
            )
        ],
    )
    found = attention.concerns(database)
    assert [(c.kind, c.level, c.campaign_id, c.rate) for c in found] == [
        (ConcernKind.COMPLAINTS, Level.ALARM, cid, 0.2)
    ]
    add_subscribers(database, 2, prefix="more")
    slugs = [store_volume(database, settings, tmp_path, f"9.{n}", "2024-03-15") for n in (2, 3, 4)]
    failed, paused, stalled = (campaigns.create_campaign(database, settings, s) for s in slugs)
    staff_paused = campaigns.create_campaign(
        database, settings, store_volume(database, settings, tmp_path, "9.5", "2024-04-01")
    )
    with database.engine.begin() as conn:
        for campaign, values in [
            (failed, {"status": CampaignStatus.FAILED, "error_reason": StopReason.REFUSED}),
            (paused, {"status": CampaignStatus.PAUSED, "error_reason": StopReason.UNCERTAIN}),
            (stalled, {"status": CampaignStatus.SENDING, "lease_owner": None}),
            (staff_paused, {"status": CampaignStatus.PAUSED}),
        ]:
            conn.execute(update(C).where(C.c.id == campaign).values(**values))
    found = attention.concerns(database)
    assert [(c.kind, c.level, c.campaign_id) for c in found] == [
        (ConcernKind.STOPPED, Level.ALARM, failed),
        (ConcernKind.COMPLAINTS, Level.ALARM, cid),
        (ConcernKind.STOPPED, Level.WARNING, paused),
        (ConcernKind.STALLED, Level.WARNING, stalled),
    ]
    assert found[0].stop_reason is StopReason.REFUSED
    assert found[0].campaign_status is CampaignStatus.FAILED
    assert found[0].issue_slug == slugs[0] and found[3].issue_slug == slugs[2]
