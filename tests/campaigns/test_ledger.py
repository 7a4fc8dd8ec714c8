"""The ledger's moves, on the caller's connection and inside the caller's transaction."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from digestmail import campaigns
from digestmail.campaigns.batches import B, in_flight_rows
from digestmail.campaigns.info import infos
from digestmail.campaigns.ledger import Ledger
from digestmail.campaigns.message import RecipientValues
from digestmail.campaigns.tables import C, D, S
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import utcnow
from digestmail.transports.base import Accepted, BatchResult, Rejected
from tests.campaign_helpers import add_subscribers, ledger_states, store_issue


def _started(database: Database, settings: Settings, n: int) -> tuple[int, Ledger]:
    add_subscribers(database, n)
    slug = store_issue(database, settings)
    cid = campaigns.create_campaign(database, settings, slug)
    ledger = Ledger(cid, settings=settings, batch_size=4, recipient_retry_delays=(60,))
    with database.engine.begin() as conn:
        ledger.snapshot(conn, utcnow())
    return cid, ledger


def test_recording_a_batch_and_claiming_the_next_are_one_transaction(
    database: Database, small: Settings
) -> None:
    cid, ledger = _started(database, small, 10)
    values = RecipientValues(small, "policy-digest-9-1")
    with database.engine.begin() as conn:
        first = ledger.claim(conn, values.recipient).batch
    assert first is not None and [r.email for r in first.recipients] == [
        f"user{i}@example.com" for i in range(4)
    ]
    answer = BatchResult(accepted=[Accepted(r.email, "m1") for r in first.recipients])

    class Crash(Exception):
        pass

    with pytest.raises(Crash), database.engine.begin() as conn:
        assert ledger.record(conn, first, answer).accepted == 4
        assert ledger.claim(conn, values.recipient).batch is not None
        raise Crash  # the process dies before the transaction commits

    # Neither happened: batch 1 is still the one in flight, and nobody else is claimed.
    assert ledger_states(database, cid) == {
        "pending": 6,
        "claimed": 4,
        "accepted": 0,
        "rejected": 0,
        "skipped": 0,
    }


def test_record_sorts_the_answer_into_accepted_rejected_and_retried(
    database: Database, small: Settings
) -> None:
    cid, ledger = _started(database, small, 4)
    values = RecipientValues(small, "policy-digest-9-1")
    with database.engine.begin() as conn:
        batch = ledger.claim(conn, values.recipient).batch
        assert batch is not None
        a, b, c, _silent = (r.email for r in batch.recipients)
        result = BatchResult(
            accepted=[Accepted(a, "m-a")],
            rejected=[Rejected(b, "550 no such user", True), Rejected(c, "451 later", False)],
        )
        recorded = ledger.record(conn, batch, result)
        # The fourth got no answer at all: a temporary failure too.
        assert (recorded.accepted, recorded.rejected, recorded.deferred) == (1, 1, 2)
        assert ledger.retrying(conn) == 2
        # Only retries are left, and they wait a minute: the claim says how long.
        wait = ledger.claim(conn, values.recipient)
        assert wait.batch is None and wait.retry_in is not None and 55 < wait.retry_in <= 60
        query = select(D.c.email, D.c.error).where(D.c.campaign_id == cid)
        errors = {row.email: row.error for row in conn.execute(query)}
    assert errors[b] == "550 no such user"
    assert errors[c] == "temporary failure (try 1 of 2): 451 later"


def test_a_batch_put_back_is_pending_again_with_its_try_not_counted(
    database: Database, small: Settings
) -> None:
    cid, ledger = _started(database, small, 6)
    values = RecipientValues(small, "policy-digest-9-1")
    with database.engine.begin() as conn:
        batch = ledger.claim(conn, values.recipient).batch
        assert batch is not None
        ledger.put_back(conn, batch)
        attempts = set(conn.scalars(select(D.c.attempts).where(D.c.campaign_id == cid)))
    assert attempts == {0} and ledger_states(database, cid)["pending"] == 6
    # A later sender numbers its batches after every batch ever handed over.
    with database.engine.begin() as conn:
        ledger.continue_numbering(conn)
    assert ledger.next_batch == 2


def test_a_permanent_smtp_refusal_bounces_the_subscriber_at_once(
    database: Database, small: Settings
) -> None:
    """A 550 at RCPT (aiosmtpd) makes the subscriber ``bounced`` with the refusal as the
    cause; a 4xx is not a bounce; the next campaign does not mail the bounced address.
    Every message goes out with its own VERP return path."""
    from pydantic import SecretStr

    from digestmail import bounces, subscribers
    from digestmail.campaigns import run_campaign
    from digestmail.models import ChangeCause, EventKind, SubscriberStatus
    from digestmail.transports.smtp import SMTPTransport
    from tests.fakes.smtp import SMTPSink

    add_subscribers(database, 12)
    slug = store_issue(database, small)
    with SMTPSink() as sink:
        smtp = small.model_copy(
            update={
                "transport": "smtp",
                "smtp_url": SecretStr(sink.url()),
                "bounce_address": "bounces@bounce.example.org",
            }
        )
        sink.reject("user4@example.com")
        sink.reject("user9@example.com")
        sink.temp_fail("user6@example.com", times=1)
        cid = campaigns.create_campaign(database, smtp, slug)
        tx = SMTPTransport(smtp, retry_delays=())
        try:
            run_campaign(database, smtp, cid, transport=tx, recipient_retry_delays=(0.05,))
            with database.session() as s:
                for email in ("user4@example.com", "user9@example.com"):
                    sub = subscribers.find(s, email)
                    assert sub is not None and sub.status is SubscriberStatus.BOUNCED
                    record = subscribers.record_of(s, smtp, email)
                    assert record is not None
                    change = record.changes[-1]
                    assert (change.cause, change.event_kind) == (
                        ChangeCause.EVENT,
                        EventKind.BOUNCED,
                    )
                    assert change.detail is not None and change.detail.startswith("550")
                    assert record.events[-1].source == "smtp"
                greylisted = subscribers.find(s, "user6@example.com")
                assert greylisted is not None and greylisted.status is SubscriberStatus.ACTIVE
            envelopes = {m.rcpt_tos[0]: m.mail_from for m in sink.messages}
            rows = {r.email: r.id for r in _deliveries(database, cid)}
            assert len(envelopes) == 10
            for email, mail_from in envelopes.items():
                assert mail_from.startswith("bounces+")
                assert bounces.delivery_of(smtp, mail_from) == rows[email]
            sink.messages.clear()
            again = campaigns.create_campaign(database, smtp, slug, again=True)
            run_campaign(database, smtp, again, transport=tx)
        finally:
            tx.close()
        assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(
            f"user{i}@example.com" for i in range(12) if i not in (4, 9)
        )


def _deliveries(database: Database, cid: int) -> list[Any]:
    with database.engine.connect() as conn:
        return list(conn.execute(select(D.c.email, D.c.id).where(D.c.campaign_id == cid)))


def _states(database: Database, cid: int) -> dict[str, tuple[str, int, int]]:
    """email -> (state, attempts, temp failures)."""
    with database.engine.connect() as conn:
        rows = conn.execute(
            select(D.c.email, D.c.state, D.c.attempts, D.c.temp_failures).where(
                D.c.campaign_id == cid
            )
        )
        return {r.email: (r.state, r.attempts, r.temp_failures) for r in rows}


def test_a_claim_writes_one_batch_row_and_leaves_batches_in_flight_alone(
    database: Database, small: Settings
) -> None:
    """Claimed rows stay pending, held by their batch's row; the next claims skip every
    batch in flight, including one put back below them, until nothing else is left."""
    cid, ledger = _started(database, small, 12)
    values = RecipientValues(small, "policy-digest-9-1")
    with database.engine.begin() as conn:
        one = ledger.claim(conn, values.recipient).batch
        two = ledger.claim(conn, values.recipient).batch
        assert one is not None and two is not None
        states = conn.execute(select(D.c.state).where(D.c.campaign_id == cid)).scalars().all()
        assert set(states) == {"pending"}
        flying = conn.execute(in_flight_rows([cid])).all()
        assert {(n, e) for _, n, _, e in flying} == {
            (b.number, r.email) for b in (one, two) for r in b.recipients
        }
        ledger.put_back(conn, one)
        three = ledger.claim(conn, values.recipient).batch
        assert three is not None
        # After the batch in flight first; the one put back comes when nothing else is.
        assert [r.email for r in three.recipients] == [
            f"user{i}@example.com" for i in (8, 9, 10, 11)
        ]
        again = ledger.claim(conn, values.recipient).batch
        assert again is not None
        assert [r.email for r in again.recipients] == [r.email for r in one.recipients]
        assert ledger.claim(conn, values.recipient).batch is None
    assert ledger_states(database, cid)["claimed"] == 12


def test_a_retry_accepts_only_what_was_accepted(database: Database, small: Settings) -> None:
    """A retry holds the rows marked with its number; rows it defers again keep the mark
    but are not taken for accepted ones, and a retry in flight is not claimed twice."""
    cid, _ = _started(database, small, 4)
    ledger = Ledger(cid, settings=small, batch_size=4, recipient_retry_delays=(0, 0, 0))
    values = RecipientValues(small, "policy-digest-9-1")
    with database.engine.begin() as conn:
        first = ledger.claim(conn, values.recipient).batch
        assert first is not None
        a, b, c, d = (r.email for r in first.recipients)
        ledger.record(conn, first, BatchResult(accepted=[Accepted(a, "m1")]))
        retry = ledger.claim(conn, values.recipient)
        assert retry.batch is not None and retry.retried == 3 and retry.batch.retry
        # In flight, the retry is not claimed again and is no reason to wait.
        assert ledger.claim(conn, values.recipient).batch is None
        # Staff see its rows in flight, not also waiting for their try.
        (info,) = infos(conn, C.c.id == cid)
        assert (info.counts["claimed"], info.retrying) == (3, 0)
        answer = BatchResult(accepted=[Accepted(b, "m2")], rejected=[Rejected(c, "550 gone", True)])
        recorded = ledger.record(conn, retry.batch, answer)
        (info,) = infos(conn, C.c.id == cid)
        assert (info.counts["claimed"], info.retrying) == (0, 1)
    assert (recorded.accepted, recorded.rejected, recorded.deferred) == (1, 1, 1)
    assert _states(database, cid) == {
        a: ("accepted", 1, 0),
        b: ("accepted", 2, 1),
        c: ("rejected", 2, 1),
        d: ("pending", 2, 2),
    }


def test_recover_sends_the_open_batches_again_and_counts_their_try(
    database: Database, small: Settings
) -> None:
    """A sender that died left two batches open: the next one finds their rows, counts
    the try they had (it may have delivered: a resend) and closes them as abandoned."""
    cid, ledger = _started(database, small, 10)
    values = RecipientValues(small, "policy-digest-9-1")
    with database.engine.begin() as conn:
        one = ledger.claim(conn, values.recipient).batch
        two = ledger.claim(conn, values.recipient).batch
        assert one is not None and two is not None
    heir = Ledger(cid, settings=small, batch_size=4, recipient_retry_delays=(60,))
    with database.engine.begin() as conn:
        assert heir.recover(conn, utcnow()) == 8
        heir.continue_numbering(conn)
        assert heir.next_batch == 3
        assert conn.execute(in_flight_rows([cid])).all() == []
        outcomes = conn.execute(select(B.c.number, B.c.outcome).where(B.c.campaign_id == cid))
        assert {n: o for n, o in outcomes} == {1: "abandoned", 2: "abandoned"}
        again = heir.claim(conn, values.recipient).batch
        assert again is not None and again.number == 3
        heir.record(
            conn, again, BatchResult(accepted=[Accepted(r.email, "m") for r in again.recipients])
        )
    assert [r.email for r in again.recipients] == [r.email for r in one.recipients]
    assert campaigns.campaign_info(database, cid).resent == 4


@pytest.mark.parametrize("left_below", ["put back", "retry due"])
def test_rows_in_flight_are_not_claimed_when_everyone_below_them_has_left(
    database: Database, small: Settings, left_below: str
) -> None:
    """Rows below the batches in flight (a batch put back, or a retry that is due) whose
    subscribers have all left are skipped, and the claim looks on past them: never into
    a range in flight, whose rows are pending and untried until their answer comes."""
    cid, ledger = _started(database, small, 12)
    values = RecipientValues(small, "policy-digest-9-1")
    if left_below == "retry due":
        ledger = Ledger(cid, settings=small, batch_size=4, recipient_retry_delays=(0,))
    with database.engine.begin() as conn:
        one, two, three = (ledger.claim(conn, values.recipient).batch for _ in range(3))
        assert one is not None and two is not None and three is not None
        if left_below == "put back":
            ledger.put_back(conn, one)
        else:
            ledger.record(conn, one, BatchResult())  # no answer: each failed temporarily
        leavers = [r.email for r in one.recipients]
        conn.execute(update(S).where(S.c.email.in_(leavers)).values(status="unsubscribed"))
        claim = ledger.claim(conn, values.recipient)
        # Nothing left to claim but what is in flight.
        assert claim.batch is None and claim.skipped == 4
    assert ledger_states(database, cid)["claimed"] == 8
