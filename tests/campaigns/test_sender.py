"""The send loop on real databases (SQLite and PostgreSQL) through real transports.

Where a test must act *while* a batch is in flight (pause, unsubscribe, a provider
failure), it wraps the outbox transport: the campaign code under test is never faked.
What each failure leads to (``HALTS``, ``next_step``) is also tested without a database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr
from sqlalchemy import Row, Table, func, select, update

from digestmail import campaigns, subscribers
from digestmail.campaigns import CampaignError, MessageNotBuilt, run_campaign
from digestmail.campaigns.batches import B, in_flight_rows
from digestmail.campaigns.ledger import Batch
from digestmail.campaigns.sender import HALTS, SendProgress, next_step, stop_facts
from digestmail.cli.send import stop_explained
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import Campaign, CampaignStatus, Delivery, Issue, StopReason
from digestmail.tokens import Purpose, read_token
from digestmail.transports.base import (
    BatchResult,
    Handover,
    MessageTemplate,
    Recipient,
    Rejected,
    TransportError,
)
from digestmail.transports.outbox import OutboxTransport
from digestmail.transports.smtp import SMTPTransport
from tests.campaign_helpers import (
    SUBSCRIBERS,
    FailingOutbox,
    HookedOutbox,
    add_subscribers,
    outbox_counts,
    outbox_messages,
    store_issue,
)
from tests.fakes.sendgrid import FakeSendGrid
from tests.fakes.smtp import SMTPSink

D = cast(Table, Delivery.__table__)
C = cast(Table, Campaign.__table__)
I = cast(Table, Issue.__table__)  # noqa: E741


def _states(db: Database, cid: int) -> dict[str, int]:
    return campaigns.campaign_info(db, cid).counts


def _no_command_named(info: campaigns.CampaignInfo) -> None:
    """The layers below the CLI state facts; the command to type is the CLI's to add."""
    assert "digestmail" not in (info.error or "") and "--again" not in (info.error or "")


# --- what each failure leads to, without a database ------------------------------------


def test_each_kind_of_transport_failure_maps_to_its_next_step() -> None:
    delays = (1.0, 2.0)
    temporary = TransportError("503", permanent=False)
    assert next_step(temporary, 0, delays, 300) == 1.0
    assert next_step(temporary, 1, delays, 300) == 2.0
    assert next_step(temporary, 2, delays, 300) is StopReason.KEPT_FAILING
    slow = TransportError("429", permanent=False, retry_after=7)
    assert next_step(slow, 0, delays, 300) == 7.0  # the provider's wait wins when longer
    too_slow = TransportError("429", permanent=False, retry_after=3600)
    assert next_step(too_slow, 0, delays, 300) is StopReason.WAIT_TOO_LONG
    assert next_step(too_slow, 2, delays, 300) is StopReason.KEPT_FAILING
    refused = TransportError("401", permanent=True)
    assert next_step(refused, 0, delays, 300) is StopReason.REFUSED
    # Uncertain wins over everything: a batch that may have arrived is never re-posted.
    timeout = TransportError("timeout", permanent=False, uncertain=True)
    assert next_step(timeout, 0, delays, 300) is StopReason.UNCERTAIN
    assert next_step(TransportError("x", permanent=True, uncertain=True), 0, (), 0) is (
        StopReason.UNCERTAIN
    )


def test_every_stop_reason_has_a_halt_and_only_unknown_fates_keep_the_batch_claimed() -> None:
    assert set(HALTS) == set(StopReason)
    kept = {reason for reason, halt in HALTS.items() if not halt.put_back}
    assert kept == {StopReason.UNCERTAIN, StopReason.INTERRUPTED, StopReason.UNEXPECTED}
    failed = {r for r, h in HALTS.items() if h.status is CampaignStatus.FAILED}
    assert failed == {StopReason.REFUSED, StopReason.UNBUILDABLE, StopReason.UNEXPECTED}
    over = (CampaignStatus.FAILED, CampaignStatus.CANCELLED)
    assert all(h.finished == (h.status in over) for h in HALTS.values())
    # Only an empty audience cancels: there was nobody to send to.
    assert {r for r, h in HALTS.items() if h.status is CampaignStatus.CANCELLED} == {
        StopReason.NO_AUDIENCE
    }
    # Nothing a sender stops is left sending (the scheduler would pick it up again).
    assert all(h.status is not CampaignStatus.SENDING for h in HALTS.values())
    # The other batches in flight are waited for and recorded, except when the operator
    # interrupts: then they stay claimed, like the one that was interrupted.
    assert {r for r, h in HALTS.items() if not h.drain} == {StopReason.INTERRUPTED}


def test_stop_facts_carry_what_each_reason_needs_to_be_explained() -> None:
    now = datetime(2025, 1, 17, 9, 0, tzinfo=UTC)
    batch = Batch(4, [Recipient("a@example.org"), Recipient("b@example.org")])
    other = Batch(2, [Recipient("c@example.org")])
    wait = TransportError("429", permanent=False, retry_after=3600)
    facts = stop_facts(
        StopReason.WAIT_TOO_LONG, wait, transport="sendgrid", in_doubt=[], tries=7, now=now
    )
    assert facts == {
        "transport": "sendgrid",
        "wait_seconds": 3600,
        "until": "2025-01-17T10:00:00+00:00",
    }
    timeout = TransportError("timeout", permanent=False, uncertain=True)
    assert stop_facts(
        StopReason.UNCERTAIN, timeout, transport="sendgrid", in_doubt=[batch], tries=7, now=now
    ) == {"transport": "sendgrid", "batches": [4], "recipients": 2}
    # Several batches in flight may time out together: all of them are named.
    assert stop_facts(
        StopReason.UNCERTAIN,
        timeout,
        transport="sendgrid",
        in_doubt=[batch, other],
        tries=7,
        now=now,
    ) == {"transport": "sendgrid", "batches": [2, 4], "recipients": 3}
    assert stop_facts(
        StopReason.KEPT_FAILING, None, transport="smtp", in_doubt=[], tries=3, now=now
    ) == {"transport": "smtp", "tries": 3}
    assert stop_facts(
        StopReason.UNEXPECTED, KeyError("x"), transport="smtp", in_doubt=[], tries=3, now=now
    ) == {"exception": "KeyError"}


# --- sending --------------------------------------------------------------------------


def test_every_active_subscriber_gets_one_personal_message(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 25)
    add_subscribers(database, 3, status="pending", prefix="pending")
    add_subscribers(database, 2, status="unsubscribed", prefix="gone")
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)

    info = run_campaign(database, small, cid)

    assert info.status is CampaignStatus.SENT and info.finished_at is not None
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
        issue = conn.execute(select(I).where(I.c.slug == slug)).one()
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
            with database.session() as session, session.begin():  # erased: no row left
                assert subscribers.erase(session, small, "user28@example.com")
            add_subscribers(database, 1, prefix="late")  # joined after the start: not included

    run_campaign(database, small, cid, transport=HookedOutbox(small, during_first_batch))

    counts = outbox_counts(small.outbox_dir)
    assert "late0@example.com" not in counts
    assert counts["before-start0@example.com"] == 1
    for gone in ("user25@example.com", "user26@example.com", "user27@example.com"):
        assert gone not in counts
    assert "user28@example.com" not in counts and "erased" not in counts
    assert _states(database, cid) == {
        "pending": 0,
        "claimed": 0,
        "accepted": 27,
        "rejected": 0,
        "skipped": 4,
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
    with pytest.raises(CampaignError, match="paused") as refused:
        run_campaign(database, small, cid)
    assert isinstance(refused.value, campaigns.WrongStatus) and refused.value.resumable
    # …only when staff resume it; it continues where it stopped.
    info = run_campaign(database, small, cid, resume=True)
    assert info.status == "sent" and info.counts["accepted"] == 50 and info.resent == 0
    assert set(outbox_counts(small.outbox_dir).values()) == {1}


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
    assert info.error_reason is StopReason.REFUSED and info.error_data == {"transport": "outbox"}
    assert info.counts["accepted"] == 10 and info.counts["pending"] == 20
    assert info.counts["claimed"] == 0 and info.lease_owner is None
    _no_command_named(info)
    info = run_campaign(database, small, cid, resume=True)  # after the key is fixed
    assert info.status == "sent" and info.error is None and info.resent == 0
    assert info.error_reason is None and info.error_data == {}
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
    assert info.error_reason is StopReason.KEPT_FAILING and info.error_data["tries"] == 3
    assert info.error == "503 Service Unavailable"
    assert "kept failing (3 tries): 503" in (stop_explained(info) or "")
    assert info.counts["pending"] == 10 and info.counts["claimed"] == 0
    _no_command_named(info)


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
            send_concurrency=1,
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
        assert info.error_reason is StopReason.UNCERTAIN
        assert info.error_data == {"transport": "sendgrid", "batches": [1], "recipients": 10}
        _no_command_named(info)
        said = stop_explained(info) or ""
        assert "10 recipients (batch 1) may or may not have received" in said
        assert f"digestmail campaign resume {cid}" in said
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
    assert info.error_reason is StopReason.WAIT_TOO_LONG
    assert info.error_data["wait_seconds"] == 3600 and info.error == "SendGrid answered 429"
    assert "asked to wait 3600 s (Retry-After" in (stop_explained(info) or "")
    assert info.counts["pending"] == 20 and info.counts["claimed"] == 0
    _no_command_named(info)
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


# --- errors that would only repeat never leave a campaign sending ----------------------


def _unsendable_subject(db: Database, slug: str) -> None:
    """An issue stored before ``issue check`` knew the limit: a subject past RFC 5322's.

    Only SQLite can hold it (PostgreSQL's column refuses it at ``issue add``).
    """
    with db.engine.begin() as conn:
        conn.execute(update(I).where(I.c.slug == slug).values(subject="Vol. 9.1: " + "x" * 995))


def test_a_message_that_cannot_be_built_fails_the_campaign_with_nobody_claimed(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 25)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    # A header no mail system takes (here the List-Id, which both backends can hold).
    unbuildable = small.model_copy(update={"list_id": "Digest <" + "d" * 1000 + ".example.org>"})

    with pytest.raises(MessageNotBuilt) as raised:
        run_campaign(database, unbuildable, cid)

    assert raised.value.campaign_id == cid and raised.value.slug == slug
    assert raised.value.reason == "the List-Id header is longer than 998 characters"
    info = campaigns.campaign_info(database, cid)
    assert info.status is CampaignStatus.FAILED and info.lease_owner is None
    assert info.error_reason is StopReason.UNBUILDABLE
    assert info.error == "the List-Id header is longer than 998 characters"
    assert info.counts["claimed"] == 0 and info.counts["pending"] == 25
    _no_command_named(info)
    assert not small.outbox_dir.exists() or not any(small.outbox_dir.iterdir())
    # A resume meets the same problem and says the same, without touching anyone…
    with pytest.raises(MessageNotBuilt):
        run_campaign(database, unbuildable, cid, resume=True)
    info = campaigns.campaign_info(database, cid)
    assert info.status is CampaignStatus.FAILED and info.counts["pending"] == 25
    # …and once it is fixed, the campaign goes out to everyone, once.
    info = run_campaign(database, small, cid, resume=True)
    assert info.status is CampaignStatus.SENT and info.resent == 0
    assert set(outbox_counts(small.outbox_dir).values()) == {1}


def test_a_campaign_left_sending_by_a_subject_too_long_is_failed_with_its_rows_put_back(
    sqlite_url: str,
) -> None:
    # The finding replayed: what the sender before this fix left behind is a campaign
    # sending, a batch claimed, nobody holding it.
    database = Database(sqlite_url)
    small = Settings(batch_size=10, sender_lease=5, send_concurrency=1)
    add_subscribers(database, 25)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    with pytest.raises(KeyboardInterrupt):
        run_campaign(database, small, cid, transport=FailingOutbox(small, [KeyboardInterrupt()]))
    _unsendable_subject(database, slug)
    with database.engine.begin() as conn:
        conn.execute(update(C).where(C.c.id == cid).values(status="sending"))
    assert campaigns.campaign_info(database, cid).counts["claimed"] == 10

    with pytest.raises(MessageNotBuilt, match="Subject header is longer than 998"):
        run_campaign(database, small, cid)  # the scheduler would pick it up like this

    info = campaigns.campaign_info(database, cid)
    assert info.status is CampaignStatus.FAILED and info.error_reason is StopReason.UNBUILDABLE
    assert info.counts["claimed"] == 0 and info.counts["pending"] == 15
    database.dispose()


def test_an_unexpected_error_fails_the_campaign_instead_of_leaving_it_sending(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 25)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    bug = KeyError("name")

    with pytest.raises(KeyError):
        run_campaign(database, small, cid, transport=FailingOutbox(small, [bug]))

    info = campaigns.campaign_info(database, cid)
    assert info.status is CampaignStatus.FAILED and info.lease_owner is None
    assert info.error_reason is StopReason.UNEXPECTED and info.error == "KeyError: 'name'"
    # What the batch reached is unknown: it stays in flight, and a resume sends it again.
    assert info.counts["accepted"] == 10 and info.in_flight_unknown == 10
    info = run_campaign(database, small, cid, resume=True)
    assert info.status is CampaignStatus.SENT and info.resent == 10


def test_an_interrupted_sender_pauses_the_campaign_with_the_batch_in_flight(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 25)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)

    with pytest.raises(KeyboardInterrupt):
        run_campaign(database, small, cid, transport=FailingOutbox(small, [KeyboardInterrupt()]))

    info = campaigns.campaign_info(database, cid)
    assert info.status is CampaignStatus.PAUSED and info.error_reason is StopReason.INTERRUPTED
    assert info.counts["claimed"] == 10 and info.in_flight_unknown == 10
    assert "interrupted by the operator" in (stop_explained(info) or "")


def test_each_run_reports_progress_from_the_ledger_as_it_found_it(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 25)
    add_subscribers(database, 2, status="unsubscribed", prefix="gone")
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    reports: list[SendProgress] = []

    def seen(progress: SendProgress) -> None:
        reports.append(replace(progress))

    with pytest.raises(KeyboardInterrupt):  # batch 1 sent, batch 2 left in flight
        run_campaign(
            database,
            small,
            cid,
            transport=FailingOutbox(small, [KeyboardInterrupt()]),
            on_progress=seen,
        )
    first = reports[0]  # before any batch: the audience just taken, nothing sent
    assert (first.total, first.done, first.recovered, first.retrying) == (25, 0, 0, 0)
    assert reports[-1].accepted == 10

    reports.clear()
    run_campaign(database, small, cid, resume=True, on_progress=seen)
    again = reports[0]  # the first run's batch counted, its batch in flight sent again
    assert (again.total, again.accepted, again.recovered, again.retrying) == (25, 10, 10, 0)
    assert (reports[-1].accepted, reports[-1].done) == (25, 25)


def test_nobody_left_at_the_start_cancels_the_campaign_and_leaves_the_issue_unsent(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 3)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    with database.engine.begin() as conn:  # everyone leaves before it starts
        conn.execute(update(SUBSCRIBERS).values(status="unsubscribed"))
    with pytest.raises(campaigns.EmptyAudience) as raised:
        run_campaign(database, small, cid)
    assert raised.value.campaign_id == cid and raised.value.slug == slug
    info = campaigns.campaign_info(database, cid)
    assert info.status is CampaignStatus.CANCELLED and info.error_reason is StopReason.NO_AUDIENCE
    assert info.lease_owner is None and info.total == 0
    with database.engine.connect() as conn:
        assert conn.scalar(select(I.c.status).where(I.c.slug == slug)) == "draft"
    assert "nothing was sent" in (stop_explained(info) or "")
    with pytest.raises(campaigns.EmptyAudience):
        campaigns.create_campaign(database, small, slug, again=True)


def test_a_sender_asked_to_stop_hands_the_campaign_on_after_its_batch(
    database: Database, small: Settings
) -> None:
    add_subscribers(database, 40)
    slug = store_issue(database, small)
    cid = campaigns.create_campaign(database, small, slug)
    stop = threading.Event()

    def stop_in_second_batch(n: int, _: Sequence[Recipient]) -> None:
        if n == 2:
            stop.set()

    info = run_campaign(
        database, small, cid, transport=HookedOutbox(small, stop_in_second_batch), stop=stop
    )
    # Batch 2 went and was recorded; then the lease was given up, the campaign still sending.
    assert info.status is CampaignStatus.SENDING and info.lease_owner is None
    assert info.counts["accepted"] == 20 and info.counts["claimed"] == 0
    info = run_campaign(database, small, cid)  # the next sender, without a resume
    assert info.status is CampaignStatus.SENT and info.resent == 0
    assert outbox_counts(small.outbox_dir) == {f"user{i}@example.com": 1 for i in range(40)}


# --- several batches in flight ---------------------------------------------------------


def _sendgrid_settings(fake: FakeSendGrid, **extra: Any) -> Settings:
    return Settings(
        transport="sendgrid",
        sendgrid_api_key="SG.right",
        sendgrid_api_host=fake.url,
        batch_size=10,
        send_concurrency=4,
        **extra,
    )


def test_batches_go_out_several_at_a_time_and_each_is_recorded(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    add_subscribers(db, 200)
    with FakeSendGrid(api_key="SG.right", latency=0.1) as fake:
        settings = _sendgrid_settings(fake)
        slug = store_issue(db, settings)
        start = time.monotonic()
        info = run_campaign(db, settings, campaigns.create_campaign(db, settings, slug))
        elapsed = time.monotonic() - start
        hits = sorted(fake.hits, key=lambda h: h.arrived)
        sent = [p["to"][0]["email"] for p in fake.personalizations()]
    assert info.status == "sent" and info.counts["accepted"] == 200 and info.resent == 0
    assert sorted(sent) == sorted(f"user{i}@example.com" for i in range(200))
    # Requests overlapped: some arrived while another was still waiting for its answer,
    # and never more than four at once.
    overlaps = [
        sum(1 for other in hits if other.arrived <= hit.arrived < other.answered) for hit in hits
    ]
    assert max(overlaps) > 1 and max(overlaps) <= 4
    assert elapsed < 20 * 0.1  # twenty requests of 0.1 s each, one after the other
    with db.engine.connect() as conn:
        ids = dict(conn.execute(select(D.c.email, D.c.provider_message_id)).all())
    assert set(ids.values()) == set(fake.message_ids)  # each batch recorded with its answer
    db.dispose()


def test_a_429_to_one_request_in_flight_holds_back_all_of_them(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    add_subscribers(db, 300)
    with FakeSendGrid(api_key="SG.right", latency=0.02) as fake:
        settings = _sendgrid_settings(fake)
        slug = store_issue(db, settings)
        cid = campaigns.create_campaign(db, settings, slug)
        fake.fail_next(429, retry_after=1)  # the first request to arrive is told to wait 1 s
        info = run_campaign(db, settings, cid)
        hits = sorted(fake.hits, key=lambda h: h.arrived)
    assert info.status == "sent" and info.counts["accepted"] == 300 and info.resent == 0
    told = next(h for h in hits if h.status == 429)
    during = [h for h in hits if told.answered < h.arrived < told.answered + 0.9]
    after = [h for h in hits if h.arrived >= told.answered + 0.9]
    # Only requests already on their way when the 429 came back may arrive during the
    # wait (at most one per other worker); every other waits it out, though four
    # workers at 20 ms a request would have sent some 150 meanwhile.
    assert len(during) <= 3, [round(h.arrived - told.answered, 3) for h in during]
    assert len(after) >= 20
    db.dispose()


def test_a_timeout_with_other_batches_in_flight_records_their_answers_and_pauses(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url)
    add_subscribers(db, 100)
    with FakeSendGrid(api_key="SG.right") as fake:
        # A timeout the other batches' answers cannot miss on a loaded machine.
        settings = _sendgrid_settings(fake, sendgrid_timeout=2.0)
        slug = store_issue(db, settings)
        cid = campaigns.create_campaign(db, settings, slug)
        fake.stall_next(3.0)  # SendGrid takes the first batch but answers too late

        with pytest.raises(TransportError) as raised:
            run_campaign(db, settings, cid, sleep=lambda _: None)

        assert raised.value.uncertain
        info = campaigns.campaign_info(db, cid)
        taken = fake.recipients
        time.sleep(1.2)  # let the stalled answer go
    assert info.status == "paused" and info.error_reason is StopReason.UNCERTAIN
    # Only the batch without an answer is left in doubt; every answered one is recorded.
    assert info.counts["claimed"] == 10 and info.in_flight_unknown == 10
    assert info.counts["accepted"] == taken - 10 and info.counts["accepted"] > 0
    assert info.counts["accepted"] + info.counts["pending"] == 90
    # The stalled request is whichever reached SendGrid first (the batches race there).
    [stalled] = info.error_data["batches"]
    assert info.error_data["recipients"] == 10
    with db.engine.connect() as conn:
        assert {n for _, n, _, _ in conn.execute(in_flight_rows([cid]))} == {stalled}
    db.dispose()


@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_pause_and_cancel_with_several_batches_in_flight(
    database: Database, parallel: Settings, action: str
) -> None:
    add_subscribers(database, 100)
    slug = store_issue(database, parallel)
    cid = campaigns.create_campaign(database, parallel, slug)

    claimed_when_stopped: list[int] = []

    def stop_during_second(n: int, _: Sequence[Recipient]) -> None:
        if n == 2:
            getattr(campaigns, f"{action}_campaign")(database, cid)
            with database.engine.connect() as conn:
                batches = select(func.count()).where(B.c.campaign_id == cid)
                claimed_when_stopped.append(conn.execute(batches).scalar_one())

    info = run_campaign(
        database, parallel, cid, transport=HookedOutbox(parallel, stop_during_second)
    )

    # The batches in flight when staff pressed the button are answered and recorded;
    # nothing is left claimed, and nothing is claimed after but for one claim whose
    # transaction had read the status just before (the batches race to the transport,
    # so the second one there may come after the fifth was claimed).
    assert info.status == ("paused" if action == "pause" else "cancelled")
    assert info.counts["claimed"] == 0 and info.lease_owner is None
    assert 20 <= info.counts["accepted"] <= 10 * (claimed_when_stopped[0] + 1)
    assert info.counts["accepted"] + info.counts["pending"] == 100
    assert set(outbox_counts(parallel.outbox_dir).values()) == {1}
    if action == "pause":
        info = run_campaign(database, parallel, cid, resume=True)
        assert info.status == "sent" and info.counts["accepted"] == 100 and info.resent == 0


def test_a_temporary_failure_holds_back_every_batch_until_the_wait_is_over(
    database: Database, parallel: Settings
) -> None:
    add_subscribers(database, 100)
    slug = store_issue(database, parallel)
    cid = campaigns.create_campaign(database, parallel, slug)
    slept: list[float] = []
    started_at: list[float] = []  # for each batch handed over: how long had been slept

    class Busy(FailingOutbox):
        def prepare(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> Handover:
            # Read as the sender hands the batch over (in its thread): a worker may start
            # it later, while the sender already sleeps. A retry goes out as it was
            # prepared, after the wait: it reads the time then.
            handed: list[float] = [sum(slept)]
            send = super().prepare(template, recipients)

            def handover() -> BatchResult:
                started_at.append(handed.pop() if handed else sum(slept))
                return send()

            return handover

    busy = TransportError("SendGrid answered 429", permanent=False, retry_after=5)
    info = run_campaign(
        database,
        parallel,
        cid,
        transport=Busy(parallel, [busy], at=3),
        sleep=slept.append,
    )

    assert info.status == "sent" and info.counts["accepted"] == 100 and info.resent == 0
    assert sum(slept) == 5 and max(slept) <= campaigns.WAIT_STEP
    # Batches already handed over when the failure came back went on; every batch after
    # it (the failed one again included) waited the whole 5 s.
    assert len(started_at) == 11 and set(started_at) == {0, 5}  # ten batches, one retry
    before = [s for s in started_at if s == 0]
    assert len(before) <= 3 + parallel.send_concurrency - 1
    assert set(outbox_counts(parallel.outbox_dir).values()) == {1}
