"""The lease: one sender per campaign, and a dead sender's campaign taken over."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import cast

import pytest
from sqlalchemy import Table, update

from digestmail import campaigns
from digestmail.campaigns import LeaseHeld, run_campaign
from digestmail.campaigns.lease import Lease, holder_gone, owner_id
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import Campaign, CampaignStatus, utcnow
from digestmail.transports.base import Recipient
from tests.campaign_helpers import HookedOutbox, add_subscribers, outbox_counts, store_issue

C = cast(Table, Campaign.__table__)


def test_two_senders_racing_for_one_campaign(database: Database, small: Settings) -> None:
    add_subscribers(database, 40)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def slow(n: int, _: Sequence[Recipient]) -> None:
        time.sleep(0.3 if n == 1 else 0)

    def sender() -> None:
        db = Database(database.url)  # a separate engine, as another process would have
        try:
            barrier.wait()
            run_campaign(db, small, cid, transport=HookedOutbox(small, slow))
            outcomes.append("sent")
        except LeaseHeld:
            outcomes.append("lease held")
        finally:
            db.dispose()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["lease held", "sent"]
    assert outbox_counts(small.outbox_dir) == {f"user{i}@example.com": 1 for i in range(40)}


def test_resume_after_a_dead_sender_resends_only_the_batch_in_flight(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 30)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)

    def die_in_second_batch(n: int, _: Sequence[Recipient]) -> None:
        if n == 2:
            raise SystemExit("killed")  # the process ends with batch 2 claimed

    with pytest.raises(SystemExit):
        run_campaign(database, small, cid, transport=HookedOutbox(small, die_in_second_batch))
    # Simulate a SIGKILL: the lease is still held by the dead process.
    with database.engine.begin() as conn:
        conn.execute(
            update(C)
            .where(C.c.id == cid)
            .values(lease_owner="dead-host:1", lease_expires_at=utcnow() + timedelta(seconds=60))
        )
    info = campaigns.campaign_info(database, cid)
    assert info.counts["claimed"] == 10 and info.sender_alive
    assert info.status is CampaignStatus.SENDING  # a process ending is not a failure

    with pytest.raises(LeaseHeld, match="dead-host:1") as held:
        run_campaign(database, small, cid, resume=True)
    assert held.value.campaign_id == cid and held.value.owner == "dead-host:1"
    assert held.value.expires_at is not None

    with database.engine.begin() as conn:
        conn.execute(
            update(C).where(C.c.id == cid).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    info = campaigns.campaign_info(database, cid)
    assert not info.sender_alive and info.in_flight_unknown == 10
    assert info.to_json()["in_flight_unknown"] == 10

    # A sending campaign with an expired lease is picked up without --resume (scheduler).
    info = run_campaign(database, small, cid)
    assert info.status == "sent" and info.counts["accepted"] == 30
    assert info.resent == 10  # the batch in flight, sent again
    assert info.to_json()["resent"] == 10
    assert outbox_counts(small.outbox_dir) == {f"user{i}@example.com": 1 for i in range(30)}


def test_a_lease_is_renewed_and_released_only_by_its_holder(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 1)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    ours = Lease(database, cid, owner_id(), 30)
    theirs = Lease(database, cid, owner_id(), 30)
    with database.engine.begin() as conn:
        taken = ours.take(conn, (CampaignStatus.SCHEDULED,), utcnow())
    assert taken.slug == slug and taken.started_at is None
    with database.engine.begin() as conn:
        assert ours.renew(conn) and not theirs.renew(conn)
        with pytest.raises(LeaseHeld):
            theirs.take(conn, (CampaignStatus.SENDING,), utcnow())
    theirs.release(status=CampaignStatus.PAUSED)  # not theirs to release: nothing changes
    info = campaigns.campaign_info(database, cid)
    assert info.status is CampaignStatus.SENDING and info.lease_owner == ours.owner
    ours.release()
    assert campaigns.campaign_info(database, cid).lease_owner is None


def _owner_of_a_process(*, stay: bool) -> tuple[subprocess.Popen[str], str]:
    """A real process on this host that prints its lease owner id (and waits, if ``stay``)."""
    code = "from digestmail.campaigns.lease import owner_id; print(owner_id(), flush=True)"
    if stay:
        code += "; import sys; sys.stdin.read()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_a_holder_is_gone_only_when_its_process_on_this_host_is() -> None:
    live, owner = _owner_of_a_process(stay=True)
    assert not holder_gone(owner)  # running
    live.communicate("")
    assert holder_gone(owner)  # exited (and reaped)

    ours = owner_id()
    assert not holder_gone(ours)
    host, pid, start, machine, tag = ours.split(":")
    # The same pid with another start time is another process: ours took its number.
    assert holder_gone(":".join([host, pid, str(int(start) + 1), machine, tag]))
    # Another host, another container (PID namespace) or boot, an id from an older version:
    # nothing can be known from here, so the lease is left to run out.
    assert not holder_gone(":".join(["elsewhere", "999999", start, machine, tag]))
    assert not holder_gone(":".join([host, "999999", start, "00000000", tag]))
    assert not holder_gone("dead-host:1") and not holder_gone(f"{host}:999999:abcd1234")


def test_a_lease_whose_holder_is_gone_is_taken_over_at_once(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 1)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    proc, dead = _owner_of_a_process(stay=False)
    proc.wait()
    with database.engine.begin() as conn:
        conn.execute(
            update(C)
            .where(C.c.id == cid)
            .values(
                status=CampaignStatus.SENDING,
                lease_owner=dead,
                lease_expires_at=utcnow() + timedelta(minutes=5),
            )
        )
    mine = Lease(database, cid, owner_id(), 30)
    with database.engine.begin() as conn:
        taken = mine.take(conn, (CampaignStatus.SENDING,), utcnow())
    assert taken.took_over_from == dead
    assert campaigns.campaign_info(database, cid).lease_owner == mine.owner
