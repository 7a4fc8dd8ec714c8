"""What happens at a slot, the slots nobody was there for, stalled campaigns, reminders."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, func, select, update

from digestmail import campaigns, scheduling
from digestmail.campaigns.lease import owner_id
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.issues import get_issue
from digestmail.models import (
    Campaign,
    CampaignStatus,
    IssueStatus,
    OccurrenceOutcome,
    ScheduleStatus,
    SkipReason,
    utcnow,
)
from digestmail.scheduling import occurrences
from digestmail.scheduling.occurrences import OCC, SCH
from tests.campaign_helpers import SUBSCRIBERS, add_subscribers, store_volume

C = cast(Table, Campaign.__table__)
NY = "America/New_York"
NOW = datetime(2025, 2, 24, 17, 0, tzinfo=UTC)  # Monday noon in New York
FRIDAY = datetime(2025, 2, 28, 14, 0, tzinfo=UTC)  # the cadence's first slot, 09:00 EST
SECOND = datetime(2025, 3, 14, 13, 0, tzinfo=UTC)  # 09:00 EDT


@pytest.fixture
def grace(settings: Settings) -> Settings:
    return settings.model_copy(update={"misfire_grace": 3600})


def _cadence(db: Database, settings: Settings) -> int:
    info = scheduling.add_cadence(db, settings, every="2w", on="fri", at="09:00", tz=NY, now=NOW)
    return info.id


def _rows(db: Database, schedule_id: int) -> list[tuple[datetime, str, str | None]]:
    with db.engine.connect() as conn:
        return [
            (r.slot_at, r.outcome.value, r.reason.value if r.reason else None)
            for r in conn.execute(
                select(OCC).where(OCC.c.schedule_id == schedule_id).order_by(OCC.c.slot_at)
            )
        ]


def test_a_one_off_sends_once_and_is_done(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    add_subscribers(database, 3)
    slug = store_volume(database, grace, tmp_path, "9.2", "2024-03-15")
    sid = scheduling.add_one_off(database, grace, slug, at="2025-03-14T09:00", tz=NY, now=NOW).id
    slot = SECOND
    assert occurrences.take_slot(database, grace, sid, slot - timedelta(minutes=5)).outcome is None

    taken = occurrences.take_slot(database, grace, sid, slot + timedelta(seconds=1))
    assert taken.outcome is OccurrenceOutcome.SENT and taken.slug == slug
    assert taken.slot == slot and taken.late == timedelta(seconds=1)
    assert taken.campaign_id is not None
    info = campaigns.campaign_info(database, taken.campaign_id)
    assert info.status is CampaignStatus.SCHEDULED and info.scheduled_at == slot
    assert scheduling.schedule_info(database, sid).status is ScheduleStatus.DONE
    # Asked again (a restarted scheduler, a second one): nothing more.
    assert occurrences.take_slot(database, grace, sid, slot + timedelta(seconds=2)).outcome is None
    assert len(campaigns.list_campaigns(database)) == 1
    assert _rows(database, sid) == [(slot, "sent", None)]


def test_two_schedulers_taking_one_slot_make_one_campaign(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    add_subscribers(database, 3)
    store_volume(database, grace, tmp_path, "9.2", "2024-03-15", ready=True)
    sid = _cadence(database, grace)
    barrier = threading.Barrier(2)
    outcomes: list[OccurrenceOutcome | None] = []

    def scheduler() -> None:
        db = Database(database.url)  # its own engine, as another process would have
        try:
            barrier.wait()
            result = occurrences.take_slot(db, grace, sid, FRIDAY + timedelta(seconds=1))
            outcomes.append(result.outcome)
        finally:
            db.dispose()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(OccurrenceOutcome.SENT) == 1 and outcomes.count(None) == 1
    assert len(campaigns.list_campaigns(database)) == 1


def test_a_cadence_skips_when_nothing_is_ready_and_sends_the_oldest_when_something_is(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    add_subscribers(database, 2)
    sid = _cadence(database, grace)
    skipped = occurrences.take_slot(database, grace, sid, FRIDAY)
    assert skipped.outcome is OccurrenceOutcome.SKIPPED
    assert skipped.reason is SkipReason.NO_READY_ISSUE and skipped.slug is None
    store_volume(database, grace, tmp_path, "9.3", "2024-03-29", ready=True)
    older = store_volume(database, grace, tmp_path, "9.2", "2024-03-15", ready=True)
    sent = occurrences.take_slot(database, grace, sid, SECOND + timedelta(seconds=1))
    assert sent.outcome is OccurrenceOutcome.SENT and sent.slug == older
    assert _rows(database, sid) == [(FRIDAY, "skipped", "no_ready_issue"), (SECOND, "sent", None)]
    # Still active: a cadence goes on.
    assert scheduling.schedule_info(database, sid).status is ScheduleStatus.ACTIVE


def test_nobody_to_send_to_is_a_skip_and_the_issue_stays_ready(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    add_subscribers(database, 2, status="pending")
    slug = store_volume(database, grace, tmp_path, "9.2", "2024-03-15", ready=True)
    sid = _cadence(database, grace)
    result = occurrences.take_slot(database, grace, sid, FRIDAY)
    assert result.outcome is OccurrenceOutcome.SKIPPED
    assert result.reason is SkipReason.NO_SUBSCRIBERS and result.slug == slug
    issue = get_issue(database, slug)
    assert issue is not None and issue.status is IssueStatus.READY
    assert campaigns.list_campaigns(database) == []


def test_a_one_off_whose_issue_became_a_draft_or_was_sent_by_hand_is_skipped(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    add_subscribers(database, 2)
    draft = store_volume(database, grace, tmp_path, "9.2", "2024-03-15")
    by_hand = store_volume(database, grace, tmp_path, "9.3", "2024-03-29")
    a = scheduling.add_one_off(database, grace, draft, at="2025-03-14T09:00", tz=NY, now=NOW).id
    b = scheduling.add_one_off(database, grace, by_hand, at="2025-03-14T09:00", tz=NY, now=NOW).id
    scheduling.set_ready(database, draft, False)
    campaigns.run_campaign(database, grace, campaigns.create_campaign(database, grace, by_hand))
    assert occurrences.take_slot(database, grace, a, SECOND).reason is SkipReason.NOT_READY
    assert occurrences.take_slot(database, grace, b, SECOND).reason is SkipReason.ALREADY_SENT
    assert len(campaigns.list_campaigns(database)) == 1


def test_late_within_the_grace_is_sent_and_beyond_it_is_missed(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    add_subscribers(database, 2)
    store_volume(database, grace, tmp_path, "9.2", "2024-03-15", ready=True)
    store_volume(database, grace, tmp_path, "9.3", "2024-03-29", ready=True)
    sid = _cadence(database, grace)
    missed = occurrences.take_slot(database, grace, sid, FRIDAY + timedelta(hours=1, seconds=2))
    assert missed.outcome is OccurrenceOutcome.MISSED
    assert missed.late == timedelta(hours=1, seconds=2)
    late = occurrences.take_slot(database, grace, sid, SECOND + timedelta(minutes=59))
    assert late.outcome is OccurrenceOutcome.SENT and late.late == timedelta(minutes=59)
    assert [o for _, o, _ in _rows(database, sid)] == ["missed", "sent"]


def test_slots_passed_while_nobody_ran_are_recorded_missed_once(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    store_volume(database, grace, tmp_path, "9.2", "2024-03-15", ready=True)
    sid = _cadence(database, grace)
    slug = store_volume(database, grace, tmp_path, "9.3", "2024-03-29")
    once = scheduling.add_one_off(database, grace, slug, at="2025-03-01T09:00", tz=NY, now=NOW).id
    # Back up on 20 March: two cadence slots and the one-off are past the hour's grace.
    back = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
    found = occurrences.settle(database, grace, back)
    assert sorted((m.schedule_id, m.slot) for m in found) == sorted(
        [(sid, FRIDAY), (sid, SECOND), (once, datetime(2025, 3, 1, 14, 0, tzinfo=UTC))]
    )
    assert {m.slug for m in found if m.schedule_id == once} == {slug}
    # The history says which issue did not go out (as when APScheduler reports the miss).
    recorded = scheduling.history(database, schedule_id=once, now=back)
    assert [(o.outcome, o.issue_slug) for o in recorded] == [(OccurrenceOutcome.MISSED, slug)]
    assert occurrences.settle(database, grace, back + timedelta(minutes=5)) == []
    assert scheduling.schedule_info(database, once).status is ScheduleStatus.DONE
    assert campaigns.list_campaigns(database) == []
    # Nothing is sent days late: the slots are not the scheduler's to take any more.
    assert occurrences.take_slot(database, grace, sid, back).outcome is None


def test_a_late_run_records_the_earlier_slots_nobody_sent(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    """APScheduler runs only the latest of several overdue slots (coalescing)."""
    add_subscribers(database, 1)
    store_volume(database, grace, tmp_path, "9.2", "2024-03-15", ready=True)
    daily = scheduling.add_cadence(
        database, grace, every="1d", on=None, at="09:00", tz="UTC", now=NOW
    ).id
    first = datetime(2025, 2, 25, 9, 0, tzinfo=UTC)
    result = occurrences.take_slot(database, grace, daily, first + timedelta(days=2, minutes=3))
    assert result.outcome is OccurrenceOutcome.SENT
    assert [(m.slot, m.late) for m in result.missed] == [
        (first, timedelta(days=2, minutes=3)),
        (first + timedelta(days=1), timedelta(days=1, minutes=3)),
    ]


def test_a_slot_staff_skipped_is_not_sent(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    add_subscribers(database, 1)
    store_volume(database, grace, tmp_path, "9.2", "2024-03-15", ready=True)
    sid = _cadence(database, grace)
    scheduling.skip(database, sid, on="2025-02-28", now=NOW)
    assert occurrences.take_slot(database, grace, sid, FRIDAY).outcome is None
    assert occurrences.settle(database, grace, FRIDAY + timedelta(hours=2)) == []
    assert _rows(database, sid) == [(FRIDAY, "cancelled", None)]


def test_a_missed_run_reported_by_apscheduler_is_recorded_once(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    sid = _cadence(database, grace)
    back = FRIDAY + timedelta(hours=3)
    missed = occurrences.record_missed(database, sid, FRIDAY, back)
    assert missed is not None and missed.late == timedelta(hours=3)
    assert occurrences.record_missed(database, sid, FRIDAY, back) is None
    assert _rows(database, sid) == [(FRIDAY, "missed", None)]


def test_campaigns_whose_sender_is_gone_are_found(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    add_subscribers(database, 2)
    slugs = [store_volume(database, grace, tmp_path, f"9.{n}", "2024-03-15") for n in (2, 3, 4)]
    ids = [campaigns.create_campaign(database, grace, s) for s in slugs]
    now = utcnow()
    # A process on this host that no longer exists: its own pid, at another start time.
    ours = owner_id().split(":")
    gone = ":".join([ours[0], ours[1], str(int(ours[2]) + 1), *ours[3:]])
    leases = [
        (None, None),  # released without finishing (the database went away)
        (gone, now + timedelta(minutes=5)),  # lease still running, holder gone
        (owner_id(), now + timedelta(minutes=5)),  # a live sender: this process
    ]
    with database.engine.begin() as conn:
        for cid, (owner, until) in zip(ids, leases, strict=True):
            conn.execute(
                update(C)
                .where(C.c.id == cid)
                .values(status=CampaignStatus.SENDING, lease_owner=owner, lease_expires_at=until)
            )
    assert sorted(occurrences.stalled(database, now)) == [(ids[0], False), (ids[1], True)]


def test_a_reminder_the_day_before_when_nothing_is_ready_once(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    sid = _cadence(database, grace)
    draft = store_volume(database, grace, tmp_path, "9.2", "2024-03-15")
    once = scheduling.add_one_off(database, grace, draft, at="2025-02-28T12:00", tz=NY, now=NOW)
    scheduling.set_ready(database, draft, False)
    assert occurrences.due_reminders(database, NOW) == []  # four days ahead: not yet
    thursday = FRIDAY - timedelta(hours=20)
    due = occurrences.due_reminders(database, thursday)
    assert sorted((r.schedule_id, r.slot, r.draft) for r in due) == [
        (sid, FRIDAY, None),
        (once.id, datetime(2025, 2, 28, 17, 0, tzinfo=UTC), draft),
    ]
    assert occurrences.due_reminders(database, thursday + timedelta(hours=1)) == []
    # A ready issue: no reminder for the next slot either.
    ready = store_volume(database, grace, tmp_path, "9.3", "2024-03-29", ready=True)
    assert ready
    assert occurrences.due_reminders(database, SECOND - timedelta(hours=2)) == []
    with database.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(SCH)) == 2
        assert conn.scalar(select(func.count()).select_from(SUBSCRIBERS)) == 0


def test_a_slot_nobody_took_is_overdue_until_a_scheduler_settles_it(
    database: Database, grace: Settings, tmp_path: Path
) -> None:
    sid = _cadence(database, grace)
    slug = store_volume(database, grace, tmp_path, "9.2", "2024-03-15", ready=True)
    once = scheduling.add_one_off(database, grace, slug, at="2025-02-27T09:00", tz=NY, now=NOW)
    assert occurrences.overdue(database, NOW) == []
    thursday = datetime(2025, 2, 27, 14, 0, tzinfo=UTC)
    # The one-off's time has just come: a scheduler has a moment to take it.
    assert occurrences.overdue(database, thursday + timedelta(seconds=30)) == []
    late = thursday + occurrences.OVERDUE_AFTER
    assert occurrences.overdue(database, late) == [occurrences.Overdue(once.id, thursday, NY, slug)]
    # Friday's cadence slot too, once it is as late.
    friday = FRIDAY + timedelta(minutes=5)
    assert [(o.schedule_id, o.slot) for o in occurrences.overdue(database, friday)] == [
        (sid, FRIDAY),
        (once.id, thursday),
    ]
    # A scheduler that starts records them (sent late, or missed past the grace).
    occurrences.settle(database, grace, friday + timedelta(hours=2))
    assert occurrences.overdue(database, friday + timedelta(hours=2)) == []
    assert [o.outcome for o in scheduling.history(database, now=friday + timedelta(hours=2))] == [
        OccurrenceOutcome.MISSED,
        OccurrenceOutcome.MISSED,
    ]
    # A slot taken on time is never overdue.
    add_subscribers(database, 1)
    store_volume(database, grace, tmp_path, "9.3", "2024-03-29", ready=True)
    taken = occurrences.take_slot(database, grace, sid, SECOND)
    assert taken.outcome is OccurrenceOutcome.SENT
    assert occurrences.overdue(database, SECOND + timedelta(minutes=10)) == []
