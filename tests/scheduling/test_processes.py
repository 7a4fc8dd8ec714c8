"""Real ``digestmail scheduler`` processes, on SQLite and on PostgreSQL.

A one-off send fires on time through the scheduler; a scheduler restarted after the send
does not send again; slots that passed while no scheduler ran are sent late within the
grace and recorded missed beyond it; two schedulers at once send a slot once; and a
scheduler SIGKILLed mid-campaign is replaced by one that finishes it at once, nobody
skipped. Schedules are written by this (test) process, as ``digestmail schedule`` would
from its own; the schedulers pick them up through the tables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, func, select

from digestmail import campaigns, scheduling
from digestmail.campaigns.batches import in_flight_rows
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import CampaignStatus, Delivery, OccurrenceOutcome, apscheduler_jobs, utcnow
from tests.campaign_helpers import add_subscribers, outbox_counts, store_volume

D = cast(Table, Delivery.__table__)
DIGESTMAIL = str(Path(sys.executable).parent / "digestmail")

# Real processes racing the clock: run alone, after the rest (see the Makefile).
pytestmark = [pytest.mark.slow, pytest.mark.serial]
GRACE = 10


class Scheduler:
    """A ``digestmail scheduler`` process, its output in files."""

    def __init__(self, folder: Path, name: str) -> None:
        self.out = folder / f"{name}.out"
        self.err = folder / f"{name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [DIGESTMAIL, "scheduler"], env=dict(os.environ), stdout=out, stderr=err
            )

    def ready(self) -> datetime:
        """Wait until it runs; the moment it said so."""
        _until(lambda: "Scheduler running" in self.out.read_text(), self.log)
        return utcnow()

    def log(self) -> str:
        return self.err.read_text()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.log()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@contextmanager
def running(folder: Path, name: str) -> Iterator[Scheduler]:
    scheduler = Scheduler(folder, name)
    try:
        yield scheduler
    finally:
        if scheduler.proc.poll() is None:
            scheduler.kill()


def _until(check: Callable[[], bool], log: Callable[[], str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out; the scheduler said:\n{log()}"
        time.sleep(0.05)


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Schedulers that read the schedules five times a second, with a 10 s grace."""
    monkeypatch.setenv("DIGESTMAIL_SCHEDULER_SYNC", "0.2")
    monkeypatch.setenv("DIGESTMAIL_MISFIRE_GRACE", str(GRACE))
    monkeypatch.setenv("DIGESTMAIL_LOG_LEVEL", "INFO")
    return Settings()


def _one_off(db: Database, settings: Settings, slug: str, at: datetime) -> int:
    return scheduling.add_one_off(db, settings, slug, at=at.isoformat()).id


def _campaign_of(db: Database, slug: str) -> campaigns.CampaignInfo | None:
    found = [c for c in campaigns.list_campaigns(db) if c.issue_slug == slug]
    assert len(found) <= 1, f"{slug} has {len(found)} campaigns"
    return found[0] if found else None


def _sent(db: Database, slug: str) -> bool:
    info = _campaign_of(db, slug)
    return info is not None and info.status is CampaignStatus.SENT


def _jobs(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(apscheduler_jobs)) or 0)


def test_a_one_off_fires_on_time_and_a_restart_sends_what_is_due_once(
    env: Settings, db_url: str, tmp_path: Path
) -> None:
    db = Database(db_url)
    add_subscribers(db, 5)
    x, y, z = (store_volume(db, env, tmp_path, f"9.{n}", "2024-03-15") for n in (2, 3, 4))

    with running(tmp_path, "first") as first:
        start = first.ready()
        at_x = (start + timedelta(seconds=2)).replace(microsecond=0) + timedelta(seconds=1)
        # Both pass while no scheduler runs. The second starts half a second after z:
        # y is then more than the grace late (missed), z less (sent late), however long
        # the second takes to start on a busy machine (up to 9 s).
        at_y = at_x + timedelta(seconds=3)
        at_z = at_y + timedelta(seconds=GRACE + 2)
        for slug, at in ((x, at_x), (y, at_y), (z, at_z)):
            _one_off(db, env, slug, at)
        _until(lambda: _sent(db, x), first.log)
        info = _campaign_of(db, x)
        assert info is not None and info.started_at is not None
        delay = (info.started_at - at_x).total_seconds()
        print(f"one-off fired {delay:.3f} s after its time")
        assert 0 <= delay < 2
        _until(lambda: _jobs(db) == 2, first.log)  # y and z wait in the job store
        first.stop()
    assert utcnow() < at_y, "the first scheduler took too long to stop for this test"
    assert _campaign_of(db, y) is None and _campaign_of(db, z) is None

    time.sleep(max(0.0, (at_z + timedelta(seconds=0.5) - utcnow()).total_seconds()))
    with running(tmp_path, "second") as second:
        second.ready()
        _until(lambda: _sent(db, z), second.log)
        _until(lambda: "was missed" in second.log(), second.log)
        time.sleep(1)  # a few more rounds: nothing else happens
        second.stop()

    recent = {o.issue_slug: o for o in scheduling.overview(db, everything=True).recent}
    assert recent[x].outcome is OccurrenceOutcome.SENT
    assert recent[y].outcome is OccurrenceOutcome.MISSED and _campaign_of(db, y) is None
    assert recent[z].outcome is OccurrenceOutcome.SENT
    info_z = _campaign_of(db, z)
    assert info_z is not None and info_z.started_at is not None
    assert timedelta(0) < info_z.started_at - at_z < timedelta(seconds=GRACE)
    received = outbox_counts(env.outbox_dir)
    assert received == {f"user{i}@example.com": 2 for i in range(5)}  # x once, z once
    assert f"(schedule {recent[y].schedule_id}, {y}) was missed" in " ".join(second.log().split())
    db.dispose()


def test_two_schedulers_at_once_send_a_slot_once(
    env: Settings, db_url: str, tmp_path: Path
) -> None:
    db = Database(db_url)
    add_subscribers(db, 20)
    slug = store_volume(db, env, tmp_path, "9.2", "2024-03-15")
    with running(tmp_path, "one") as one, running(tmp_path, "two") as two:
        start = max(one.ready(), two.ready())
        _one_off(db, env, slug, start + timedelta(seconds=2))
        _until(lambda: _sent(db, slug), lambda: one.log() + two.log())
        time.sleep(1)
        one.stop()
        two.stop()
    assert len(campaigns.list_campaigns(db)) == 1
    assert outbox_counts(env.outbox_dir) == {f"user{i}@example.com": 1 for i in range(20)}
    db.dispose()


def test_a_scheduler_killed_mid_campaign_is_replaced_by_one_that_finishes_it(
    env: Settings, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGESTMAIL_BATCH_SIZE", "50")
    monkeypatch.setenv("DIGESTMAIL_SENDER_LEASE", "30")  # a live sender's lease: no waiting it out
    n = 1500
    db = Database(db_url)
    add_subscribers(db, n)
    slug = store_volume(db, env, tmp_path, "9.2", "2024-03-15")
    with running(tmp_path, "doomed") as doomed:
        _one_off(db, env, slug, doomed.ready() + timedelta(seconds=1))

        def progress() -> bool:
            info = _campaign_of(db, slug)
            return info is not None and info.counts["accepted"] >= 300

        _until(progress, doomed.log)
        doomed.kill()
    info = _campaign_of(db, slug)
    assert info is not None and info.status is CampaignStatus.SENDING and info.sender_alive
    with db.engine.connect() as conn:
        in_flight = {email for *_, email in conn.execute(in_flight_rows([info.id]))}
    dead, until = info.lease_owner, info.lease_expires_at
    assert until is not None
    with running(tmp_path, "heir") as heir:
        heir.ready()

        def taken_over() -> bool:
            now = campaigns.campaign_info(db, info.id)
            return now.lease_owner != dead or now.status is CampaignStatus.SENT

        _until(taken_over, heir.log)
        left = (until - utcnow()).total_seconds()
        print(f"taken over with {left:.1f} s of the dead sender's lease left")
        assert left > 0  # at once, not once the lease ran out
        _until(lambda: _sent(db, slug), heir.log)
        heir.stop()
    info = _campaign_of(db, slug)
    assert info is not None and info.counts["accepted"] == n
    received = outbox_counts(env.outbox_dir)
    assert set(received) == {f"user{i}@example.com" for i in range(n)}  # nobody skipped
    assert {e for e, k in received.items() if k > 1} <= in_flight <= set(received)
    assert "was resumed automatically: its sender's process is gone" in " ".join(heir.log().split())
    (occurrence,) = scheduling.overview(db, everything=True).recent
    assert occurrence.campaign_id == info.id
    db.dispose()
