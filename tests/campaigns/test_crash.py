"""The fault test: a real sender process is SIGKILLed twice in mid-send and resumed.

The sender has several batches in flight (``DIGESTMAIL_SEND_CONCURRENCY`` above 1), and
each kill comes while more than one is. Each resume takes over at once: the dead sender
was a process on this host, so nobody waits for its lease to run out. Afterwards every
active subscriber has the issue, and anyone who got it twice was in a batch in flight
(a batch left open) at one of the kills: at most concurrency × batch size recipients each
time. Runs on SQLite and on PostgreSQL, through the outbox transport (each message a
file, so duplicates show).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, func, select, update

from digestmail import campaigns
from digestmail.campaigns.batches import in_flight_rows
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import Campaign, Delivery, utcnow
from tests.campaign_helpers import SUBSCRIBERS, add_subscribers, outbox_counts, store_issue

D = cast(Table, Delivery.__table__)
C = cast(Table, Campaign.__table__)
N = 3000
BATCH = 50
CONCURRENCY = 3
DIGESTMAIL = str(Path(sys.executable).parent / "digestmail")

# Real processes racing the clock: run alone, after the rest (see the Makefile).
pytestmark = [pytest.mark.slow, pytest.mark.serial]


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [DIGESTMAIL, *args],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_when(
    proc: subprocess.Popen[bytes], db: Database, cid: int | None, accepted_at_least: int
) -> None:
    """SIGKILL the sender once the ledger shows this much progress and more than one
    batch in flight."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (
            f"sender ended early: {proc.stderr.read() if proc.stderr else ''}"
        )
        with db.engine.connect() as conn:
            query = select(D.c.campaign_id, func.count()).where(D.c.state == "accepted")
            if cid is not None:
                query = query.where(D.c.campaign_id == cid)
            done = sum(n for _, n in conn.execute(query.group_by(D.c.campaign_id)))
            ids = [cid] if cid is not None else list(conn.scalars(select(C.c.id)))
            flying = {number for _, number, _, _ in conn.execute(in_flight_rows(ids))}
        if done >= accepted_at_least and len(flying) > 1:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("the sender made no progress")


def _in_flight(db: Database, cid: int) -> dict[int, set[str]]:
    """The rows left in flight, by batch."""
    out: dict[int, set[str]] = {}
    with db.engine.connect() as conn:
        for _, batch, _, email in conn.execute(in_flight_rows([cid])):
            out.setdefault(batch, set()).add(email)
    return out


def _lengthen_lease(db: Database, cid: int) -> None:
    """Give the dead sender's lease the time a live one would still have."""
    with db.engine.begin() as conn:
        conn.execute(
            update(C).where(C.c.id == cid).values(lease_expires_at=utcnow() + timedelta(minutes=5))
        )


def test_killed_sender_resumes_without_losing_anyone(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGESTMAIL_SENDER_LEASE", "2")
    monkeypatch.setenv("DIGESTMAIL_BATCH_SIZE", str(BATCH))
    monkeypatch.setenv("DIGESTMAIL_SEND_CONCURRENCY", str(CONCURRENCY))
    settings = Settings()
    db = Database(db_url)
    add_subscribers(db, N)
    slug = store_issue(db, settings)

    first = _start("send", slug, "--yes")
    _kill_when(first, db, None, 600)
    (info,) = campaigns.list_campaigns(db)
    cid = info.id
    assert info.status == "sending" and info.sender_alive  # a dead sender's lease lingers
    flights = [_in_flight(db, cid)]

    # While nobody sends, a few subscribers not yet reached leave the list.
    with db.engine.begin() as conn:
        leavers = list(
            conn.scalars(
                select(D.c.email)
                .where(D.c.campaign_id == cid, D.c.state == "pending")
                .order_by(D.c.id.desc())
                .limit(5)
            )
        )
        conn.execute(
            update(SUBSCRIBERS)
            .where(SUBSCRIBERS.c.email.in_(leavers))
            .values(status="unsubscribed")
        )

    # A resume right after the crash takes over at once, however long the dead sender's
    # lease still runs (made 5 minutes here): it was a process on this host, and it is gone.
    dead = campaigns.campaign_info(db, cid).lease_owner
    _lengthen_lease(db, cid)
    second = _start("campaign", "resume", str(cid))
    _kill_when(second, db, cid, 1600)
    assert campaigns.campaign_info(db, cid).lease_owner not in (None, dead)
    flights.append(_in_flight(db, cid))
    _lengthen_lease(db, cid)

    last = _start("campaign", "resume", str(cid))
    _, err = last.communicate(timeout=120)
    assert last.returncode == 0, err.decode()

    info = campaigns.campaign_info(db, cid)
    assert info.status == "sent"
    assert info.counts["accepted"] == N - len(leavers)
    assert info.counts["skipped"] == len(leavers)
    received = outbox_counts(settings.outbox_dir)
    everyone = {f"user{i}@example.com" for i in range(N)}
    assert set(received) == everyone - set(leavers)  # nobody active is missing
    twice = {email for email, n in received.items() if n > 1}
    in_flight = {email for flight in flights for batch in flight.values() for email in batch}
    # Each kill left several batches claimed, never more than the sender may have in
    # flight: at most CONCURRENCY batches of at most BATCH recipients.
    for flight in flights:
        assert 1 < len(flight) <= CONCURRENCY
        assert all(0 < len(batch) <= BATCH for batch in flight.values())
        assert sum(map(len, flight.values())) <= CONCURRENCY * BATCH
    print(
        f"in flight at the kills: {[sorted(map(len, f.values())) for f in flights]}; "
        f"received twice: {len(twice)}"
    )
    assert twice <= in_flight, "a duplicate outside the batches in flight at a kill"
    assert max(received.values()) <= 2
    # `campaign status` reports the recipients who were in flight and sent again.
    assert info.resent == len(in_flight)
    db.dispose()
