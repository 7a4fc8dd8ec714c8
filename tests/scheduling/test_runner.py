"""The scheduler in this process (as ``digestmail serve`` runs it): real APScheduler,
real database, the outbox transport. The separate-process cases are in
``test_processes.py``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from fastapi import FastAPI
from sqlalchemy import Table, update
from typer.testing import CliRunner

from digestmail import campaigns, scheduling
from digestmail.campaigns import run_campaign
from digestmail.campaigns.batches import in_flight_counts
from digestmail.campaigns.lease import owner_id
from digestmail.cli import app as cli_app
from digestmail.cli.serve import attach_scheduler
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import Campaign, CampaignStatus, Delivery, OccurrenceOutcome, utcnow
from digestmail.scheduling import runner
from digestmail.transports.base import Recipient
from digestmail.web import create_app
from tests.campaign_helpers import HookedOutbox, add_subscribers, outbox_counts, store_volume

C = cast(Table, Campaign.__table__)
D = cast(Table, Delivery.__table__)


@pytest.fixture
def quick(settings: Settings) -> Settings:
    """A scheduler that reads the schedules five times a second."""
    return settings.model_copy(update={"scheduler_sync": 0.2, "batch_size": 10})


def _serving(app: FastAPI, body: Callable[[], None]) -> None:
    """Run ``body`` between the app's startup and its shutdown, as a server would."""

    async def main() -> None:
        async with app.router.lifespan_context(app):
            await asyncio.to_thread(body)

    asyncio.run(main())


def _until(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_serve_runs_the_scheduler_with_the_app_and_a_moved_send_goes_at_its_new_time(
    database: Database, quick: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="digestmail")
    add_subscribers(database, 12)
    slug = store_volume(database, quick, tmp_path, "9.2", "2024-03-15")
    app = create_app(quick)
    attach_scheduler(app, quick)
    assert runner._current is None
    sid = 0

    def body() -> None:
        nonlocal sid
        assert runner._current is not None  # started with the app
        sid = scheduling.add_one_off(
            database, quick, slug, at=(utcnow() + timedelta(minutes=10)).isoformat()
        ).id
        time.sleep(0.5)  # the scheduler has its job for ten minutes from now
        at = (utcnow() + timedelta(seconds=1.5)).replace(microsecond=0) + timedelta(seconds=1)
        scheduling.move(database, sid, at=at.isoformat())

        def sent() -> bool:
            found = campaigns.list_campaigns(database)
            return bool(found) and found[0].status is CampaignStatus.SENT

        _until(sent)

    _serving(app, body)
    assert runner._current is None  # stopped with it
    (info,) = campaigns.list_campaigns(database)
    at = info.scheduled_at
    assert at is not None and info.started_at is not None
    assert scheduling.schedule_info(database, sid).run_at == at  # the time it was moved to
    assert info.started_at - at < timedelta(seconds=2)
    assert outbox_counts(quick.outbox_dir) == {f"user{i}@example.com": 1 for i in range(12)}
    recent = scheduling.overview(database, everything=True).recent
    assert [(o.outcome, o.campaign_id) for o in recent] == [(OccurrenceOutcome.SENT, info.id)]
    said = [r.getMessage() for r in caplog.records if r.name == "digestmail.notify"]
    assert f"Campaign {info.id} ({slug}) is sent." in said  # the report, to the log here


def test_serve_with_no_scheduler_runs_none(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def run(app: FastAPI, **_: object) -> None:  # uvicorn, stood in for: run the lifespan
        _serving(app, lambda: seen.append(runner._current is not None))

    monkeypatch.setattr("uvicorn.run", run)
    for args, expected in ((["serve", "--no-scheduler"], False), (["serve"], True)):
        result = CliRunner().invoke(cli_app, args)
        assert result.exit_code == 0, result.output
        assert seen.pop() is expected


def test_campaigns_left_by_dead_senders_are_resumed_at_once_and_staff_told(
    database: Database, quick: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="digestmail")
    add_subscribers(database, 30)
    slugs = [store_volume(database, quick, tmp_path, f"9.{n}", "2024-03-15") for n in (2, 3)]
    ids = []
    for slug in slugs:
        cid = campaigns.create_campaign(database, quick, slug)

        def die(n: int, _: Sequence[Recipient]) -> None:
            if n == 2:
                raise SystemExit("killed")  # the process ends with batch 2 claimed

        with pytest.raises(SystemExit):
            run_campaign(database, quick, cid, transport=HookedOutbox(quick, die))
        ids.append(cid)
    # One sender's lease ran out (a process elsewhere); the other's still runs, but it was
    # a process on this host that is gone (this process, under another start time).
    host, pid, start, machine, tag = owner_id().split(":")
    gone = ":".join([host, pid, str(int(start) + 1), machine, tag])
    with database.engine.begin() as conn:
        conn.execute(
            update(C)
            .where(C.c.id == ids[0])
            .values(lease_owner="elsewhere:1", lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        conn.execute(
            update(C)
            .where(C.c.id == ids[1])
            .values(lease_owner=gone, lease_expires_at=utcnow() + timedelta(minutes=5))
        )
        # Every batch the dead sender had in flight is left open: at most
        # concurrency × batch size, and at least the batch it died with.
        claimed = conn.execute(in_flight_counts(ids)).all()
    in_flight = dict(claimed)
    for cid in ids:
        assert quick.batch_size <= in_flight[cid] <= quick.send_concurrency * quick.batch_size
    scheduler = runner.Scheduler(quick)
    scheduler.start()
    try:
        _until(
            lambda: all(
                campaigns.campaign_info(database, c).status is CampaignStatus.SENT for c in ids
            )
        )
    finally:
        scheduler.stop()
    for cid in ids:
        info = campaigns.campaign_info(database, cid)
        assert info.counts["accepted"] == 30 and info.resent == in_flight[cid]
    said = " ".join(r.getMessage() for r in caplog.records if r.name == "digestmail.notify")
    assert f"Campaign {ids[0]} ({slugs[0]}) was resumed automatically: its sender stopped" in said
    assert f"Campaign {ids[1]} ({slugs[1]}) was resumed automatically: its sender's process" in said
    for cid in ids:
        assert f"{in_flight[cid]} recipients were in flight" in said


def test_a_run_apscheduler_gave_up_on_is_recorded_missed_and_reported(
    database: Database, quick: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="digestmail.notify")
    info = scheduling.add_cadence(
        database, quick, every="1d", on=None, at="09:00", now=utcnow() - timedelta(days=3)
    )
    slot = info.next_run
    assert slot is not None
    scheduler = runner.Scheduler(quick, database)  # not started: only its listener is used
    event = JobExecutionEvent(EVENT_JOB_MISSED, f"schedule-{info.id}", runner.JOBS, slot)
    scheduler._on_event(event)
    scheduler._on_event(event)  # reported twice by mistake: recorded and told once
    recent = scheduling.overview(database, now=utcnow()).recent
    assert [(o.slot, o.outcome) for o in recent] == [(slot, OccurrenceOutcome.MISSED)]
    said = [
        r.getMessage()
        for r in caplog.records
        if r.name == "digestmail.notify" and "was missed" in r.getMessage()
    ]
    assert len(said) == 1 and f"(schedule {info.id})" in said[0]
