"""Campaigns: one issue to every active subscriber, exactly once, whatever happens.

The ledger (one ``Delivery`` row per campaign and subscriber) is written in one
statement when the campaign starts, from the audience at that moment. The sender then
loops: claim a batch in the database, hand it to the transport, record the answer.
Claiming before sending is what makes a crash harmless: after a SIGKILL the only rows
whose fate is unknown are the ones still ``claimed``, and a resumed sender sends
exactly those again (at-least-once for the batch in flight, never a skip).

A recipient the transport failed temporarily (a 4xx, a connection lost before its
turn) goes back to ``pending`` and is tried again after everyone not yet tried, a
bounded number of times with growing waits; only then is it ``rejected``. A batch
whose fate the transport cannot tell (a SendGrid timeout) is never re-posted by
itself: it stays ``claimed`` and the campaign pauses for staff to decide. Every wait
is slept in short steps that re-read the campaign, so pause and cancel are prompt.

A sender holds a lease on its campaign (an atomic conditional UPDATE) and renews it
between batches and from a heartbeat thread while the transport works; only the lease
holder writes ledger rows, so two processes can never send one campaign at once.

Nothing here knows about the command line: the CLI and the scheduler call the same
functions. The hot path uses bulk Core statements, one transaction per batch (recording
batch *k* and claiming batch *k+1* together), and never loads the audience whole.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from digestmail import render
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryState,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from digestmail.tokens import UnsubscribeLinks
from digestmail.transports import get_transport
from digestmail.transports.base import (
    BatchResult,
    MessageTemplate,
    Recipient,
    Transport,
    TransportError,
)

log = logging.getLogger(__name__)

C = cast(Table, Campaign.__table__)
D = cast(Table, Delivery.__table__)
S = cast(Table, Subscriber.__table__)
I = cast(Table, Issue.__table__)  # noqa: E741

# Waits between tries of a batch the transport failed temporarily (the provider's
# Retry-After wins when it asks for longer). After the last one the campaign pauses.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1, 2, 4, 8, 16, 32)

# Waits before each further try of one recipient that failed temporarily (a 4xx, a
# connection lost before its turn). Its retry comes after the recipients not yet tried;
# after the last one it is recorded as rejected. Greylisting asks for minutes.
DEFAULT_RECIPIENT_RETRY_DELAYS: tuple[float, ...] = (30, 120, 600)

# A provider asking for a longer pause than this (Retry-After) pauses the campaign
# rather than holding a lease and a terminal for that long.
MAX_RETRY_AFTER = 300.0

# Waits are slept in steps this long, re-reading the campaign's status in between, so
# pause and cancel take effect while a retry waits.
WAIT_STEP = 1.0

TEMPORARY = "temporary failure"

# Statuses a sender may pick a campaign up from; paused and failed only on an explicit
# resume (staff stopped it, or it needs a fix first).
_STARTABLE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)
_RESUMABLE = (*_STARTABLE, CampaignStatus.PAUSED, CampaignStatus.FAILED)


class CampaignError(Exception):
    """A campaign operation that cannot be done, in words staff can act on."""


class CampaignNotFound(CampaignError):
    pass


class IssueNotFound(CampaignError):
    pass


class LeaseHeld(CampaignError):
    """Another live process is sending this campaign."""


class LeaseLost(CampaignError):
    """Our lease expired and another sender took the campaign over."""


class CampaignExists(CampaignError):
    """The issue has an unfinished campaign, or was sent before (and ``again`` not given)."""


class _Stopped(Exception):
    """Staff paused or cancelled the campaign while the sender waited."""


class _WaitTooLong(Exception):
    """The provider asked for a longer pause than a sender should sit out."""

    def __init__(self, error: TransportError) -> None:
        super().__init__(str(error))
        self.error = error


# --- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignInfo:
    """What ``campaign list`` and ``campaign status`` show (also as JSON)."""

    id: int
    issue_slug: str
    status: str
    transport: str
    counts: dict[str, int]
    # Rows handed to the transport more than once: the batch in flight when a sender
    # died. These recipients may have received the issue twice.
    resent: int
    # Pending after a temporary failure, waiting for their next try.
    retrying: int
    # Rejected after one or more temporary failures (most: the tries ran out).
    rejected_after_retries: int
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def sender_alive(self) -> bool:
        return (
            self.lease_owner is not None
            and self.lease_expires_at is not None
            and self.lease_expires_at > utcnow()
        )

    @property
    def in_flight_unknown(self) -> int:
        """Rows claimed by a sender that is gone: they are sent again on resume."""
        return 0 if self.sender_alive else self.counts.get(DeliveryState.CLAIMED.value, 0)

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "issue": self.issue_slug,
            "status": self.status,
            "transport": self.transport,
            "total": self.total,
            "counts": self.counts,
            "resent": self.resent,
            "in_flight_unknown": self.in_flight_unknown,
            "retrying": self.retrying,
            "rejected_after_retries": self.rejected_after_retries,
            "created_at": iso(self.created_at),
            "scheduled_at": iso(self.scheduled_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "error": self.error,
            "sender": self.lease_owner if self.sender_alive else None,
        }


def _counts(conn: Connection, campaign_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    out = {cid: {s.value: 0 for s in DeliveryState} for cid in campaign_ids}
    if not campaign_ids:
        return out
    rows = conn.execute(
        select(D.c.campaign_id, D.c.state, func.count())
        .where(D.c.campaign_id.in_(campaign_ids))
        .group_by(D.c.campaign_id, D.c.state)
    )
    for cid, state, n in rows:
        out[cid][DeliveryState(state).value] = int(n)
    return out


def _resent(conn: Connection, campaign_ids: Sequence[int]) -> dict[int, int]:
    """Rows handed over again after a try that may have delivered (not a temporary failure)."""
    out = dict.fromkeys(campaign_ids, 0)
    if campaign_ids:
        rows = conn.execute(
            select(D.c.campaign_id, func.count())
            .where(D.c.campaign_id.in_(campaign_ids), D.c.attempts - D.c.temp_failures > 1)
            .group_by(D.c.campaign_id)
        )
        for cid, n in rows:
            out[cid] = int(n)
    return out


def _after_temporary(
    conn: Connection, campaign_ids: Sequence[int]
) -> dict[int, dict[DeliveryState, int]]:
    """Per campaign, rows that had a temporary failure, by their state now."""
    out: dict[int, dict[DeliveryState, int]] = {cid: {} for cid in campaign_ids}
    if campaign_ids:
        rows = conn.execute(
            select(D.c.campaign_id, D.c.state, func.count())
            .where(D.c.campaign_id.in_(campaign_ids), D.c.temp_failures > 0)
            .group_by(D.c.campaign_id, D.c.state)
        )
        for cid, state, n in rows:
            out[cid][DeliveryState(state)] = int(n)
    return out


def _infos(conn: Connection, where: Any, limit: int | None = None) -> list[CampaignInfo]:
    query = (
        select(C, I.c.slug)
        .select_from(C.join(I, I.c.id == C.c.issue_id))
        .where(where)
        .order_by(C.c.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).all()
    ids = [r.id for r in rows]
    counts = _counts(conn, ids)
    resent = _resent(conn, ids)
    temporary = _after_temporary(conn, ids)
    return [
        CampaignInfo(
            id=r.id,
            issue_slug=r.slug,
            status=CampaignStatus(r.status).value,
            transport=r.transport,
            counts=counts[r.id],
            resent=resent[r.id],
            retrying=temporary[r.id].get(DeliveryState.PENDING, 0),
            rejected_after_retries=temporary[r.id].get(DeliveryState.REJECTED, 0),
            created_at=r.created_at,
            scheduled_at=r.scheduled_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
            error=r.error,
            lease_owner=r.lease_owner,
            lease_expires_at=r.lease_expires_at,
        )
        for r in rows
    ]


def campaign_info(db: Database, campaign_id: int) -> CampaignInfo:
    with db.engine.connect() as conn:
        infos = _infos(conn, C.c.id == campaign_id)
    if not infos:
        raise CampaignNotFound(f"there is no campaign {campaign_id}")
    return infos[0]


def list_campaigns(db: Database, *, limit: int = 100) -> list[CampaignInfo]:
    """Newest first; test sends are not campaigns and never appear here."""
    with db.engine.connect() as conn:
        return _infos(conn, C.c.is_test.is_(False), limit)


def active_audience_size(db: Database) -> int:
    with db.engine.connect() as conn:
        n = conn.scalar(select(func.count()).where(S.c.status == SubscriberStatus.ACTIVE))
    return int(n or 0)


# --- staff actions -------------------------------------------------------------------


_UNFINISHED = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)


def _refuse_new_campaign(conn: Connection, issue_id: int, slug: str, *, again: bool) -> None:
    """Raise ``CampaignExists`` unless a new campaign of this issue may start now.

    Never while another is unfinished (two would send the issue twice to everyone);
    after an earlier one finished, or the issue was sent, only with ``again``.
    """
    prior = conn.execute(
        select(C.c.id, C.c.status, C.c.finished_at)
        .where(C.c.issue_id == issue_id, C.c.is_test.is_(False))
        .order_by(C.c.id.desc())
    ).all()
    for row in prior:
        status = CampaignStatus(row.status)
        if status in _UNFINISHED:
            raise CampaignExists(
                f"Campaign {row.id} of {slug} is {status.value}: continue it with "
                f"`digestmail campaign resume {row.id}`, or cancel it with "
                f"`digestmail campaign cancel {row.id}` before starting another."
            )
    if again:
        return
    if prior and CampaignStatus(prior[0].status) is CampaignStatus.FAILED:
        last = prior[0]
        raise CampaignExists(
            f"Campaign {last.id} of {slug} is failed: continue it with "
            f"`digestmail campaign resume {last.id}`, or pass --again to start another "
            "campaign to every active subscriber."
        )
    sent = conn.scalar(select(I.c.status).where(I.c.id == issue_id)) == IssueStatus.SENT
    if prior or sent:
        when = ""
        if prior:
            last = prior[0]
            finished = last.finished_at
            done = f", {finished:%Y-%m-%d %H:%M} UTC" if finished else ""
            when = f" (campaign {last.id}, {CampaignStatus(last.status).value}{done})"
        raise CampaignExists(
            f"{slug} was already sent{when}; pass --again to send it to every active "
            "subscriber once more."
        )


def check_new_campaign(db: Database, slug: str, *, again: bool = False) -> None:
    """``create_campaign``'s refusal ahead of time (before asking staff to confirm)."""
    with db.engine.connect() as conn:
        issue_id = conn.scalar(select(I.c.id).where(I.c.slug == slug))
        if issue_id is None:
            raise IssueNotFound(f"there is no issue {slug!r} (add it with `digestmail issue add`)")
        _refuse_new_campaign(conn, issue_id, slug, again=again)


def create_campaign(
    db: Database,
    settings: Settings,
    slug: str,
    *,
    scheduled_at: datetime | None = None,
    again: bool = False,
) -> int:
    """A campaign for the issue, status ``scheduled``; its audience is taken when it starts.

    Refused (``CampaignExists``) while another campaign of the issue is unfinished, and
    after one finished (or the issue was sent) unless ``again``. The check and the insert
    are one transaction holding the issue's row (PostgreSQL: ``FOR UPDATE``; SQLite: the
    engine's ``BEGIN IMMEDIATE`` serialises writers), so two ``send`` commands racing
    create one campaign, not two.
    """
    with db.engine.begin() as conn:
        issue_id = conn.scalar(select(I.c.id).where(I.c.slug == slug).with_for_update())
        if issue_id is None:
            raise IssueNotFound(f"there is no issue {slug!r} (add it with `digestmail issue add`)")
        _refuse_new_campaign(conn, issue_id, slug, again=again)
        result = conn.execute(
            insert(C).values(
                issue_id=issue_id,
                status=CampaignStatus.SCHEDULED,
                transport=settings.transport,
                is_test=False,
                scheduled_at=scheduled_at,
                created_at=utcnow(),
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        return int(pk[0])


def _set_status(
    db: Database,
    campaign_id: int,
    new: CampaignStatus,
    allowed: Iterable[CampaignStatus],
    **values: Any,
) -> None:
    with db.engine.begin() as conn:
        done = conn.execute(
            update(C)
            .where(C.c.id == campaign_id, C.c.status.in_(list(allowed)))
            .values(status=new, **values)
        ).rowcount
        if done != 1:
            status = conn.scalar(select(C.c.status).where(C.c.id == campaign_id))
            if status is None:
                raise CampaignNotFound(f"there is no campaign {campaign_id}")
            raise CampaignError(f"campaign {campaign_id} is {CampaignStatus(status).value}")


def pause_campaign(db: Database, campaign_id: int) -> None:
    """Ask the sender to stop after the batch it is sending; ``resume`` continues."""
    _set_status(
        db,
        campaign_id,
        CampaignStatus.PAUSED,
        (CampaignStatus.SCHEDULED, CampaignStatus.SENDING),
    )


def cancel_campaign(db: Database, campaign_id: int) -> None:
    """Stop for good after the batch in flight; rows never sent stay ``pending`` as a record."""
    _set_status(
        db,
        campaign_id,
        CampaignStatus.CANCELLED,
        (
            CampaignStatus.SCHEDULED,
            CampaignStatus.SENDING,
            CampaignStatus.PAUSED,
            CampaignStatus.FAILED,
        ),
        finished_at=utcnow(),
    )


# --- messages ------------------------------------------------------------------------


def message_template(
    settings: Settings, issue: Issue, campaign_id: int | None, *, is_test: bool = False
) -> MessageTemplate:
    """The per-issue half of every message; recipients only add placeholder values."""
    return MessageTemplate(
        subject=f"[TEST] {issue.subject}" if is_test else issue.subject,
        html=issue.html,
        text=issue.text,
        from_addr=settings.from_,
        reply_to=settings.effective_reply_to,
        headers={"List-Id": settings.effective_list_id},
        unsubscribe_mailto=f"mailto:{settings.contact_address}?subject=unsubscribe",
        campaign_id=campaign_id,
        categories=(issue.publication, issue.slug),
        is_test=is_test,
    )


class _RecipientValues:
    """Per-recipient placeholder values; everything per-issue is computed once."""

    def __init__(self, settings: Settings, slug: str) -> None:
        self.settings = settings
        self.webview = render.webview_url(settings, slug)
        self.links = UnsubscribeLinks(settings)
        self.mailto = f"mailto:{settings.contact_address}?subject=unsubscribe"

    def __call__(self, subscriber_id: int | None, email: str, name: str | None) -> dict[str, str]:
        unsubscribe = self.links(subscriber_id) if subscriber_id is not None else self.mailto
        return render.recipient_values(
            self.settings,
            name=name,
            email=email,
            unsubscribe_url=unsubscribe,
            webview_url=self.webview,
        )


def _load_issue(db: Database, slug: str) -> Issue:
    with db.session() as session:
        issue = session.scalar(select(Issue).where(Issue.slug == slug))
    if issue is None:
        raise IssueNotFound(f"there is no issue {slug!r} (add it with `digestmail issue add`)")
    return issue


def send_test(
    db: Database,
    settings: Settings,
    slug: str,
    addresses: Sequence[str],
    *,
    transport: Transport | None = None,
) -> BatchResult:
    """Send the issue to these addresses only, marked as a test; the list is not touched.

    An address on the list gets its own working unsubscribe link; any other address gets
    the mailto: link (there is no subscriber to unsubscribe).
    """
    issue = _load_issue(db, slug)
    keys = [a.strip().casefold() for a in addresses]
    with db.engine.connect() as conn:
        known = {
            r.email_key: (r.id, r.name)
            for r in conn.execute(
                select(S.c.id, S.c.name, S.c.email_key).where(S.c.email_key.in_(keys))
            )
        }
    values = _RecipientValues(settings, slug)
    recipients = []
    for address, key in zip(addresses, keys, strict=True):
        sid, name = known.get(key, (None, None))
        recipients.append(
            Recipient(address.strip(), values(sid, address.strip(), name), subscriber_id=sid)
        )
    template = message_template(settings, issue, None, is_test=True)
    own = transport is None
    tx = transport or get_transport(settings)
    try:
        return tx.send_batch(template, recipients)
    finally:
        if own:
            tx.close()


# --- sending -------------------------------------------------------------------------


class TokenBucket:
    """Caps the average send rate at ``rate`` messages per second, with a one-second burst.

    A batch takes its tokens up front and may go into debt; the next call waits the debt
    off. Over any long run the rate never exceeds ``rate``.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.last = clock()

    def take(self, n: int) -> float:
        """Wait until ``n`` messages may go; returns the seconds waited."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        waited = 0.0
        if self.tokens < n:
            waited = (n - self.tokens) / self.rate
            self.sleep(waited)
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
        self.tokens -= n
        return waited


@dataclass
class SendProgress:
    """Reported after each batch; counts are for the whole campaign."""

    campaign_id: int
    total: int
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    recovered: int = 0  # rows re-sent because a dead sender had them in flight
    retrying: int = 0  # waiting for another try after a temporary failure
    started: float = field(default_factory=time.monotonic)
    sent_this_run: int = 0

    @property
    def done(self) -> int:
        return self.accepted + self.rejected + self.skipped

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent_this_run / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class _Claimed:
    batch: int
    recipients: list[Recipient]
    # Temporary failures each row had before this try (delivery id -> count).
    temp_failures: dict[int, int] = field(default_factory=dict)


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Heartbeat(threading.Thread):
    """Renews the lease by time while the transport works or a retry waits."""

    def __init__(self, sender: _Sender) -> None:
        super().__init__(name=f"lease-{sender.campaign_id}", daemon=True)
        self.sender = sender
        self.stopping = threading.Event()
        self.lost = False

    def run(self) -> None:
        interval = max(0.5, self.sender.lease.total_seconds() / 3)
        while not self.stopping.wait(interval):
            try:
                with self.sender.db.engine.begin() as conn:
                    if not self.sender.renew(conn):
                        self.lost = True
                        return
            except Exception:  # a busy database must not kill the heartbeat
                log.warning("could not renew the lease on campaign %s", self.sender.campaign_id)


class _Sender:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        campaign_id: int,
        transport: Transport,
        *,
        owner: str,
        retry_delays: Sequence[float],
        recipient_retry_delays: Sequence[float],
        max_retry_after: float,
        on_progress: Callable[[SendProgress], None] | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.db = db
        self.settings = settings
        self.campaign_id = campaign_id
        self.transport = transport
        self.owner = owner
        self.lease = timedelta(seconds=settings.sender_lease)
        self.retry_delays = tuple(retry_delays)
        self.recipient_retry_delays = tuple(recipient_retry_delays)
        self.max_tries = len(self.recipient_retry_delays) + 1
        self.max_retry_after = max_retry_after
        self.on_progress = on_progress
        self.sleep = sleep
        size = min(settings.batch_size, transport.max_batch)
        if settings.send_rate > 0:
            # At most one second's worth per batch: smooth pacing, and pause stays quick.
            size = min(size, max(1, math.floor(settings.send_rate)))
        self.batch_size = size
        self.bucket = TokenBucket(settings.send_rate, sleep=sleep)
        self.next_batch = 1
        self.progress = SendProgress(campaign_id, total=0)

    # -- lease --

    def renew(self, conn: Connection) -> bool:
        done = conn.execute(
            update(C)
            .where(C.c.id == self.campaign_id, C.c.lease_owner == self.owner)
            .values(lease_expires_at=utcnow() + self.lease)
        ).rowcount
        return done == 1

    def acquire(self, allowed: Sequence[CampaignStatus]) -> tuple[str, int]:
        """Take the lease, atomically; snapshot the audience on first start.

        Returns the issue slug and how many in-flight rows of a dead sender were put back
        to be sent again.
        """
        now = utcnow()
        with self.db.engine.begin() as conn:
            got = conn.execute(
                update(C)
                .where(
                    C.c.id == self.campaign_id,
                    C.c.status.in_(list(allowed)),
                    or_(C.c.lease_owner.is_(None), C.c.lease_expires_at < now),
                )
                .values(
                    lease_owner=self.owner,
                    lease_expires_at=now + self.lease,
                    status=CampaignStatus.SENDING,
                    error=None,
                    finished_at=None,
                )
            ).rowcount
            row = conn.execute(
                select(C.c.status, C.c.lease_owner, C.c.lease_expires_at, C.c.started_at, I.c.slug)
                .select_from(C.join(I, I.c.id == C.c.issue_id))
                .where(C.c.id == self.campaign_id)
            ).one_or_none()
            if row is None:
                raise CampaignNotFound(f"there is no campaign {self.campaign_id}")
            if got != 1:
                status = CampaignStatus(row.status)
                if status not in allowed:
                    hint = (
                        " (use `digestmail campaign resume` to continue it)"
                        if status in _RESUMABLE
                        else ""
                    )
                    raise CampaignError(f"campaign {self.campaign_id} is {status.value}{hint}")
                raise LeaseHeld(
                    f"campaign {self.campaign_id} is being sent by {row.lease_owner} "
                    f"(lease until {row.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC); if that "
                    "process is dead, try again once the lease has expired"
                )
            recovered = 0
            if row.started_at is None:
                self._snapshot(conn, now)
            else:
                # Only a lease holder claims rows, and we hold the lease now: anything
                # still claimed was in flight when the previous sender died.
                recovered = conn.execute(
                    update(D)
                    .where(D.c.campaign_id == self.campaign_id, D.c.state == DeliveryState.CLAIMED)
                    .values(state=DeliveryState.PENDING, updated_at=now)
                ).rowcount
                if recovered:
                    log.warning(
                        "campaign %s: %d recipients were in flight when the last sender "
                        "stopped; sending to them again (some may receive it twice)",
                        self.campaign_id,
                        recovered,
                    )
            last = conn.scalar(
                select(func.max(D.c.batch)).where(D.c.campaign_id == self.campaign_id)
            )
            self.next_batch = int(last or 0) + 1
            return str(row.slug), recovered

    def _snapshot(self, conn: Connection, now: datetime) -> None:
        """The ledger: every active subscriber now, in one INSERT … SELECT."""
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

    def release(self, **values: Any) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                update(C)
                .where(C.c.id == self.campaign_id, C.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_expires_at=None, **values)
            )

    # -- the ledger in the hot path --

    def _pending(self, conn: Connection, which: ColumnElement[bool]) -> Sequence[Any]:
        return conn.execute(
            select(D.c.id, D.c.subscriber_id, D.c.email, D.c.temp_failures, S.c.name, S.c.status)
            .select_from(D.outerjoin(S, S.c.id == D.c.subscriber_id))
            .where(D.c.campaign_id == self.campaign_id, D.c.state == DeliveryState.PENDING, which)
            .order_by(D.c.id)
            .limit(self.batch_size)
        ).all()

    def _retry_delay(self, temp_failures: int) -> float:
        delays = self.recipient_retry_delays
        return delays[min(temp_failures, len(delays)) - 1] if delays else 0.0

    def _retry_due(self, now: datetime) -> ColumnElement[bool]:
        """Rows whose wait after their last temporary failure is over."""
        delays = self.recipient_retry_delays
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

    def _claim(self, conn: Connection, values: _RecipientValues) -> _Claimed | float | None:
        """Claim the next batch of still-active recipients; the others become ``skipped``.

        Recipients not yet tried go first; those that failed temporarily come after them,
        each once its wait is over. Returns the seconds until the next retry is due when
        only waiting retries are left, and None when nobody is left.
        """
        now = utcnow()
        while True:
            rows = self._pending(conn, D.c.temp_failures == 0)
            if not rows:
                rows = self._pending(conn, and_(D.c.temp_failures > 0, self._retry_due(now)))
                if not rows:
                    return self._next_retry(conn, now)
                self.progress.retrying -= len(rows)
            gone = [r.id for r in rows if r.status != SubscriberStatus.ACTIVE]
            if gone:
                conn.execute(
                    update(D)
                    .where(D.c.id.in_(gone))
                    .values(
                        state=DeliveryState.SKIPPED,
                        error="no longer subscribed when its turn came",
                        updated_at=now,
                    )
                )
                self.progress.skipped += len(gone)
            live = [r for r in rows if r.status == SubscriberStatus.ACTIVE]
            if not live:
                continue
            values.links.tick()
            batch = self.next_batch
            self.next_batch += 1
            conn.execute(
                update(D)
                .where(D.c.id.in_([r.id for r in live]))
                .values(
                    state=DeliveryState.CLAIMED,
                    batch=batch,
                    attempts=D.c.attempts + 1,
                    updated_at=now,
                )
            )
            recipients = [
                Recipient(
                    r.email,
                    values(r.subscriber_id, r.email, r.name),
                    subscriber_id=r.subscriber_id,
                    delivery_id=r.id,
                )
                for r in live
            ]
            failures = {r.id: int(r.temp_failures) for r in live if r.temp_failures}
            return _Claimed(batch, recipients, failures)

    def _record(self, conn: Connection, claimed: _Claimed, result: BatchResult) -> None:
        """The transport's answer, in at most four bulk statements.

        A temporary failure puts the row back to ``pending`` (its error kept, the failure
        counted) for a later try; only a permanent one, or the last try, is ``rejected``.
        """
        now = utcnow()
        by_email = {r.email: r.delivery_id for r in claimed.recipients}
        answered: set[int] = set()
        rejected: list[dict[str, Any]] = []
        deferred: list[dict[str, Any]] = []

        def temporary(did: int, error: str) -> None:
            failures = claimed.temp_failures.get(did, 0) + 1
            if failures >= self.max_tries:
                text = f"{TEMPORARY}, gave up after {failures} tries: {error}"
                rejected.append({"b_id": did, "b_error": text[:2000], "b_tf": failures})
            else:
                text = f"{TEMPORARY} (try {failures} of {self.max_tries}): {error}"
                deferred.append({"b_id": did, "b_error": text[:2000], "b_tf": failures})

        for rej in result.rejected:
            did = by_email.get(rej.email)
            if did is not None and did not in answered:
                answered.add(did)
                if rej.permanent:
                    rejected.append(
                        {
                            "b_id": did,
                            "b_error": rej.error[:2000],
                            "b_tf": claimed.temp_failures.get(did, 0),
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
        for r in claimed.recipients:
            if r.delivery_id is not None and r.delivery_id not in answered:
                temporary(r.delivery_id, "the transport gave no answer for it")
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
            # One provider id for the whole request (SendGrid): one statement.
            conn.execute(
                update(D)
                .where(D.c.id.in_([did for did, _ in accepted]))
                .values(
                    state=DeliveryState.ACCEPTED,
                    provider_message_id=message_ids.pop(),
                    updated_at=now,
                )
            )
        elif accepted:
            conn.execute(
                update(D)
                .where(D.c.id == bindparam("b_id"))
                .values(
                    state=DeliveryState.ACCEPTED,
                    provider_message_id=bindparam("b_mid"),
                    updated_at=now,
                ),
                [{"b_id": did, "b_mid": mid} for did, mid in accepted],
            )
        self.progress.accepted += len(accepted)
        self.progress.rejected += len(rejected)
        self.progress.retrying += len(deferred)
        if deferred:
            log.warning(
                "campaign %s batch %d: %d recipients failed temporarily; trying them again "
                "after the others",
                self.campaign_id,
                claimed.batch,
                len(deferred),
            )
        self.progress.sent_this_run += len(claimed.recipients)

    def _release_claimed(self, claimed: _Claimed) -> None:
        """The transport refused the whole batch, so nothing was sent: back to pending."""
        with self.db.engine.begin() as conn:
            if not self.renew(conn):
                raise LeaseLost(f"lost the lease on campaign {self.campaign_id}")
            conn.execute(
                update(D)
                .where(
                    D.c.campaign_id == self.campaign_id,
                    D.c.batch == claimed.batch,
                    D.c.state == DeliveryState.CLAIMED,
                )
                .values(
                    state=DeliveryState.PENDING,
                    attempts=D.c.attempts - 1,
                    updated_at=utcnow(),
                )
            )

    def _check_sending(self) -> None:
        """Renew the lease and raise ``_Stopped`` if staff paused or cancelled meanwhile."""
        with self.db.engine.begin() as conn:
            if not self.renew(conn):
                raise LeaseLost(f"lost the lease on campaign {self.campaign_id}")
            status = CampaignStatus(
                conn.execute(select(C.c.status).where(C.c.id == self.campaign_id)).scalar_one()
            )
        if status is not CampaignStatus.SENDING:
            raise _Stopped(status.value)

    def _wait(self, seconds: float) -> None:
        """Sleep in short steps, checking the campaign between them: a pause or cancel
        takes effect within a step, and the lease stays ours however long the wait."""
        left = seconds
        while True:
            self._check_sending()
            if left <= 0:
                return
            step = min(left, WAIT_STEP)
            self.sleep(step)
            left -= step

    def _send(self, template: MessageTemplate, claimed: _Claimed) -> BatchResult:
        delays = self.retry_delays
        for attempt in range(len(delays) + 1):
            try:
                return self.transport.send_batch(template, claimed.recipients)
            except TransportError as exc:
                # An uncertain outcome is never re-posted automatically: it may have
                # been delivered, and a retry could reach the whole batch twice.
                if exc.permanent or exc.uncertain or attempt == len(delays):
                    raise
                asked = exc.retry_after or 0.0
                if asked > self.max_retry_after:
                    raise _WaitTooLong(exc) from exc
                wait = max(delays[attempt], asked)
                log.warning(
                    "campaign %s batch %d: %s; trying again in %.0f s",
                    self.campaign_id,
                    claimed.batch,
                    exc,
                    wait,
                )
                self._wait(wait)
        raise AssertionError("unreachable")

    # -- the loop --

    def run(self, allowed: Sequence[CampaignStatus]) -> None:
        slug, recovered = self.acquire(allowed)
        heartbeat = _Heartbeat(self)
        heartbeat.start()
        try:
            self._loop(slug, recovered, heartbeat)
        except KeyboardInterrupt:
            # The batch in flight stays claimed: a resume sends it again.
            self.release(status=CampaignStatus.PAUSED, error="interrupted by the operator")
            raise
        except LeaseLost:
            raise
        except BaseException:
            self.release()
            raise
        finally:
            heartbeat.stopping.set()
            heartbeat.join()

    def _loop(self, slug: str, recovered: int, heartbeat: _Heartbeat) -> None:
        issue = _load_issue(self.db, slug)
        template = message_template(self.settings, issue, self.campaign_id)
        values = _RecipientValues(self.settings, slug)
        with self.db.engine.connect() as conn:
            counts = _counts(conn, [self.campaign_id])[self.campaign_id]
        self.progress = SendProgress(
            self.campaign_id,
            total=sum(counts.values()),
            accepted=counts[DeliveryState.ACCEPTED.value],
            rejected=counts[DeliveryState.REJECTED.value],
            skipped=counts[DeliveryState.SKIPPED.value],
            recovered=recovered,
            retrying=campaign_info(self.db, self.campaign_id).retrying,
        )
        if self.on_progress:
            self.on_progress(self.progress)
        done: tuple[_Claimed, BatchResult] | None = None
        while True:
            with self.db.engine.begin() as conn:
                if heartbeat.lost or not self.renew(conn):
                    raise LeaseLost(
                        f"lost the lease on campaign {self.campaign_id}; another sender has it"
                    )
                if done is not None:
                    self._record(conn, *done)
                    done = None
                status = CampaignStatus(
                    conn.execute(select(C.c.status).where(C.c.id == self.campaign_id)).scalar_one()
                )
                got: _Claimed | float | None = None
                if status is CampaignStatus.SENDING:
                    got = self._claim(conn, values)
                    if got is None:
                        self._finish(conn, issue.id)
            if self.on_progress:
                self.on_progress(self.progress)
            if status is not CampaignStatus.SENDING:
                log.info("campaign %s is %s: stopping", self.campaign_id, status.value)
                self.release()
                return
            if got is None:
                return
            if isinstance(got, float):
                log.info(
                    "campaign %s: %d recipients wait for another try; the next in %.0f s",
                    self.campaign_id,
                    self.progress.retrying,
                    got,
                )
                try:
                    self._wait(got)
                except _Stopped as stop:
                    log.info("campaign %s is %s: stopping", self.campaign_id, stop)
                    self.release()
                    return
                continue
            claimed = got
            self.bucket.take(len(claimed.recipients))
            try:
                result = self._send(template, claimed)
            except _Stopped as stop:
                # The transport refused the batch and we were waiting to try again.
                self._release_claimed(claimed)
                log.info("campaign %s is %s: stopping", self.campaign_id, stop)
                self.release()
                return
            except _WaitTooLong as too_long:
                exc = too_long.error
                self._release_claimed(claimed)
                asked = exc.retry_after or 0.0
                until = utcnow() + timedelta(seconds=asked)
                self.release(
                    status=CampaignStatus.PAUSED,
                    error=(
                        f"the {self.transport.name} transport asked to wait {asked:.0f} s "
                        f"(Retry-After, until {until:%Y-%m-%d %H:%M} UTC) before sending more: "
                        f"{exc}. Resume it after that with "
                        f"`digestmail campaign resume {self.campaign_id}`."
                    ),
                )
                raise exc from None
            except TransportError as exc:
                if exc.uncertain:
                    # The rows stay claimed, attempts kept: `campaign status` shows them
                    # in flight, and a resume sends to them again (counted as resent).
                    n = len(claimed.recipients)
                    self.release(
                        status=CampaignStatus.PAUSED,
                        error=(
                            f"{exc}. {n} recipients (batch {claimed.batch}) may or may not "
                            "have received the issue; `digestmail campaign resume "
                            f"{self.campaign_id}` sends it to them again (some may get it "
                            "twice)."
                        ),
                    )
                    raise
                self._release_claimed(claimed)
                if exc.permanent:
                    self.release(status=CampaignStatus.FAILED, error=str(exc), finished_at=utcnow())
                else:
                    self.release(
                        status=CampaignStatus.PAUSED,
                        error=(
                            f"the {self.transport.name} transport kept failing "
                            f"({len(self.retry_delays) + 1} tries): {exc}"
                        ),
                    )
                raise
            done = (claimed, result)

    def _finish(self, conn: Connection, issue_id: int) -> None:
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


def run_campaign(
    db: Database,
    settings: Settings,
    campaign_id: int,
    *,
    resume: bool = False,
    transport: Transport | None = None,
    on_progress: Callable[[SendProgress], None] | None = None,
    retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    recipient_retry_delays: Sequence[float] = DEFAULT_RECIPIENT_RETRY_DELAYS,
    max_retry_after: float = MAX_RETRY_AFTER,
    owner: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CampaignInfo:
    """Send a campaign until it is sent, paused, cancelled or failed; returns where it ended.

    Starts a scheduled campaign (taking the audience now) or continues one whose sender
    died. ``resume=True`` (staff's ``campaign resume``) also continues a paused or failed
    one. Raises ``LeaseHeld`` while another live sender has it, ``TransportError`` when the
    transport refused (campaign ``failed``), kept failing, asked for a longer wait than
    ``max_retry_after`` or could not say whether it took a batch (campaign ``paused``).

    ``retry_delays``: waits between tries of a batch the transport refused as a whole;
    ``recipient_retry_delays``: waits before each further try of a recipient that failed
    temporarily (so at most ``len(recipient_retry_delays) + 1`` tries each).
    """
    own = transport is None
    tx = transport or get_transport(settings)
    try:
        sender = _Sender(
            db,
            settings,
            campaign_id,
            tx,
            owner=owner or _owner_id(),
            retry_delays=retry_delays,
            recipient_retry_delays=recipient_retry_delays,
            max_retry_after=max_retry_after,
            on_progress=on_progress,
            sleep=sleep,
        )
        sender.run(_RESUMABLE if resume else _STARTABLE)
    finally:
        if own:
            tx.close()
    return campaign_info(db, campaign_id)
