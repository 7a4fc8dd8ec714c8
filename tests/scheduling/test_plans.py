"""What staff say: cadences, one-off sends, and changes to them (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digestmail import campaigns, scheduling
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.issues import get_issue
from digestmail.models import IssueStatus, OccurrenceOutcome, ScheduleKind, ScheduleStatus
from digestmail.scheduling import (
    Action,
    AlreadyScheduled,
    AmbiguousTime,
    BadValue,
    Field,
    InThePast,
    IssueSent,
    MissingValue,
    NonexistentTime,
    NoOccurrenceOn,
    ScheduleNotFound,
    WrongState,
)
from tests.campaign_helpers import add_subscribers, store_volume

NY = "America/New_York"
# A Monday in February 2025, 12:00 in New York.
NOW = datetime(2025, 2, 24, 17, 0, tzinfo=UTC)


def _cadence(db: Database, settings: Settings, **kw: str) -> scheduling.ScheduleInfo:
    args = {"every": "2w", "on": "fri", "at": "09:00", "tz": NY, **kw}
    return scheduling.add_cadence(db, settings, now=NOW, **args)


def test_a_cadence_sends_the_oldest_ready_issue_and_says_when(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    info = _cadence(database, settings)
    assert info.kind is ScheduleKind.CADENCE and info.status is ScheduleStatus.ACTIVE
    assert info.next_run == datetime(2025, 2, 28, 14, 0, tzinfo=UTC)  # Friday 09:00 EST
    assert info.to_json()["next_run"] == "2025-02-28T09:00:00-05:00"
    assert info.weekday == 4 and info.issue_slug is None  # nothing ready: "none ready"

    newer = store_volume(database, settings, tmp_path, "9.3", "2024-03-29", ready=True)
    older = store_volume(database, settings, tmp_path, "9.2", "2024-03-15", ready=True)
    store_volume(database, settings, tmp_path, "9.0", "2024-02-01")  # a draft
    assert scheduling.schedule_info(database, info.id, now=NOW).issue_slug == older
    # An issue waiting for a one-off send of its own is not the cadence's to take.
    scheduling.add_one_off(database, settings, older, at="2025-03-20T09:00", tz=NY, now=NOW)
    assert scheduling.schedule_info(database, info.id, now=NOW).issue_slug == newer


def test_a_cadence_from_a_date_and_in_days(database: Database, settings: Settings) -> None:
    later = _cadence(database, settings, start="2025-04-01")
    assert later.start is not None and later.start.isoformat() == "2025-04-04"
    daily = scheduling.add_cadence(
        database, settings, every="1d", on=None, at="08:00", tz="Asia/Tokyo", now=NOW
    )
    assert daily.next_run == datetime(2025, 2, 24, 23, 0, tzinfo=UTC)  # 08:00 JST tomorrow
    assert daily.weekday is None


def test_a_cadence_says_what_it_cannot_read(database: Database, settings: Settings) -> None:
    with pytest.raises(MissingValue) as missing:
        scheduling.add_cadence(database, settings, every="2w", on=None, at="09:00", now=NOW)
    assert missing.value.field is Field.WEEKDAY and missing.value.needed
    with pytest.raises(MissingValue):
        scheduling.add_cadence(database, settings, every="3d", on="fri", at="09:00", now=NOW)
    with pytest.raises(BadValue) as bad:
        _cadence(database, settings, tz="Eastern")
    assert bad.value.field is Field.ZONE
    with pytest.raises(NonexistentTime):  # Sundays at 02:30: the clocks skip it in March
        _cadence(database, settings, every="1w", on="sun", at="02:30")
    assert scheduling.overview(database, now=NOW).schedules == []


def test_a_one_off_marks_its_issue_ready_and_refuses_what_it_cannot_do(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    slug = store_volume(database, settings, tmp_path, "9.2", "2024-03-15")
    info = scheduling.add_one_off(database, settings, slug, at="2025-03-14T09:00", tz=NY, now=NOW)
    assert info.kind is ScheduleKind.ONCE and info.issue_slug == slug
    assert info.next_run == datetime(2025, 3, 14, 13, 0, tzinfo=UTC)  # EDT by then
    assert info.to_json()["at"] == "2025-03-14T09:00:00-04:00"
    issue = get_issue(database, slug)
    assert issue is not None and issue.status is IssueStatus.READY

    with pytest.raises(AlreadyScheduled) as twice:
        scheduling.add_one_off(database, settings, slug, at="2025-03-15T09:00", now=NOW)
    assert twice.value.schedule_id == info.id
    other = store_volume(database, settings, tmp_path, "9.3", "2024-03-29")
    with pytest.raises(InThePast):
        scheduling.add_one_off(database, settings, other, at="2025-02-24T11:00", tz=NY, now=NOW)
    with pytest.raises(NonexistentTime):
        scheduling.add_one_off(database, settings, other, at="2025-03-09T02:30", tz=NY, now=NOW)
    with pytest.raises(AmbiguousTime):
        scheduling.add_one_off(database, settings, other, at="2025-11-02T01:30", tz=NY, now=NOW)
    with pytest.raises(campaigns.IssueNotFound):
        scheduling.add_one_off(database, settings, "nope", at="2025-03-14T09:00", now=NOW)
    # An issue that has been sent, or has had a campaign, is not scheduled again.
    add_subscribers(database, 2)
    cid = campaigns.create_campaign(database, settings, other)
    with pytest.raises(campaigns.CampaignExists):
        scheduling.add_one_off(database, settings, other, at="2025-03-14T09:00", now=NOW)
    campaigns.run_campaign(database, settings, cid)
    with pytest.raises(IssueSent):
        scheduling.add_one_off(database, settings, other, at="2025-03-14T09:00", now=NOW)
    with pytest.raises(IssueSent):
        scheduling.set_ready(database, other, False)
    issue = get_issue(database, other)
    assert issue is not None and issue.status is IssueStatus.SENT  # nothing was changed
    assert [s.id for s in scheduling.overview(database, now=NOW).schedules] == [info.id]


def test_a_one_off_in_the_default_zone_or_with_an_offset(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    tokyo = settings.model_copy(update={"timezone": "Asia/Tokyo"})
    first = store_volume(database, settings, tmp_path, "9.2", "2024-03-15")
    second = store_volume(database, settings, tmp_path, "9.3", "2024-03-29")
    a = scheduling.add_one_off(database, tokyo, first, at="2025-03-14 09:00", now=NOW)
    assert a.zone == "Asia/Tokyo" and a.run_at == datetime(2025, 3, 14, 0, 0, tzinfo=UTC)
    b = scheduling.add_one_off(database, tokyo, second, at="2025-03-14T09:00-04:00", now=NOW)
    assert b.run_at == datetime(2025, 3, 14, 13, 0, tzinfo=UTC)


def test_cancel_pause_resume_and_move(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    slug = store_volume(database, settings, tmp_path, "9.2", "2024-03-15")
    once = scheduling.add_one_off(database, settings, slug, at="2025-03-14T09:00", tz=NY, now=NOW)
    moved = scheduling.move(database, once.id, at="2025-03-21T10:30", now=NOW)
    assert moved.run_at == datetime(2025, 3, 21, 14, 30, tzinfo=UTC)  # the schedule's zone
    with pytest.raises(InThePast):
        scheduling.move(database, once.id, at="2025-01-01T10:30", now=NOW)

    cadence = _cadence(database, settings)
    with pytest.raises(WrongState) as wrong:
        scheduling.move(database, cadence.id, at="2025-03-21T10:30", now=NOW)
    assert wrong.value.action is Action.MOVE and wrong.value.kind is ScheduleKind.CADENCE
    paused = scheduling.pause(database, cadence.id, now=NOW)
    assert paused.status is ScheduleStatus.PAUSED and paused.next_run is None
    with pytest.raises(WrongState):
        scheduling.pause(database, cadence.id, now=NOW)
    # Resumed a month later: the slots passed while paused are not made up.
    later = NOW + timedelta(days=30)
    resumed = scheduling.resume(database, cadence.id, now=later)
    assert resumed.status is ScheduleStatus.ACTIVE and resumed.next_run is not None
    assert resumed.next_run > later
    cancelled = scheduling.cancel(database, cadence.id, now=later)
    assert cancelled.status is ScheduleStatus.CANCELLED
    with pytest.raises(WrongState):
        scheduling.resume(database, cadence.id, now=later)
    with pytest.raises(ScheduleNotFound):
        scheduling.cancel(database, 99)
    with pytest.raises(ScheduleNotFound):
        scheduling.cancel(database, 2**40)  # beyond any id: never reaches the driver

    listed = scheduling.overview(database, now=later)
    assert [s.id for s in listed.schedules] == [once.id]
    everything = scheduling.overview(database, everything=True, now=later)
    assert [s.id for s in everything.schedules] == [once.id, cadence.id]


def test_skip_one_occurrence_of_a_cadence(database: Database, settings: Settings) -> None:
    cadence = _cadence(database, settings)
    info, slot = scheduling.skip(database, cadence.id, on="2025-02-28", now=NOW)
    assert slot == datetime(2025, 2, 28, 14, 0, tzinfo=UTC)
    assert info.skipping == [slot]
    assert info.next_run == datetime(2025, 3, 14, 13, 0, tzinfo=UTC)  # the one after
    again, _ = scheduling.skip(database, cadence.id, on="2025-02-28", now=NOW)  # idempotent
    assert again.skipping == [slot]
    with pytest.raises(NoOccurrenceOn) as none:
        scheduling.skip(database, cadence.id, on="2025-03-07", now=NOW)
    assert [s.date().isoformat() for s in none.value.nearest] == [
        "2025-03-14",
        "2025-03-28",
        "2025-04-11",
    ]
    with pytest.raises(InThePast):
        scheduling.skip(database, cadence.id, on="2025-02-28", now=NOW + timedelta(days=5))


def test_ready_and_unready_report_the_one_off_waiting(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    slug = store_volume(database, settings, tmp_path, "9.2", "2024-03-15")
    assert scheduling.set_ready(database, slug, True, now=NOW).status is IssueStatus.READY
    once = scheduling.add_one_off(database, settings, slug, at="2025-03-14T09:00", now=NOW)
    result = scheduling.set_ready(database, slug, False, now=NOW)
    assert result.status is IssueStatus.DRAFT and [s.id for s in result.waiting] == [once.id]
    with pytest.raises(campaigns.IssueNotFound):
        scheduling.set_ready(database, "nope", True)


def test_the_next_send_and_what_it_sends(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    assert scheduling.next_send(database, now=NOW) is None  # nothing scheduled
    cadence = _cadence(database, settings)
    upcoming = scheduling.next_send(database, now=NOW)
    assert upcoming is not None and upcoming.id == cadence.id
    assert upcoming.next_run == datetime(2025, 2, 28, 14, 0, tzinfo=UTC)
    assert upcoming.issue_slug is None and not upcoming.sends_an_issue
    ready = store_volume(database, settings, tmp_path, "9.2", "2024-03-15", ready=True)
    upcoming = scheduling.next_send(database, now=NOW)
    assert upcoming is not None and upcoming.issue_slug == ready and upcoming.sends_an_issue
    assert upcoming.issue_title == get_issue(database, ready).title  # type: ignore[union-attr]
    # A one-off before it goes first; its issue a draft again: it would send nothing.
    draft = store_volume(database, settings, tmp_path, "9.3", "2024-03-29")
    once = scheduling.add_one_off(database, settings, draft, at="2025-02-26T09:00", tz=NY, now=NOW)
    scheduling.set_ready(database, draft, False)
    upcoming = scheduling.next_send(database, now=NOW)
    assert upcoming is not None and upcoming.id == once.id
    assert upcoming.issue_slug == draft and upcoming.issue_status is IssueStatus.DRAFT
    assert not upcoming.sends_an_issue
    # Paused schedules send nothing: the next send is the other one's.
    scheduling.pause(database, once.id, now=NOW)
    assert scheduling.next_send(database, now=NOW).id == cadence.id  # type: ignore[union-attr]
    scheduling.pause(database, cadence.id, now=NOW)
    assert scheduling.next_send(database, now=NOW) is None


def test_history_of_one_schedule_or_all(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    assert scheduling.history(database, now=NOW) == []
    first = _cadence(database, settings)
    second = _cadence(database, settings, on="thu")
    scheduling.skip(database, first.id, on="2025-02-28", now=NOW)
    scheduling.skip(database, second.id, on="2025-02-27", now=NOW)
    later = datetime(2025, 3, 1, tzinfo=UTC)
    everything = scheduling.history(database, now=later)
    assert [(o.schedule_id, o.outcome) for o in everything] == [
        (first.id, OccurrenceOutcome.CANCELLED),
        (second.id, OccurrenceOutcome.CANCELLED),
    ]
    only = scheduling.history(database, schedule_id=second.id, now=later)
    assert [o.slot for o in only] == [datetime(2025, 2, 27, 14, 0, tzinfo=UTC)]
    assert scheduling.history(database, now=later, limit=1) == everything[:1]
    assert scheduling.history(database, now=NOW) == []  # slots still ahead are not history
