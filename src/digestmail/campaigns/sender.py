"""The send loop: claim batches, hand them to the transport, record the answers, repeat.

Up to ``DIGESTMAIL_SEND_CONCURRENCY`` batches are in flight at once, each handed to the
transport by a worker thread, while this loop (the lease holder, and the only writer of
the ledger) records each answer as it comes and claims the next batch in the same
transaction, under the lease it renews in that one. The next batches are claimed and
built while earlier ones are on the wire; a crash leaves at most that many batches
claimed, which the next sender sends again (``ledger.Ledger.recover``).

A batch the transport fails as a whole is tried again after a wait that holds back
every batch (one shared wait: when the provider says to slow down, nobody posts
meanwhile), while that can help; otherwise the sender stops the campaign, and
``HALTS`` says how: which status it is left in, whether the failed batch goes back to
``pending`` (nothing of it was sent) or stays ``claimed`` (its fate is unknown, so a
resume sends it again), whether the other batches in flight are waited for and their
answers recorded first, and whether the campaign counts as finished. Why it stopped is
stored as data (``models.StopReason`` and its facts), never as advice.

Every wait is slept in short steps that re-read the campaign, so pause and cancel
take effect within a step: nothing more is claimed, batches waiting to be tried again
go back to ``pending``, and the batches on the wire are waited for and recorded. The
lease stays ours however long the wait.

A sender that dies (SIGKILL, power, the database going away under it) leaves the
campaign ``sending`` with its lease running out: the next sender, or a resume,
continues it. Errors that would only repeat (the transport refusing, an issue that
cannot be built, a bug) never leave it so: they stop it ``failed`` or ``paused``.
A sender asked to stop (``stop``, the scheduler shutting down) claims nothing more,
lets the batches in flight be answered and recorded, and gives the lease up, leaving
the campaign ``sending`` for the next one.

Every run that got going ends with a report to staff (``notify``).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError

from digestmail import notify
from digestmail.campaigns.errors import (
    RESUMABLE,
    STARTABLE,
    EmptyAudience,
    LeaseLost,
    MessageNotBuilt,
)
from digestmail.campaigns.info import CampaignInfo, campaign_info, check_id
from digestmail.campaigns.lease import Heartbeat, Lease, owner_id
from digestmail.campaigns.ledger import Batch, Ledger
from digestmail.campaigns.message import RecipientValues, checked_template, load_issue
from digestmail.campaigns.pacing import TokenBucket, batch_size
from digestmail.campaigns.tables import C
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import CampaignStatus, DeliveryState, StopReason, utcnow
from digestmail.transports import get_transport
from digestmail.transports.base import (
    BatchResult,
    Handover,
    Transport,
    TransportError,
    UnbuildableMessage,
)

log = logging.getLogger(__name__)

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


# --- what happens when a batch cannot go ------------------------------------------------


@dataclass(frozen=True)
class Halt:
    """How the sender leaves a campaign it stops."""

    status: CampaignStatus
    # The failed batch goes back to pending (nothing of it was sent); otherwise it stays
    # claimed, and a resume sends it again (counted as resent).
    put_back: bool
    # ``finished_at`` is stamped: nothing more happens until staff act.
    finished: bool
    # The other batches in flight are waited for and their answers recorded before the
    # campaign stops; otherwise (the operator wants out now) they stay claimed.
    drain: bool = True


HALTS: dict[StopReason, Halt] = {
    # Trying again cannot help (bad key, unverified sender): staff fix it, then resume.
    StopReason.REFUSED: Halt(CampaignStatus.FAILED, put_back=True, finished=True),
    StopReason.UNBUILDABLE: Halt(CampaignStatus.FAILED, put_back=True, finished=True),
    # Likely to pass by itself: paused, for staff to resume when it has.
    StopReason.KEPT_FAILING: Halt(CampaignStatus.PAUSED, put_back=True, finished=False),
    StopReason.WAIT_TOO_LONG: Halt(CampaignStatus.PAUSED, put_back=True, finished=False),
    # The provider may have the batch: never re-posted without staff deciding to.
    StopReason.UNCERTAIN: Halt(CampaignStatus.PAUSED, put_back=False, finished=False),
    StopReason.INTERRUPTED: Halt(
        CampaignStatus.PAUSED, put_back=False, finished=False, drain=False
    ),
    # A bug would only repeat; what the batch reached is unknown.
    StopReason.UNEXPECTED: Halt(CampaignStatus.FAILED, put_back=False, finished=True),
    # Nobody to send to: over before it began, and the issue stays unsent.
    StopReason.NO_AUDIENCE: Halt(CampaignStatus.CANCELLED, put_back=True, finished=True),
}


def next_step(
    error: TransportError, attempt: int, delays: Sequence[float], max_retry_after: float
) -> float | StopReason:
    """After try ``attempt`` (from 0) of a batch failed whole: the seconds to wait before
    the next try, or why to stop."""
    # An uncertain outcome is never re-posted automatically: it may have been
    # delivered, and a retry could reach the whole batch twice.
    if error.uncertain:
        return StopReason.UNCERTAIN
    if error.permanent:
        return StopReason.REFUSED
    if attempt >= len(delays):
        return StopReason.KEPT_FAILING
    asked = error.retry_after or 0.0
    if asked > max_retry_after:
        return StopReason.WAIT_TOO_LONG
    return max(delays[attempt], asked)


def stop_facts(
    reason: StopReason,
    error: BaseException | None,
    *,
    transport: str,
    in_doubt: Sequence[Batch],
    tries: int,
    now: datetime,
) -> dict[str, Any]:
    """What the reason needs to be explained later (stored as the campaign's error_data).

    ``in_doubt``: the batches the transport could not say it took (left claimed).
    """
    facts: dict[str, Any] = {}
    if reason in (StopReason.REFUSED, StopReason.KEPT_FAILING, StopReason.UNCERTAIN):
        facts["transport"] = transport
    if reason is StopReason.WAIT_TOO_LONG:
        asked = (error.retry_after if isinstance(error, TransportError) else None) or 0.0
        facts["transport"] = transport
        facts["wait_seconds"] = asked
        facts["until"] = (now + timedelta(seconds=asked)).isoformat()
    if reason is StopReason.KEPT_FAILING:
        facts["tries"] = tries
    if reason is StopReason.UNCERTAIN and in_doubt:
        facts["batches"] = sorted(b.number for b in in_doubt)
        facts["recipients"] = sum(len(b.recipients) for b in in_doubt)
    if reason is StopReason.UNEXPECTED and error is not None:
        facts["exception"] = type(error).__name__
    return facts


def _detail(error: BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, MessageNotBuilt):
        return error.reason
    if isinstance(error, TransportError | UnbuildableMessage):
        return str(error)
    return f"{type(error).__name__}: {error}"


class _Halted(Exception):
    """The sender must stop the campaign (see ``HALTS``)."""

    def __init__(
        self,
        reason: StopReason,
        error: BaseException,
        *,
        put_back: Sequence[Batch] = (),
        in_doubt: Sequence[Batch] = (),
    ):
        super().__init__(reason.value)
        self.reason = reason
        self.error = error
        self.put_back = put_back
        self.in_doubt = in_doubt


# --- progress -------------------------------------------------------------------------


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


# --- the loop -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Start:
    """What a run starts from: the campaign's issue, the rows a dead sender's batches
    left in flight (sent again), and the ledger counted under the lease just taken."""

    slug: str
    issue_id: int
    recovered: int
    counts: dict[str, int]  # per state, as ``info.counts`` gives them
    retrying: int  # pending after a temporary failure


@dataclass
class _Flight:
    """A claimed batch: on the wire (``future``), or waiting for the shared wait to end."""

    batch: Batch
    attempt: int = 0  # tries that failed as a whole
    handover: Handover | None = None  # the batch prepared by the transport, to go again


@dataclass
class _Failed:
    """A batch that stopped the campaign, and why."""

    flight: _Flight
    reason: StopReason
    error: BaseException


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
        stop: threading.Event | None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.campaign_id = campaign_id
        self.transport = transport
        self.concurrency = max(1, min(settings.send_concurrency, transport.max_in_flight))
        self.retry_delays = tuple(retry_delays)
        self.max_retry_after = max_retry_after
        self.on_progress = on_progress
        self.sleep = sleep
        self.lease = Lease(db, campaign_id, owner, settings.sender_lease)
        self.ledger = Ledger(
            campaign_id,
            settings=settings,
            batch_size=batch_size(settings.batch_size, transport.max_batch, settings.send_rate),
            recipient_retry_delays=recipient_retry_delays,
        )
        self.bucket = TokenBucket(settings.send_rate, sleep=sleep)
        self.progress = SendProgress(campaign_id, total=0)
        self.stop = stop or threading.Event()
        # Set once the lease is ours: from then on the run is reported to staff.
        self.started = False

    def _start(self, allowed: Sequence[CampaignStatus]) -> _Start:
        """Take the lease; snapshot the audience on first start, or recover a dead sender's
        batches in flight; and count the ledger as this run finds it."""
        now = utcnow()
        with self.db.engine.begin() as conn:
            taken = self.lease.take(conn, allowed, now)
            recovered = 0
            if taken.started_at is None:
                # Every row just written is pending and untried: nothing to read back.
                counts = dict.fromkeys((s.value for s in DeliveryState), 0)
                counts[DeliveryState.PENDING.value] = self.ledger.snapshot(conn, now)
                retrying = 0
            else:
                recovered = self.ledger.recover(conn, now)
                if recovered:
                    log.warning(
                        "campaign %s: %d recipients were in flight when the last sender "
                        "stopped; sending to them again (some may receive it twice)",
                        self.campaign_id,
                        recovered,
                    )
                self.ledger.continue_numbering(conn)
                counts = self.ledger.counts(conn)
                retrying = self.ledger.retrying(conn)
        self.started = True
        return _Start(taken.slug, taken.issue_id, recovered, counts, retrying)

    def run(self, allowed: Sequence[CampaignStatus]) -> None:
        start = self._start(allowed)
        if sum(start.counts.values()) == 0:
            # Everyone left between the campaign's creation and its start.
            self._halt(StopReason.NO_AUDIENCE, None)
            raise EmptyAudience(start.slug, campaign_id=self.campaign_id)
        heartbeat = Heartbeat(self.lease)
        heartbeat.start()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"send-{self.campaign_id}")
        # Every batch makes thousands of objects (recipients, their values), so the
        # garbage collector runs often, and each of its older passes walked every object
        # the process already held (the imported modules alone: some 80,000), about 3 µs
        # a recipient. Frozen, those are left out until the send ends; garbage made
        # during the send is collected as before.
        gc.freeze()
        try:
            self._loop(start, heartbeat, pool)
        except _Halted as halt:
            self._halt(halt.reason, halt.error, put_back=halt.put_back, in_doubt=halt.in_doubt)
            if halt.reason is StopReason.UNBUILDABLE and not isinstance(
                halt.error, MessageNotBuilt
            ):
                raise MessageNotBuilt(
                    start.slug, str(halt.error), campaign_id=self.campaign_id
                ) from halt.error
            raise halt.error from None
        except KeyboardInterrupt:
            # The batches in flight stay claimed: a resume sends them again.
            self._halt(StopReason.INTERRUPTED, None)
            raise
        except (LeaseLost, DBAPIError):
            # Not the message's fault: like a crash, the campaign stays sending and the
            # next sender continues it once the lease has run out.
            self._release_quietly()
            raise
        except Exception as exc:
            # A bug, which would strike again on every resume: stop rather than leave
            # the campaign sending. Whatever batches were in flight stay claimed.
            log.exception("campaign %s: unexpected error", self.campaign_id)
            self._halt(StopReason.UNEXPECTED, exc)
            raise
        except BaseException:
            self._release_quietly()
            raise
        finally:
            # Normally nothing is in flight any more; after an error, requests on the
            # wire finish on their own (their rows stay claimed) without holding us up.
            pool.shutdown(wait=False, cancel_futures=True)
            heartbeat.stop()
            # All of it, also what the command froze once loaded (``cli._loaded``): a
            # server that runs campaigns then collects as any process does, and nothing
            # the send froze stays out of reach of the collector.
            gc.unfreeze()

    def _release_quietly(self) -> None:
        try:
            self.lease.release()
        except Exception:  # the database may be what failed
            log.warning("could not release the lease on campaign %s", self.campaign_id)

    def _put_back(self, batches: Sequence[Batch]) -> None:
        """Batches of which nothing was sent go back to pending, in one transaction."""
        if not batches:
            return
        with self.db.engine.begin() as conn:
            if not self.lease.renew(conn):
                raise LeaseLost(self.campaign_id)
            for batch in batches:
                self.ledger.put_back(conn, batch)

    def _halt(
        self,
        reason: StopReason,
        error: BaseException | None,
        *,
        put_back: Sequence[Batch] = (),
        in_doubt: Sequence[Batch] = (),
    ) -> None:
        """Stop the campaign as ``HALTS`` says, recording why as data."""
        halt = HALTS[reason]
        self._put_back(put_back)
        now = utcnow()
        values: dict[str, Any] = {
            "status": halt.status,
            "error_reason": reason,
            "error": _detail(error),
            "error_data": stop_facts(
                reason,
                error,
                transport=self.transport.name,
                in_doubt=in_doubt,
                tries=len(self.retry_delays) + 1,
                now=now,
            ),
        }
        if halt.finished:
            values["finished_at"] = now
        log.warning(
            "campaign %s is %s (%s): %s",
            self.campaign_id,
            halt.status.value,
            reason.value,
            values["error"],
        )
        self.lease.release(**values)

    def _loop(self, start: _Start, heartbeat: Heartbeat, pool: ThreadPoolExecutor) -> None:
        slug, issue_id, counts = start.slug, start.issue_id, start.counts
        issue = load_issue(self.db, slug)
        try:
            template = checked_template(self.settings, issue, self.campaign_id)
        except MessageNotBuilt as exc:
            raise _Halted(StopReason.UNBUILDABLE, exc) from exc
        values = RecipientValues(self.settings, slug)
        progress = self.progress = SendProgress(
            self.campaign_id,
            total=sum(counts.values()),
            accepted=counts[DeliveryState.ACCEPTED.value],
            rejected=counts[DeliveryState.REJECTED.value],
            skipped=counts[DeliveryState.SKIPPED.value],
            recovered=start.recovered,
            retrying=start.retrying,
        )
        if self.on_progress:
            self.on_progress(progress)

        flying: dict[Future[BatchResult], _Flight] = {}
        waiting: list[_Flight] = []  # failed whole, to be tried again after the shared wait
        failed: list[_Failed] = []  # stopped the campaign; the first one says why
        hold = 0.0  # seconds of the shared wait still to sleep
        stopped: CampaignStatus | None = None  # staff paused or cancelled
        handing_over = False  # asked to stop (``stop``): the campaign stays sending

        def launch(flight: _Flight) -> None:
            # Prepared here, handed over by a worker: this thread computes, the workers
            # wait (see ``Transport.prepare``); a retry goes out as it was prepared.
            future: Future[BatchResult]
            try:
                if flight.handover is None:
                    flight.handover = self.transport.prepare(template, flight.batch.recipients)
            except Exception as exc:  # decided below, like a failure on the way
                future = Future()
                future.set_exception(exc)
            else:
                future = pool.submit(flight.handover)
            flying[future] = flight

        while True:
            values.tick()
            claim = None
            finished = [f for f in flying if f.done()]
            with self.db.engine.begin() as conn:
                if heartbeat.lost or not self.lease.renew(conn):
                    raise LeaseLost(self.campaign_id)
                for future in finished:
                    flight = flying.pop(future)
                    try:
                        result = future.result()
                    except TransportError as exc:
                        step = next_step(
                            exc, flight.attempt, self.retry_delays, self.max_retry_after
                        )
                        if isinstance(step, StopReason):
                            failed.append(_Failed(flight, step, exc))
                            continue
                        log.warning(
                            "campaign %s batch %d: %s; trying again in %.0f s",
                            self.campaign_id,
                            flight.batch.number,
                            exc,
                            step,
                        )
                        flight.attempt += 1
                        waiting.append(flight)
                        hold = max(hold, step)
                    except UnbuildableMessage as exc:
                        failed.append(_Failed(flight, StopReason.UNBUILDABLE, exc))
                    except Exception as exc:
                        log.error(
                            "campaign %s batch %d: unexpected error",
                            self.campaign_id,
                            flight.batch.number,
                            exc_info=exc,
                        )
                        failed.append(_Failed(flight, StopReason.UNEXPECTED, exc))
                    else:
                        self._record(conn, flight.batch, result)
                status = CampaignStatus(
                    conn.execute(select(C.c.status).where(C.c.id == self.campaign_id)).scalar_one()
                )
                if status is not CampaignStatus.SENDING:
                    stopped = status
                elif self.stop.is_set():
                    if not handing_over:
                        log.info(
                            "campaign %s: asked to stop; leaving it sending for the next sender",
                            self.campaign_id,
                        )
                    handing_over = True
                elif not failed and hold <= 0 and not waiting and len(flying) < self.concurrency:
                    claim = self.ledger.claim(conn, values.recipient)
                    progress.skipped += claim.skipped
                    progress.retrying -= claim.retried
                    done = claim.batch is None and claim.retry_in is None
                    if done and not flying:
                        self.ledger.finish(conn, issue_id)
            if self.on_progress:
                self.on_progress(progress)

            if stopped is not None or handing_over or failed:
                by_staff = stopped is not None or handing_over
                if flying and (by_staff or HALTS[failed[0].reason].drain):
                    wait(flying, timeout=WAIT_STEP, return_when=FIRST_COMPLETED)
                    continue
                self._stop(stopped, failed, waiting, handing_over=handing_over)
                return
            if hold > 0:
                step = min(hold, WAIT_STEP)
                self.sleep(step)
                hold -= step
                continue
            if waiting:
                while waiting and len(flying) < self.concurrency:
                    launch(waiting.pop(0))
                continue
            if claim is not None and claim.batch is not None:
                self.bucket.take(len(claim.batch.recipients))
                launch(_Flight(claim.batch))
                continue
            if flying:
                wait(flying, timeout=WAIT_STEP, return_when=FIRST_COMPLETED)
                continue
            if claim is None or claim.retry_in is None:
                return  # sent
            log.info(
                "campaign %s: %d recipients wait for another try; the next in %.0f s",
                self.campaign_id,
                progress.retrying,
                claim.retry_in,
            )
            self.sleep(min(claim.retry_in, WAIT_STEP))

    def _record(self, conn: Connection, batch: Batch, result: BatchResult) -> None:
        progress = self.progress
        recorded = self.ledger.record(conn, batch, result)
        progress.accepted += recorded.accepted
        progress.rejected += recorded.rejected
        progress.retrying += recorded.deferred
        progress.sent_this_run += len(batch.recipients)
        if recorded.deferred:
            log.warning(
                "campaign %s batch %d: %d recipients failed temporarily; trying "
                "them again after the others",
                self.campaign_id,
                batch.number,
                recorded.deferred,
            )

    def _stop(
        self,
        stopped: CampaignStatus | None,
        failed: Sequence[_Failed],
        waiting: Sequence[_Flight],
        *,
        handing_over: bool = False,
    ) -> None:
        """Nothing is in flight any more (or need not be waited for): stop the campaign.

        Batches waiting to be tried again were not sent: they go back to pending, like a
        failed batch whose ``HALTS`` entry says so; the others stay claimed. Staff's
        pause or cancel keeps its status, and a sender asked to stop leaves it sending;
        otherwise the first failure's ``HALTS`` entry decides, and its error is raised.
        """
        put_back = [f.batch for f in waiting]
        put_back += [f.flight.batch for f in failed if HALTS[f.reason].put_back]
        if stopped is not None or handing_over:
            self._put_back(put_back)
            why = stopped.value if stopped is not None else "handed over"
            log.info("campaign %s is %s: stopping", self.campaign_id, why)
            self.lease.release()
            return
        first = failed[0]
        in_doubt = [f.flight.batch for f in failed if f.reason is StopReason.UNCERTAIN]
        raise _Halted(first.reason, first.error, put_back=put_back, in_doubt=in_doubt)


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
    stop: threading.Event | None = None,
) -> CampaignInfo:
    """Send a campaign until it is sent, paused, cancelled or failed; returns where it ended.

    Starts a scheduled campaign (taking the audience now) or continues one whose sender
    died. ``resume=True`` (staff's resume) also continues a paused or failed one. Raises
    ``WrongStatus`` if the campaign is in no status to start from, ``LeaseHeld`` while
    another live sender has it; and, having stopped the campaign as ``HALTS`` says,
    ``TransportError`` when the transport refused, kept failing, asked for a longer wait
    than ``max_retry_after`` or could not say whether it took a batch,
    ``MessageNotBuilt`` when the issue cannot become a valid message, ``EmptyAudience``
    (the campaign cancelled, the issue unsent) when nobody was active as it started.

    ``stop``: once set, the sender claims nothing more, lets the batches in flight be
    answered, gives its lease up and returns, the campaign still ``sending`` (a
    scheduler shutting down hands it on).

    ``retry_delays``: waits between tries of a batch the transport refused as a whole;
    ``recipient_retry_delays``: waits before each further try of a recipient that failed
    temporarily (so at most ``len(recipient_retry_delays) + 1`` tries each).
    """
    check_id(campaign_id)
    own = transport is None
    tx = transport or get_transport(settings)
    sender: _Sender | None = None
    info: CampaignInfo | None = None
    began = time.monotonic()
    try:
        sender = _Sender(
            db,
            settings,
            campaign_id,
            tx,
            owner=owner or owner_id(),
            retry_delays=retry_delays,
            recipient_retry_delays=recipient_retry_delays,
            max_retry_after=max_retry_after,
            on_progress=on_progress,
            sleep=sleep,
            stop=stop,
        )
        sender.run(RESUMABLE if resume else STARTABLE)
    finally:
        if own:
            tx.close()
        if sender is not None and sender.started:
            info = _report(db, settings, campaign_id, time.monotonic() - began)
    # Where the run left it, as reported (read once: that counts every row again).
    return info or campaign_info(db, campaign_id)


def _report(
    db: Database, settings: Settings, campaign_id: int, seconds: float
) -> CampaignInfo | None:
    """Tell staff where the run left the campaign, and return it as read; never in the
    way of the run's own end (None if it could not be read)."""
    info = None
    try:
        info = campaign_info(db, campaign_id)
        notify.campaign_report(settings, info, seconds)
    except Exception:
        log.exception("campaign %s: could not report to staff", campaign_id)
    return info
