"""Campaigns on real databases (SQLite and PostgreSQL) through the real outbox transport.

Where a test must act *while* a batch is in flight (pause, unsubscribe, a provider
failure), it wraps the outbox transport: the campaign code under test is never faked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr
from sqlalchemy import Row, Table, func, select, update

from digestmail import campaigns
from digestmail.campaigns import (
    CampaignError,
    LeaseHeld,
    TokenBucket,
    run_campaign,
)
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import Campaign, Delivery, Issue, utcnow
from digestmail.tokens import Purpose, read_token
from digestmail.transports.base import (
    BatchResult,
    MessageTemplate,
    Recipient,
    Rejected,
    TransportError,
)
from digestmail.transports.outbox import OutboxTransport
from digestmail.transports.smtp import SMTPTransport
from tests.campaign_helpers import (
    SUBSCRIBERS,
    add_subscribers,
    outbox_counts,
    outbox_messages,
    store_issue,
)
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.smtp import SMTPSink

D = cast(Table, Delivery.__table__)
C = cast(Table, Campaign.__table__)

Hook = Callable[[int, Sequence[Recipient]], None]


class HookedOutbox(OutboxTransport):
    """The outbox transport, with a hook run before each batch (numbered from 1)."""

    def __init__(self, settings: Settings, hook: Hook | None = None) -> None:
        super().__init__(settings)
        self.hook = hook
        self.calls = 0

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        self.calls += 1
        if self.hook:
            self.hook(self.calls, recipients)
        return super().send_batch(template, recipients)


@pytest.fixture
def small(settings: Settings) -> Settings:
    return settings.model_copy(update={"batch_size": 10, "sender_lease": 5})


def _states(db: Database, cid: int) -> dict[str, int]:
    return campaigns.campaign_info(db, cid).counts


def test_every_active_subscriber_gets_one_personal_message(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 25)
    add_subscribers(database, 3, status="pending", prefix="pending")
    add_subscribers(database, 2, status="unsubscribed", prefix="gone")
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)

    info = run_campaign(database, small, cid)

    assert info.status == "sent" and info.finished_at is not None
    assert info.counts["accepted"] == 25 and info.total == 25 and info.resent == 0
    counts = outbox_counts(small.outbox_dir)
    assert counts == {f"user{i}@example.com": 1 for i in range(25)}
    with database.engine.connect() as conn:
        batches = conn.execute(
            select(D.c.batch, func.count()).where(D.c.campaign_id == cid).group_by(D.c.batch)
        ).all()
        assert sorted(batches) == [(1, 10), (2, 10), (3, 5)]
        assert (
            conn.scalar(
                select(func.count()).where(
                    D.c.campaign_id == cid, D.c.provider_message_id.is_(None)
                )
            )
            == 0
        )
        ids = dict(conn.execute(select(SUBSCRIBERS.c.email, SUBSCRIBERS.c.id)).all())
        issue = conn.execute(select(Issue.__table__).where(Issue.slug == slug)).one()
    assert issue.status == "sent" and issue.sent_at is not None
    for msg in outbox_messages(small.outbox_dir):
        to = parseaddr(str(msg["To"]))[1]
        # The List-Unsubscribe URL is this recipient's own: its token names them.
        url = str(msg["List-Unsubscribe"]).split(",")[0].strip("<> ")
        token = url.rsplit("/", 1)[1]
        assert read_token(small, Purpose.UNSUBSCRIBE, token) == ids[to]
        assert msg["List-Id"] == small.effective_list_id
        assert str(msg["List-Unsubscribe"]).endswith(
            f"<mailto:{small.contact_address}?subject=unsubscribe>"
        )
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # No DIGESTMAIL_REPLY_TO set: replies still reach the contact address.
        assert parseaddr(str(msg["Reply-To"]))[1] == small.contact_address
        assert parseaddr(str(msg["From"]))[1] == parseaddr(small.from_)[1]
        assert str(msg["Message-ID"]).startswith("<")
        assert not str(msg["Subject"]).startswith("[TEST]")
        body = msg.get_body(("plain",))
        assert body is not None and token in body.get_content()
        html_part = msg.get_body(("html",))
        assert html_part is not None and f"/unsubscribe/{token}" in html_part.get_content()


def test_audience_is_taken_at_start_and_leavers_are_skipped(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 30)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    add_subscribers(database, 1, prefix="before-start")  # active when it starts: included

    def during_first_batch(n: int, _: Sequence[Recipient]) -> None:
        if n == 1:
            with database.engine.begin() as conn:
                conn.execute(
                    update(SUBSCRIBERS)
                    .where(SUBSCRIBERS.c.email.in_(["user25@example.com", "user26@example.com"]))
                    .values(status="unsubscribed")
                )
                conn.execute(
                    update(SUBSCRIBERS)
                    .where(SUBSCRIBERS.c.email == "user27@example.com")
                    .values(status="complained")
                )
            add_subscribers(database, 1, prefix="late")  # joined after the start: not included

    run_campaign(database, small, cid, transport=HookedOutbox(small, during_first_batch))

    counts = outbox_counts(small.outbox_dir)
    assert "late0@example.com" not in counts
    assert counts["before-start0@example.com"] == 1
    for gone in ("user25@example.com", "user26@example.com", "user27@example.com"):
        assert gone not in counts
    assert _states(database, cid) == {
        "pending": 0,
        "claimed": 0,
        "accepted": 28,
        "rejected": 0,
        "skipped": 3,
    }


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_pause_and_cancel_take_effect_within_one_batch(
    database: Database, small: Settings, action: str
) -> None:
    add_subscribers(database, 50)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)

    def stop_during_second(n: int, _: Sequence[Recipient]) -> None:
        if n == 2:
            getattr(campaigns, f"{action}_campaign")(database, cid)

    info = run_campaign(database, small, cid, transport=HookedOutbox(small, stop_during_second))

    # The batch in flight when staff pressed the button still completes; no more.
    assert info.status == ("paused" if action == "pause" else "cancelled")
    assert info.counts["accepted"] == 20 and info.counts["pending"] == 30
    assert info.lease_owner is None
    if action == "cancel":
        with pytest.raises(CampaignError, match="cancelled"):
            run_campaign(database, small, cid, resume=True)
        return
    # A paused campaign does not start again by itself (the scheduler's call)…
    with pytest.raises(CampaignError, match="paused"):
        run_campaign(database, small, cid)
    # …only when staff resume it; it continues where it stopped.
    info = run_campaign(database, small, cid, resume=True)
    assert info.status == "sent" and info.counts["accepted"] == 50 and info.resent == 0
    assert set(outbox_counts(small.outbox_dir).values()) == {1}


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

    with pytest.raises(LeaseHeld, match="dead-host:1"):
        run_campaign(database, small, cid, resume=True)

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


class FailingOutbox(HookedOutbox):
    """Raises the given errors, one per call, before delivering normally."""

    def __init__(self, settings: Settings, errors: list[TransportError], at: int = 2) -> None:
        super().__init__(settings)
        self.errors = errors
        self.at = at

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        if self.calls + 1 >= self.at and self.errors:
            self.calls += 1
            raise self.errors.pop(0)
        return super().send_batch(template, recipients)


def test_permanent_transport_error_fails_the_campaign_and_releases_the_batch(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 30)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    refusal = TransportError("SendGrid refused the API key (401 Unauthorized)", permanent=True)

    with pytest.raises(TransportError):
        run_campaign(database, small, cid, transport=FailingOutbox(small, [refusal]))

    info = campaigns.campaign_info(database, cid)
    assert info.status == "failed" and info.error == str(refusal)
    assert info.counts["accepted"] == 10 and info.counts["pending"] == 20
    assert info.counts["claimed"] == 0 and info.lease_owner is None
    info = run_campaign(database, small, cid, resume=True)  # after the key is fixed
    assert info.status == "sent" and info.error is None and info.resent == 0
    assert set(outbox_counts(small.outbox_dir).values()) == {1}
    assert len(outbox_counts(small.outbox_dir)) == 30


def test_temporary_errors_are_retried_with_backoff(database: Database, small: Settings) -> None:
    add_subscribers(database, 20)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    waits: list[float] = []
    errors = [
        TransportError("503 Service Unavailable", permanent=False),
        TransportError("429 Too Many Requests", permanent=False, retry_after=7),
    ]

    info = run_campaign(
        database,
        small,
        cid,
        transport=FailingOutbox(small, errors),
        retry_delays=(1, 2, 4),
        sleep=waits.append,
    )

    assert info.status == "sent" and info.counts["accepted"] == 20
    # 1 s, then 7 s (the provider's Retry-After wins when longer), slept in short steps.
    assert sum(waits) == 8 and max(waits) <= campaigns.WAIT_STEP


def test_persistent_temporary_errors_pause_with_a_clear_message(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 20)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    errors = [TransportError("503 Service Unavailable", permanent=False) for _ in range(3)]

    with pytest.raises(TransportError):
        run_campaign(
            database,
            small,
            cid,
            transport=FailingOutbox(small, errors),
            retry_delays=(0, 0),
            sleep=lambda _: None,
        )

    info = campaigns.campaign_info(database, cid)
    assert info.status == "paused"
    assert info.error is not None and "kept failing (3 tries): 503" in info.error
    assert info.counts["pending"] == 10 and info.counts["claimed"] == 0


class RejectingOutbox(OutboxTransport):
    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        bad = [r for r in recipients if r.email.startswith("user1")]
        result = super().send_batch(template, [r for r in recipients if r not in bad])
        result.rejected = [Rejected(r.email, "550 mailbox unavailable", True) for r in bad]
        return result


def test_rejected_recipients_are_recorded_with_the_reason(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 15)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)

    info = run_campaign(database, small, cid, transport=RejectingOutbox(small))

    assert info.status == "sent"
    assert info.counts["rejected"] == 6 and info.counts["accepted"] == 9  # user1, user10..14
    with database.engine.connect() as conn:
        errors = set(
            conn.scalars(select(D.c.error).where(D.c.campaign_id == cid, D.c.state == "rejected"))
        )
    assert errors == {"550 mailbox unavailable"}


def test_send_rate_caps_messages_per_second(database: Database, small: Settings) -> None:
    add_subscribers(database, 30)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    rated = small.model_copy(update={"send_rate": 20.0, "batch_size": 1000})
    sizes: list[int] = []

    started = time.monotonic()
    run_campaign(
        database, rated, cid, transport=HookedOutbox(rated, lambda _, r: sizes.append(len(r)))
    )
    elapsed = time.monotonic() - started

    assert sizes == [20, 10]  # one second's worth per batch
    assert elapsed >= 0.45  # 20 go at once (the burst), the next 10 wait half a second


def test_token_bucket_never_exceeds_the_rate() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(50):
        bucket.take(30)
    # 1,500 messages at 100/s with a 100-message burst: at least 14 seconds.
    assert now[0] == pytest.approx(14.0)
    assert TokenBucket(0, clock=lambda: 0.0, sleep=sleep).take(10**6) == 0.0


def test_test_send_goes_only_to_the_given_addresses(database: Database, small: Settings) -> None:
    add_subscribers(database, 5)
    slug = store_issue(database, small)

    result = campaigns.send_test(database, small, slug, ["user3@example.com", "editor@example.org"])

    assert sorted(a.email for a in result.accepted) == ["editor@example.org", "user3@example.com"]
    msgs = {parseaddr(str(m["To"]))[1]: m for m in outbox_messages(small.outbox_dir)}
    assert set(msgs) == {"user3@example.com", "editor@example.org"}
    assert all(str(m["Subject"]).startswith("[TEST] ") for m in msgs.values())
    # A subscriber gets their real unsubscribe link; a stranger the mailto: only.
    assert "/unsubscribe/" in str(msgs["user3@example.com"]["List-Unsubscribe"])
    assert "/unsubscribe/" not in str(msgs["editor@example.org"]["List-Unsubscribe"])
    assert campaigns.list_campaigns(database) == []
    with database.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(D)) == 0
        assert conn.scalar(select(Issue.__table__.c.status)) == "draft"


def test_list_and_status_report_counts_and_times(database: Database, small: Settings) -> None:
    add_subscribers(database, 12)
    slug = store_issue(database, small)
    first = campaigns.create_campaign(database, small, slug)
    run_campaign(database, small, first)
    second = campaigns.create_campaign(database, small, slug, again=True)

    listed = campaigns.list_campaigns(database)
    assert [i.id for i in listed] == [second, first]
    data = listed[1].to_json()
    assert data["issue"] == slug and data["status"] == "sent"
    assert data["counts"] == {
        "pending": 0,
        "claimed": 0,
        "accepted": 12,
        "rejected": 0,
        "skipped": 0,
    }
    assert data["started_at"] and data["finished_at"] and data["sender"] is None
    assert listed[0].to_json()["started_at"] is None and listed[0].total == 0
    with pytest.raises(campaigns.CampaignNotFound):
        campaigns.campaign_info(database, 999)


def test_through_fake_sendgrid_retries_429_and_fails_plainly_on_401(
    sqlite_url: str, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    add_subscribers(db, 25)
    with FakeSendGrid(api_key="SG.right") as fake:
        good = Settings(
            transport="sendgrid",
            sendgrid_api_key="SG.right",
            sendgrid_api_host=fake.url,
            batch_size=10,
        )
        slug = store_issue(db, good)
        fake.fail_next(429, retry_after=0)
        info = run_campaign(db, good, campaigns.create_campaign(db, good, slug))
        assert info.status == "sent" and info.counts["accepted"] == 25
        assert fake.statuses[0] == 429 and info.resent == 0
        sent = fake.personalizations()
        assert sorted(p["to"][0]["email"] for p in sent) == sorted(
            f"user{i}@example.com" for i in range(25)
        )
        assert {p["custom_args"]["campaign_id"] for p in sent} == {str(info.id)}

        bad = good.model_copy(update={"sendgrid_api_key": SecretStr("SG.wrong")})
        cid = campaigns.create_campaign(db, bad, slug, again=True)
        with pytest.raises(TransportError):
            run_campaign(db, bad, cid)
        failed = campaigns.campaign_info(db, cid)
    assert failed.status == "failed" and failed.counts["pending"] == 25
    assert failed.error is not None and "authorization grant is invalid" in failed.error
    assert "SG.wrong" not in failed.error
    db.dispose()


# --- temporary failures, uncertain outcomes, prompt pause ------------------------------


def _smtp(settings: Settings, sink: SMTPSink) -> tuple[Settings, SMTPTransport]:
    smtp = settings.model_copy(update={"transport": "smtp", "smtp_url": SecretStr(sink.url())})
    # No retries inside the transport: every temporary failure reaches the campaign.
    return smtp, SMTPTransport(smtp, retry_delays=())


def _rows(db: Database, cid: int) -> dict[str, Row[Any]]:
    with db.engine.connect() as conn:
        return {
            r.email: r
            for r in conn.execute(
                select(D.c.email, D.c.state, D.c.attempts, D.c.temp_failures, D.c.error).where(
                    D.c.campaign_id == cid
                )
            )
        }


def test_temporary_failures_are_retried_after_the_others_then_given_up(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 25)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    with SMTPSink() as sink:
        smtp, tx = _smtp(small, sink)
        sink.temp_fail("user3@example.com", times=2)  # greylisted twice, then accepted
        sink.temp_fail("user7@example.com", times=100)  # never gets through
        sink.reject("user9@example.com")  # 550: no second try
        try:
            info = run_campaign(
                database, smtp, cid, transport=tx, recipient_retry_delays=(0.1,) * 3
            )
        finally:
            tx.close()
        order = [m.rcpt_tos[0] for m in sink.messages]

    assert info.status == "sent"
    assert info.counts["accepted"] == 23 and info.counts["rejected"] == 2
    assert info.retrying == 0 and info.rejected_after_retries == 1
    assert info.resent == 0  # a 4xx delivered nothing: nobody got it twice
    assert info.to_json()["rejected_after_retries"] == 1
    rows = _rows(database, cid)
    assert rows["user3@example.com"].state == "accepted"
    assert (rows["user3@example.com"].attempts, rows["user3@example.com"].temp_failures) == (3, 2)
    gave_up = rows["user7@example.com"]
    assert gave_up.state == "rejected" and gave_up.attempts == 4
    assert gave_up.error.startswith("temporary failure, gave up after 4 tries: 451")
    assert rows["user9@example.com"].error.startswith("550")
    assert rows["user9@example.com"].attempts == 1
    assert sink.temp_failures == 2 + 4
    # The retries went after everyone not yet tried; each delivered message once.
    assert order[-1] == "user3@example.com" and len(order) == len(set(order)) == 23


def test_a_pause_while_retries_wait_keeps_them_for_resume(
    database: Database, small: Settings
) -> None:
    from typer.testing import CliRunner

    from digestmail.cli import app

    add_subscribers(database, 15)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    steps: list[float] = []

    def staff_pause(seconds: float) -> None:
        steps.append(seconds)
        if len(steps) == 1:
            campaigns.pause_campaign(database, cid)

    with SMTPSink() as sink:
        smtp, tx = _smtp(small, sink)
        sink.temp_fail("user4@example.com", times=1)
        try:
            info = run_campaign(
                database, smtp, cid, transport=tx, recipient_retry_delays=(600,), sleep=staff_pause
            )
            assert steps == [campaigns.WAIT_STEP]  # stopped within one step of the wait
            assert info.status == "paused" and info.lease_owner is None
            assert info.counts["accepted"] == 14 and info.counts["pending"] == 1
            assert info.retrying == 1 and info.to_json()["retrying"] == 1
            error = _rows(database, cid)["user4@example.com"].error
            assert error.startswith("temporary failure (try 1 of 2): 451")
            out = " ".join(CliRunner().invoke(app, ["campaign", "status", str(cid)]).output.split())
            assert "1 recipients failed temporarily and wait for another try" in out
            assert f"campaign resume {cid}" in out

            info = run_campaign(
                database, smtp, cid, resume=True, transport=tx, recipient_retry_delays=(0,)
            )
        finally:
            tx.close()
        received = [m.rcpt_tos[0] for m in sink.messages]
    assert info.status == "sent" and info.counts["accepted"] == 15 and info.retrying == 0
    assert received.count("user4@example.com") == 1 and info.resent == 0


def test_sendgrid_timeout_is_not_reposted_and_pauses_with_the_batch_in_flight(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url)
    add_subscribers(db, 25)
    with FakeSendGrid(api_key="SG.right") as fake:
        settings = Settings(
            transport="sendgrid",
            sendgrid_api_key="SG.right",
            sendgrid_api_host=fake.url,
            sendgrid_timeout=0.3,
            batch_size=10,
        )
        slug = store_issue(db, settings)
        cid = campaigns.create_campaign(db, settings, slug)
        fake.stall_next(0.8)  # SendGrid takes the first batch but answers too late

        with pytest.raises(TransportError) as raised:
            run_campaign(db, settings, cid, retry_delays=(0, 0), sleep=lambda _: None)

        assert raised.value.uncertain
        assert fake.calls == 1  # not posted again by itself
        info = campaigns.campaign_info(db, cid)
        assert info.status == "paused" and info.lease_owner is None
        assert info.counts["claimed"] == 10 and info.counts["pending"] == 15
        assert info.in_flight_unknown == 10
        assert info.error is not None
        assert "10 recipients (batch 1) may or may not have received" in info.error
        assert f"digestmail campaign resume {cid}" in info.error
        time.sleep(0.6)  # let the stalled answer go

        info = run_campaign(db, settings, cid, resume=True)
        sent = [p["to"][0]["email"] for p in fake.personalizations()]
    assert info.status == "sent" and info.counts["accepted"] == 25
    assert info.resent == 10  # `campaign status` names them: they may have it twice
    twice = {e for e in sent if sent.count(e) == 2}
    assert twice == {f"user{i}@example.com" for i in range(10)} and len(sent) == 35
    db.dispose()


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_pause_and_cancel_take_effect_during_a_retry_wait(
    database: Database, small: Settings, action: str
) -> None:
    add_subscribers(database, 30)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    steps: list[float] = []

    def staff_acts(seconds: float) -> None:
        steps.append(seconds)
        if len(steps) == 2:
            getattr(campaigns, f"{action}_campaign")(database, cid)

    busy = TransportError("503 Service Unavailable", permanent=False, retry_after=120)
    info = run_campaign(
        database, small, cid, transport=FailingOutbox(small, [busy]), sleep=staff_acts
    )

    assert steps == [campaigns.WAIT_STEP] * 2  # a two-minute wait ended a step after the click
    assert info.status == ("paused" if action == "pause" else "cancelled")
    assert info.counts["accepted"] == 10 and info.counts["pending"] == 20
    assert info.counts["claimed"] == 0 and info.lease_owner is None and info.resent == 0


def test_a_long_retry_after_pauses_the_campaign_naming_the_wait(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 30)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    steps: list[float] = []
    slow_down = TransportError("SendGrid answered 429", permanent=False, retry_after=3600)

    with pytest.raises(TransportError):
        run_campaign(
            database, small, cid, transport=FailingOutbox(small, [slow_down]), sleep=steps.append
        )

    info = campaigns.campaign_info(database, cid)
    assert steps == []
    assert info.status == "paused" and info.lease_owner is None
    assert info.error is not None and "asked to wait 3600 s (Retry-After" in info.error
    assert info.counts["pending"] == 20 and info.counts["claimed"] == 0
    info = run_campaign(database, small, cid, resume=True)
    assert info.status == "sent" and info.resent == 0


def test_an_unwritable_outbox_fails_the_campaign_cleanly(
    database: Database, small: Settings, tmp_path: Path
) -> None:
    add_subscribers(database, 15)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the outbox should be")
    broken = small.model_copy(update={"outbox_dir": blocked})

    with pytest.raises(TransportError, match="cannot write to the outbox folder"):
        run_campaign(database, broken, cid)

    info = campaigns.campaign_info(database, cid)
    assert info.status == "failed" and info.lease_owner is None
    assert info.error is not None and str(blocked) in info.error and "exists" in info.error
    assert info.counts["claimed"] == 0 and info.counts["pending"] == 15
    info = run_campaign(database, small, cid, resume=True)  # once the folder is fixed
    assert info.status == "sent" and info.resent == 0


# --- one campaign per issue at a time ---------------------------------------------------


def test_two_sends_racing_create_one_campaign(database: Database, small: Settings) -> None:
    slug = store_issue(database, small)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def send() -> None:
        db = Database(database.url)  # its own engine, as another `send` process would have
        try:
            barrier.wait()
            campaigns.create_campaign(db, small, slug)
            outcomes.append("created")
        except campaigns.CampaignExists as exc:
            outcomes.append(str(exc))
        finally:
            db.dispose()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    (cid,) = [i.id for i in campaigns.list_campaigns(database)]
    assert sorted(outcomes) == [
        f"Campaign {cid} of {slug} is scheduled: continue it with "
        f"`digestmail campaign resume {cid}`, or cancel it with "
        f"`digestmail campaign cancel {cid}` before starting another.",
        "created",
    ]


def test_again_only_after_earlier_campaigns_finished(database: Database, small: Settings) -> None:
    add_subscribers(database, 3)
    slug = store_issue(database, small)
    first = campaigns.create_campaign(database, small, slug)
    with pytest.raises(campaigns.CampaignExists, match="is scheduled"):
        campaigns.create_campaign(database, small, slug, again=True)
    campaigns.pause_campaign(database, first)
    with pytest.raises(campaigns.CampaignExists, match="is paused"):
        campaigns.create_campaign(database, small, slug, again=True)
    run_campaign(database, small, first, resume=True)
    with pytest.raises(campaigns.CampaignExists, match="already sent"):
        campaigns.create_campaign(database, small, slug)
    second = campaigns.create_campaign(database, small, slug, again=True)
    campaigns.cancel_campaign(database, second)
    assert campaigns.create_campaign(database, small, slug, again=True) > second
