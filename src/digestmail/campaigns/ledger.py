"""The ledger: one ``Delivery`` row per campaign and recipient, and every move of a row.

Written in one INSERT … SELECT when the campaign starts (the audience at that moment),
then handed over batch by batch. A batch is claimed before the transport sees it, by
one ``DeliveryBatch`` row that holds its recipients (``campaigns.batches`` says which
rows it holds); the answer then moves each row to ``accepted`` or ``rejected``, or
leaves it ``pending`` for another try, and closes the batch. Claiming before sending is
what makes a crash harmless: after a SIGKILL the only rows whose fate is unknown are
those of open batches, and the next sender sends exactly those again (at-least-once for
the batches in flight, never a skip). With ``DIGESTMAIL_SEND_CONCURRENCY`` batches in
flight at once, that is at most concurrency × batch size rows: ``recover`` takes them
all back.

Every method works on the caller's connection and leaves the transaction to it, so
the send loop records a batch that came back and claims the next one in one
transaction, under the lease it renews in the same one. Bulk Core statements only: a
first try costs a read and one inserted row to claim, and one update over its id range
to record (plus a statement per kind of failure), whatever the batch's size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from digestmail import events
from digestmail.campaigns.batches import B, holds
from digestmail.campaigns.info import counts
from digestmail.campaigns.tables import C, D, I, S
from digestmail.config import Settings
from digestmail.models import (
    BatchOutcome,
    CampaignStatus,
    DeliveryState,
    IssueStatus,
    SubscriberStatus,
    utcnow,
)
from digestmail.transports.base import BatchResult, Recipient

log = logging.getLogger(__name__)

TEMPORARY = "temporary failure"
SKIPPED_ERROR = "no longer subscribed when its turn came"
NO_ANSWER = "the transport gave no answer for it"
_ERROR_MAX = 2000

# (delivery id, subscriber id, email, name) -> the recipient with its placeholder values
Personalise = Callable[[int, int | None, str, str | None], Recipient]


@dataclass(frozen=True)
class Batch:
    """Recipients claimed together, handed to the transport in one call."""

    number: int
    recipients: list[Recipient]
    # Temporary failures each row had before this try (delivery id -> count).
    temp_failures: dict[int, int] = field(default_factory=dict)
    # Which rows it holds (``batches.holds``): its kind and the ids it spans.
    retry: bool = False
    first_id: int = 0
    last_id: int = 0

    def holds(self) -> ColumnElement[bool]:
        return holds(retry=self.retry, number=self.number, first=self.first_id, last=self.last_id)


@dataclass(frozen=True)
class Claim:
    """What one claim found: a batch, or the seconds until a retry is due, or nobody."""

    batch: Batch | None = None
    retry_in: float | None = None
    skipped: int = 0  # rows found no longer subscribed, marked skipped on the way
    retried: int = 0  # rows taken off the retry queue (the skipped among them too)


@dataclass(frozen=True)
class Recorded:
    accepted: int = 0
    rejected: int = 0
    deferred: int = 0  # back to pending after a temporary failure


class Ledger:
    def __init__(
        self,
        campaign_id: int,
        *,
        settings: Settings,
        batch_size: int,
        recipient_retry_delays: Sequence[float],
    ) -> None:
        self.campaign_id = campaign_id
        self.settings = settings
        self.batch_size = batch_size
        self.retry_delays = tuple(recipient_retry_delays)
        self.max_tries = len(self.retry_delays) + 1
        self.next_batch = 1
        # The statements every claim runs, built once: building one and computing its
        # cache key costs SQLAlchemy about 0.1 ms, a tenth of a µs per recipient a
        # statement at a thousand a batch (``bench/recipients.py``).
        self._open = select(B.c.number, B.c.retry, B.c.first_id, B.c.last_id).where(
            B.c.campaign_id == campaign_id, B.c.closed_at.is_(None)
        )
        self._next_firsts = self._pending_query(
            and_(D.c.temp_failures == 0, D.c.id > bindparam("after"))
        )
        self._new_batch = insert(B)

    # -- when a sender starts --

    def snapshot(self, conn: Connection, now: datetime) -> int:
        """Every active subscriber now, in one INSERT … SELECT; the campaign has started.

        Returns how many rows it wrote: the whole ledger, every row ``pending`` and
        never tried, so nothing needs reading back (counting them, or the batches
        numbered so far, would read every row again); the first batch is number 1.
        """
        written = conn.execute(
            insert(D).from_select(
                ["campaign_id", "subscriber_id", "email", "state", "attempts", "updated_at"],
                select(
                    literal(self.campaign_id),
                    S.c.id,
                    S.c.email,
                    literal(DeliveryState.PENDING.value),
                    literal(0),
                    literal(now, type_=D.c.updated_at.type),
                )
                .where(S.c.status == SubscriberStatus.ACTIVE)
                .order_by(S.c.id),
            ),
            # Kept for an INSERT too (SQLAlchemy keeps it for UPDATE and DELETE only).
            execution_options={"preserve_rowcount": True},
        ).rowcount
        conn.execute(update(C).where(C.c.id == self.campaign_id).values(started_at=now))
        self.next_batch = 1
        return int(written)

    def recover(self, conn: Connection, now: datetime) -> int:
        """Send again the rows of batches a previous sender left open; how many.

        Only a lease holder claims, and the caller holds the lease now: an open batch
        was in flight when the previous sender stopped (up to concurrency of them). Its
        rows count the try (it may have delivered) and its number stays used.
        """
        open_ = self._open_batches(conn)
        recovered = 0
        for number, retry, first, last in open_:
            recovered += conn.execute(
                update(D)
                .where(
                    D.c.campaign_id == self.campaign_id,
                    holds(retry=bool(retry), number=number, first=first, last=last),
                )
                .values(attempts=D.c.attempts + 1, batch=number, updated_at=now)
            ).rowcount
        if open_:
            self._close(conn, [n for n, *_ in open_], BatchOutcome.ABANDONED, now)
        return recovered

    def _open_batches(self, conn: Connection) -> Sequence[Any]:
        """(number, retry, first id, last id) of every batch still in flight."""
        return conn.execute(self._open).all()

    def _close(
        self, conn: Connection, numbers: Sequence[int], outcome: BatchOutcome, now: datetime
    ) -> None:
        conn.execute(
            update(B)
            .where(B.c.campaign_id == self.campaign_id, B.c.number.in_(numbers))
            .values(closed_at=now, outcome=outcome)
        )

    def continue_numbering(self, conn: Connection) -> None:
        """Batches keep counting up across senders, so a batch number names one hand-over
        (a sender that continues a campaign; the one that snapshots it starts at 1)."""
        last = conn.scalar(select(func.max(B.c.number)).where(B.c.campaign_id == self.campaign_id))
        # Batches handed over before there were batch rows are numbered on their rows only.
        older = conn.scalar(select(func.max(D.c.batch)).where(D.c.campaign_id == self.campaign_id))
        self.next_batch = max(int(last or 0), int(older or 0)) + 1

    def counts(self, conn: Connection) -> dict[str, int]:
        return counts(conn, [self.campaign_id])[self.campaign_id]

    def retrying(self, conn: Connection) -> int:
        """Rows waiting for another try after a temporary failure."""
        n = conn.scalar(
            select(func.count()).where(
                D.c.campaign_id == self.campaign_id,
                D.c.state == DeliveryState.PENDING,
                D.c.temp_failures > 0,
            )
        )
        return int(n or 0)

    # -- the hot path --

    def _pending_query(self, which: ColumnElement[bool]) -> Select[Any]:
        """The next batch of pending rows that ``which`` admits, in id order, each with
        what its claim needs: (delivery id, subscriber id, email, temporary failures,
        name, whether still subscribed)."""
        # Compared in SQL: a number or a bool from the driver (null when the subscriber
        # was deleted), not a string made per row to compare.
        subscribed = (S.c.status == SubscriberStatus.ACTIVE).label("subscribed")
        return (
            select(D.c.id, D.c.subscriber_id, D.c.email, D.c.temp_failures, S.c.name, subscribed)
            .select_from(D.outerjoin(S, S.c.id == D.c.subscriber_id))
            .where(D.c.campaign_id == self.campaign_id, D.c.state == DeliveryState.PENDING, which)
            .order_by(D.c.id)
            .limit(self.batch_size)
        )

    def _pending(self, conn: Connection, which: ColumnElement[bool]) -> Sequence[Any]:
        return _fetch(conn, self._pending_query(which))

    def _retry_delay(self, temp_failures: int) -> float:
        delays = self.retry_delays
        return delays[min(temp_failures, len(delays)) - 1] if delays else 0.0

    def _retry_due(self, now: datetime) -> ColumnElement[bool]:
        """Rows whose wait after their last temporary failure is over."""
        delays = self.retry_delays
        if not delays:
            return D.c.temp_failures > 0
        due = [
            and_(D.c.temp_failures == k, D.c.updated_at <= now - timedelta(seconds=d))
            for k, d in enumerate(delays, 1)
        ]
        due.append(
            and_(
                D.c.temp_failures > len(delays),
                D.c.updated_at <= now - timedelta(seconds=delays[-1]),
            )
        )
        return or_(*due)

    def _in_flight(self, conn: Connection) -> tuple[list[tuple[int, int]], list[int]]:
        """The open batches, read in the claim's transaction: the id ranges of first
        tries, and the numbers of retries."""
        firsts: list[tuple[int, int]] = []
        retries: list[int] = []
        for number, retry, first, last in self._open_batches(conn):
            if retry:
                retries.append(number)
            else:
                firsts.append((first, last))
        return firsts, retries

    @staticmethod
    def _not_retrying(retries: Sequence[int]) -> ColumnElement[bool]:
        """Rows waiting for a retry, less those of retries in flight (first tries in
        flight have no failure, so are never among them)."""
        if not retries:
            return literal(True)
        return or_(D.c.batch.is_(None), D.c.batch.not_in(retries))

    def _next_retry(self, conn: Connection, now: datetime, retries: Sequence[int]) -> float | None:
        """Seconds until the next temporary failure is due for a try; None if there is none."""
        rows = conn.execute(
            select(D.c.temp_failures, func.min(D.c.updated_at))
            .where(
                D.c.campaign_id == self.campaign_id,
                D.c.state == DeliveryState.PENDING,
                D.c.temp_failures > 0,
                self._not_retrying(retries),
            )
            .group_by(D.c.temp_failures)
        ).all()
        if not rows:
            return None
        due: datetime = min(last + timedelta(seconds=self._retry_delay(k)) for k, last in rows)
        return max(0.05, (due - now).total_seconds())

    def claim(self, conn: Connection, personalise: Personalise) -> Claim:
        """Claim the next batch of still-active recipients; the others become ``skipped``.

        Recipients not yet tried go first, in id order; those that failed temporarily
        come after them, each once its wait is over. When only waiting retries are left
        (or are in flight), the claim says how long until the next is due; when nobody
        is left, it is empty.
        """
        now = utcnow()
        skipped = retried = 0
        firsts, retries = self._in_flight(conn)
        # First tries go in id order, so the rows after the last range in flight are
        # the next ones; rows left below it (a batch put back) are found once nothing
        # after it is, with each range in flight left out.
        top = max((last for _, last in firsts), default=0)

        def first_tries(after: int) -> Sequence[Any]:
            if after >= top:  # above every range in flight: the statement built once
                return _fetch(conn, self._next_firsts, {"after": after})
            outside = [~D.c.id.between(first, last) for first, last in firsts]
            return self._pending(conn, and_(D.c.temp_failures == 0, D.c.id > after, *outside))

        after = top
        while True:
            retry = False
            rows = first_tries(after)
            if not rows and after:
                after = 0
                rows = first_tries(after)
            if rows:
                after = rows[-1][0]
            else:
                retry = True
                due = and_(D.c.temp_failures > 0, self._retry_due(now), self._not_retrying(retries))
                rows = self._pending(conn, due)
                if not rows:
                    wait = self._next_retry(conn, now, retries)
                    return Claim(retry_in=wait, skipped=skipped, retried=retried)
                retried += len(rows)
            gone = [did for did, _, _, _, _, subscribed in rows if not subscribed]
            if gone:
                conn.execute(
                    update(D)
                    .where(D.c.id.in_(gone))
                    .values(state=DeliveryState.SKIPPED, error=SKIPPED_ERROR, updated_at=now)
                )
                skipped += len(gone)
            live = [row for row in rows if row[5]] if gone else rows
            if not live:
                continue
            number = self.next_batch
            self.next_batch += 1
            first, last = live[0][0], live[-1][0]
            # A first try holds every untried pending row of its range (those read, the
            # skipped ones gone): one row written. A retry marks its rows.
            if retry:
                conn.execute(
                    update(D).where(D.c.id.in_([row[0] for row in live])).values(batch=number)
                )
            conn.execute(
                self._new_batch,
                {
                    "campaign_id": self.campaign_id,
                    "number": number,
                    "retry": retry,
                    "first_id": first,
                    "last_id": last,
                    "claimed_at": now,
                },
            )
            recipients = [
                personalise(did, sid, email, name) for did, sid, email, _, name, _ in live
            ]
            failures = {did: int(tf) for did, _, _, tf, _, _ in live if tf} if retry else {}
            batch = Batch(number, recipients, failures, retry, first, last)
            return Claim(batch, skipped=skipped, retried=retried)

    def record(self, conn: Connection, batch: Batch, result: BatchResult) -> Recorded:
        """The transport's answer, in a few bulk statements: one per kind of answer (a
        first try's accepted rows by their range, a retry's by id), then the batch closed.

        A temporary failure puts the row back to ``pending`` (its error kept, the failure
        counted) for a later try; only a permanent one, or the last try, is ``rejected``.
        Recipients the receiving server refused for good (``Rejected.bounced``) are
        bounces: one call of the event policy for the whole batch makes them ``bounced``,
        in this same transaction.
        """
        now = utcnow()
        by_email = {r.email: r.delivery_id for r in batch.recipients}
        answered: set[int] = set()
        rejected: list[dict[str, Any]] = []
        deferred: list[dict[str, Any]] = []
        refusals: list[events.Refusal] = []

        def temporary(did: int, error: str) -> None:
            failures = batch.temp_failures.get(did, 0) + 1
            if failures >= self.max_tries:
                text = f"{TEMPORARY}, gave up after {failures} tries: {error}"
                rejected.append({"b_id": did, "b_error": text[:_ERROR_MAX], "b_tf": failures})
            else:
                text = f"{TEMPORARY} (try {failures} of {self.max_tries}): {error}"
                deferred.append({"b_id": did, "b_error": text[:_ERROR_MAX], "b_tf": failures})

        for rej in result.rejected:
            did = by_email.get(rej.email)
            if did is not None and did not in answered:
                answered.add(did)
                if rej.permanent and rej.bounced:
                    refusals.append(events.Refusal(did, rej.email, rej.error))
                if rej.permanent:
                    rejected.append(
                        {
                            "b_id": did,
                            "b_error": rej.error[:_ERROR_MAX],
                            "b_tf": batch.temp_failures.get(did, 0),
                        }
                    )
                else:
                    temporary(did, rej.error)
        accepted: list[tuple[int, str | None]] = []
        for acc in result.accepted:
            did = by_email.get(acc.email)
            if did is not None and did not in answered:
                answered.add(did)
                accepted.append((did, acc.message_id))
        for r in batch.recipients:
            if r.delivery_id is not None and r.delivery_id not in answered:
                temporary(r.delivery_id, NO_ANSWER)
        # Every row answered counts the try and names its batch.
        tried = {"attempts": D.c.attempts + 1, "batch": batch.number, "updated_at": now}
        for rows, state in ((rejected, DeliveryState.REJECTED), (deferred, DeliveryState.PENDING)):
            if rows:
                conn.execute(
                    update(D)
                    .where(D.c.id == bindparam("b_id"))
                    .values(
                        state=state,
                        error=bindparam("b_error"),
                        temp_failures=bindparam("b_tf"),
                        **tried,
                    ),
                    rows,
                )
        message_ids = {mid for _, mid in accepted}
        if batch.retry:
            # A retry's rows deferred again still carry its number: the accepted ones go
            # by id (retries are few).
            if accepted:
                conn.execute(
                    update(D)
                    .where(D.c.id == bindparam("b_id"))
                    .values(
                        state=DeliveryState.ACCEPTED,
                        provider_message_id=bindparam("b_mid"),
                        **tried,
                    ),
                    [{"b_id": did, "b_mid": mid} for did, mid in accepted],
                )
        elif len(message_ids) == 1:
            # One provider id for the whole request (SendGrid): one statement. The rows the
            # batch still holds are the accepted ones (the others have just moved or
            # counted a failure), so no list of a thousand ids is needed.
            conn.execute(
                update(D)
                .where(D.c.campaign_id == self.campaign_id, batch.holds())
                .values(
                    state=DeliveryState.ACCEPTED, provider_message_id=message_ids.pop(), **tried
                )
            )
        elif accepted:
            # A provider id per message (SMTP): those go row by row, and nothing else
            # does; a value in every row's parameters is converted once per row, so the
            # rest is one statement over the batch (the rows it still holds are these).
            conn.execute(
                update(D)
                .where(D.c.id == bindparam("b_id"))
                .values(provider_message_id=bindparam("b_mid")),
                [{"b_id": did, "b_mid": mid} for did, mid in accepted],
            )
            conn.execute(
                update(D)
                .where(D.c.campaign_id == self.campaign_id, batch.holds())
                .values(state=DeliveryState.ACCEPTED, **tried)
            )
        self._close(conn, [batch.number], BatchOutcome.RECORDED, now)
        events.record_refusals(conn, self.settings, self.campaign_id, batch.number, refusals)
        return Recorded(len(accepted), len(rejected), len(deferred))

    def put_back(self, conn: Connection, batch: Batch) -> None:
        """Nothing of the batch was sent (the transport refused it whole): its rows are
        pending as before, the try not counted."""
        self._close(conn, [batch.number], BatchOutcome.PUT_BACK, utcnow())

    def finish(self, conn: Connection, issue_id: int) -> None:
        """Nobody is left: the campaign is sent, and so is its issue."""
        now = utcnow()
        conn.execute(
            update(C)
            .where(C.c.id == self.campaign_id)
            .values(
                status=CampaignStatus.SENT,
                finished_at=now,
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        conn.execute(
            update(I)
            .where(I.c.id == issue_id)
            .values(status=IssueStatus.SENT, sent_at=func.coalesce(I.c.sent_at, now))
        )


def _fetch(
    conn: Connection, query: Select[Any], params: dict[str, Any] | None = None
) -> Sequence[Any]:
    """Every row of ``query`` as the driver's plain tuple, for the claim's read of a
    thousand rows: making each a SQLAlchemy ``Row`` and unpacking that cost a tenth of
    a recipient's claim. Only for columns that need no conversion from what the driver
    returns (integers and strings here)."""
    result = conn.execute(query, params)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()
