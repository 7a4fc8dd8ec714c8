"""The ledger: one ``Delivery`` row per campaign and recipient, and every move of a row.

Written in one INSERT … SELECT when the campaign starts (the audience at that moment),
then moved batch by batch: ``pending`` → ``claimed`` (before the transport sees it) →
``accepted`` or ``rejected`` (after it answered), or back to ``pending`` for another
try. Claiming before sending is what makes a crash harmless: after a SIGKILL the only
rows whose fate is unknown are the ones still ``claimed``, and the next sender sends
exactly those again (at-least-once for the batches in flight, never a skip). With
``DIGESTMAIL_SEND_CONCURRENCY`` batches in flight at once, that is at most concurrency
× batch size rows, from as many batches: ``recover`` takes them all back.

Every method works on the caller's connection and leaves the transaction to it, so
the send loop records a batch that came back and claims the next one in one
transaction, under the lease it renews in the same one. Bulk Core statements only: the
hot path costs a handful of statements per batch, whatever its size.
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
    String,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
    update,
)

from digestmail import events
from digestmail.campaigns.info import counts
from digestmail.campaigns.tables import C, D, I, S
from digestmail.config import Settings
from digestmail.models import CampaignStatus, DeliveryState, IssueStatus, SubscriberStatus, utcnow
from digestmail.transports.base import BatchResult, Recipient

log = logging.getLogger(__name__)

TEMPORARY = "temporary failure"
SKIPPED_ERROR = "no longer subscribed when its turn came"
NO_ANSWER = "the transport gave no answer for it"
_ERROR_MAX = 2000

# (subscriber id, email, name) -> placeholder values
Personalise = Callable[[int | None, str, str | None], dict[str, str]]


@dataclass(frozen=True)
class Batch:
    """Recipients claimed together, handed to the transport in one call."""

    number: int
    recipients: list[Recipient]
    # Temporary failures each row had before this try (delivery id -> count).
    temp_failures: dict[int, int] = field(default_factory=dict)


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

    # -- when a sender starts --

    def snapshot(self, conn: Connection, now: datetime) -> None:
        """Every active subscriber now, in one INSERT … SELECT; the campaign has started."""
        conn.execute(
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
            )
        )
        conn.execute(update(C).where(C.c.id == self.campaign_id).values(started_at=now))

    def recover(self, conn: Connection, now: datetime) -> int:
        """Put rows a previous sender left ``claimed`` back to be sent again; how many.

        Only a lease holder claims rows, and the caller holds the lease now: anything
        still claimed was in flight when the previous sender stopped (up to
        concurrency × batch size rows, from several batches).
        """
        return int(
            conn.execute(
                update(D)
                .where(D.c.campaign_id == self.campaign_id, D.c.state == DeliveryState.CLAIMED)
                .values(state=DeliveryState.PENDING, updated_at=now)
            ).rowcount
        )

    def continue_numbering(self, conn: Connection) -> None:
        """Batches keep counting up across senders, so a batch number names one hand-over."""
        last = conn.scalar(select(func.max(D.c.batch)).where(D.c.campaign_id == self.campaign_id))
        self.next_batch = int(last or 0) + 1

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

    def _pending(self, conn: Connection, which: ColumnElement[bool]) -> Sequence[Any]:
        # The status as the plain string it is stored as: no enum conversion per row.
        status = type_coerce(S.c.status, String).label("status")
        return conn.execute(
            select(D.c.id, D.c.subscriber_id, D.c.email, D.c.temp_failures, S.c.name, status)
            .select_from(D.outerjoin(S, S.c.id == D.c.subscriber_id))
            .where(D.c.campaign_id == self.campaign_id, D.c.state == DeliveryState.PENDING, which)
            .order_by(D.c.id)
            .limit(self.batch_size)
        ).all()

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

    def _next_retry(self, conn: Connection, now: datetime) -> float | None:
        """Seconds until the next temporary failure is due for a try; None if there is none."""
        rows = conn.execute(
            select(D.c.temp_failures, func.min(D.c.updated_at))
            .where(
                D.c.campaign_id == self.campaign_id,
                D.c.state == DeliveryState.PENDING,
                D.c.temp_failures > 0,
            )
            .group_by(D.c.temp_failures)
        ).all()
        if not rows:
            return None
        due: datetime = min(last + timedelta(seconds=self._retry_delay(k)) for k, last in rows)
        return max(0.05, (due - now).total_seconds())

    def claim(self, conn: Connection, personalise: Personalise) -> Claim:
        """Claim the next batch of still-active recipients; the others become ``skipped``.

        Recipients not yet tried go first; those that failed temporarily come after them,
        each once its wait is over. When only waiting retries are left, the claim says
        how long until the next is due; when nobody is left, it is empty.
        """
        now = utcnow()
        skipped = retried = 0
        active = SubscriberStatus.ACTIVE.value
        while True:
            which = D.c.temp_failures == 0
            rows = self._pending(conn, which)
            if not rows:
                which = and_(D.c.temp_failures > 0, self._retry_due(now))
                rows = self._pending(conn, which)
                if not rows:
                    wait = self._next_retry(conn, now)
                    return Claim(retry_in=wait, skipped=skipped, retried=retried)
                retried += len(rows)
            # Rows are unpacked, never read by attribute: a Row's attribute lookup costs
            # more than the rest of a recipient's claim.
            gone = [did for did, _, _, _, _, status in rows if status != active]
            if gone:
                conn.execute(
                    update(D)
                    .where(D.c.id.in_(gone))
                    .values(state=DeliveryState.SKIPPED, error=SKIPPED_ERROR, updated_at=now)
                )
                skipped += len(gone)
            live = [row for row in rows if row[5] == active] if gone else rows
            if not live:
                continue
            number = self.next_batch
            self.next_batch += 1
            # The rows just read are the first pending ones in id order that ``which``
            # selects, less those just skipped: so exactly the pending rows it selects up
            # to the last id read. One range instead of a thousand bound ids.
            conn.execute(
                update(D)
                .where(
                    D.c.campaign_id == self.campaign_id,
                    D.c.state == DeliveryState.PENDING,
                    which,
                    D.c.id.between(live[0][0], live[-1][0]),
                )
                .values(
                    state=DeliveryState.CLAIMED,
                    batch=number,
                    attempts=D.c.attempts + 1,
                    updated_at=now,
                )
            )
            recipients = [
                Recipient(email, personalise(sid, email, name), sid, did)
                for did, sid, email, _, name, _ in live
            ]
            failures = {did: int(tf) for did, _, _, tf, _, _ in live if tf}
            return Claim(Batch(number, recipients, failures), skipped=skipped, retried=retried)

    def record(self, conn: Connection, batch: Batch, result: BatchResult) -> Recorded:
        """The transport's answer, in at most four bulk statements.

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
        for rows, state in ((rejected, DeliveryState.REJECTED), (deferred, DeliveryState.PENDING)):
            if rows:
                conn.execute(
                    update(D)
                    .where(D.c.id == bindparam("b_id"))
                    .values(
                        state=state,
                        error=bindparam("b_error"),
                        temp_failures=bindparam("b_tf"),
                        updated_at=now,
                    ),
                    rows,
                )
        message_ids = {mid for _, mid in accepted}
        if len(message_ids) == 1:
            # One provider id for the whole request (SendGrid): one statement. The rows of
            # the batch still claimed are the accepted ones (the others have just moved),
            # so no list of a thousand ids is needed.
            conn.execute(
                update(D)
                .where(
                    D.c.campaign_id == self.campaign_id,
                    D.c.batch == batch.number,
                    D.c.state == DeliveryState.CLAIMED,
                )
                .values(
                    state=DeliveryState.ACCEPTED,
                    provider_message_id=message_ids.pop(),
                    updated_at=now,
                )
            )
        elif accepted:
            # A provider id per message (SMTP): those go row by row, and nothing else
            # does; a value in every row's parameters is converted once per row, so the
            # rest is one statement over the batch (the rows still claimed are these).
            conn.execute(
                update(D)
                .where(D.c.id == bindparam("b_id"))
                .values(provider_message_id=bindparam("b_mid")),
                [{"b_id": did, "b_mid": mid} for did, mid in accepted],
            )
            conn.execute(
                update(D)
                .where(
                    D.c.campaign_id == self.campaign_id,
                    D.c.batch == batch.number,
                    D.c.state == DeliveryState.CLAIMED,
                )
                .values(state=DeliveryState.ACCEPTED, updated_at=now)
            )
        events.record_refusals(conn, self.settings, self.campaign_id, batch.number, refusals)
        return Recorded(len(accepted), len(rejected), len(deferred))

    def put_back(self, conn: Connection, batch: Batch) -> None:
        """Nothing of the batch was sent (the transport refused it whole): back to pending,
        the try not counted."""
        conn.execute(
            update(D)
            .where(
                D.c.campaign_id == self.campaign_id,
                D.c.batch == batch.number,
                D.c.state == DeliveryState.CLAIMED,
            )
            .values(
                state=DeliveryState.PENDING,
                attempts=D.c.attempts - 1,
                updated_at=utcnow(),
            )
        )

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
