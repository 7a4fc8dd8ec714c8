"""The scheduler process: APScheduler's jobs kept in line with the ``schedules`` table.

One per deployment (``digestmail scheduler``, or inside ``digestmail serve``). What
staff say lives in our own tables, written by other processes; APScheduler 3 does not
notice jobs that another process adds to its store, so this process owns its jobs and
rebuilds them from the tables every ``DIGESTMAIL_SCHEDULER_SYNC`` seconds (a job per
active schedule: ``DateTrigger`` for a one-off, ``CalendarIntervalTrigger`` for a
cadence). The jobs live in APScheduler's ``SQLAlchemyJobStore`` in the project's
database, so a slot that fell due while the process was down is still run on restart
(within ``DIGESTMAIL_MISFIRE_GRACE``) or reported missed; job functions take only ids.

Everything a run decides is in ``occurrences`` (one transaction per slot, unique per
schedule and slot, so a second scheduler by mistake stands down) and sending is
``campaigns.run_campaign``: the same ledger, lease and progress as a send by hand.

Periodic upkeep is a table (``MAINTENANCE``): name, interval, function. Adding a job
(say, polling a bounce mailbox every five minutes) is one line there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from digestmail import notify
from digestmail.campaigns import (
    CampaignError,
    EmptyAudience,
    LeaseHeld,
    SendProgress,
    WrongStatus,
    campaign_info,
    run_campaign,
)
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import OccurrenceOutcome, ScheduleKind, ScheduleStatus, utcnow
from digestmail.scheduling import occurrences
from digestmail.scheduling.occurrences import SCH, Missed, cadence_of, grace
from digestmail.transports.base import TransportError

log = logging.getLogger(__name__)

JOBS = "schedules"  # APScheduler's job store in our database: one job per schedule
SENDS = "sends"  # the executor of scheduled sends and resumed campaigns
UPKEEP = "default"  # the executor (and in-memory job store) of the periodic upkeep
# A send holds its thread for as long as it runs: enough threads that several long
# sends never hold up the upkeep (which has its own pool) or another schedule's slot.
SEND_THREADS = 8
UPKEEP_THREADS = 4  # at least one per upkeep job: none waits for another
JOB_PREFIX = "schedule-"


@dataclass
class Runtime:
    """What the running scheduler's jobs share (one per process)."""

    settings: Settings
    db: Database
    aps: BackgroundScheduler
    # Set on shutdown: senders finish their batch and hand the campaign on.
    stop: threading.Event = field(default_factory=threading.Event)
    # Campaigns this process is sending now, and why each resumed one was taken up.
    sending: set[int] = field(default_factory=set)
    # Schedules whose slot this process is deciding now (their one-off job is already
    # gone from the store: the sync must not put it back meanwhile).
    firing: set[int] = field(default_factory=set)
    took_over: dict[int, bool] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Jobs running now: a stop waits for them itself (see ``Scheduler.stop``).
    running: int = 0
    idle: threading.Condition = field(default_factory=threading.Condition)

    @contextmanager
    def working(self) -> Iterator[bool]:
        """Count a job as running while it runs; yields False once stopping (do nothing)."""
        with self.idle:
            self.running += 1
        try:
            yield not self.stop.is_set()
        finally:
            with self.idle:
                self.running -= 1
                self.idle.notify_all()


_current: Runtime | None = None
_current_lock = threading.Lock()


def _runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("no scheduler is running in this process")
    return _current


# --- the jobs (module-level: the job store names them; they take ids only) ------------


def fire(schedule_id: int) -> None:
    """A schedule's slot has come: send, skip or record it missed (``take_slot``)."""
    rt = _runtime()
    with rt.working() as go:
        if not go:
            return
        with rt.lock:
            rt.firing.add(schedule_id)
        try:
            _fire(rt, schedule_id)
        finally:
            with rt.lock:
                rt.firing.discard(schedule_id)


def _fire(rt: Runtime, schedule_id: int) -> None:
    result = occurrences.take_slot(rt.db, rt.settings, schedule_id, utcnow())
    _tell_missed(rt, result.missed)
    if result.outcome is None or result.slot is None:
        log.info("schedule %s: nothing to do (slot taken, or not active)", schedule_id)
        return
    if result.outcome is OccurrenceOutcome.MISSED:
        _tell_missed(rt, [Missed(schedule_id, result.slot, result.zone, result.late, result.slug)])
    elif result.outcome is OccurrenceOutcome.SKIPPED:
        assert result.reason is not None
        notify.occurrence_skipped(
            rt.settings, schedule_id, result.slot, result.zone, result.reason, result.slug
        )
    elif result.campaign_id is not None:
        log.info(
            "schedule %s: sending %s as campaign %s (%.1f s after its time)",
            schedule_id,
            result.slug,
            result.campaign_id,
            result.late.total_seconds(),
        )
        _send(rt, result.campaign_id)


def resume_campaign(campaign_id: int) -> None:
    """Continue a campaign whose sender is gone."""
    rt = _runtime()
    with rt.working() as go:
        if go:
            _send(rt, campaign_id, resumed=True)


def _send(rt: Runtime, campaign_id: int, *, resumed: bool = False) -> None:
    with rt.lock:
        if campaign_id in rt.sending:
            return
        rt.sending.add(campaign_id)
    told = not resumed

    def progress(p: SendProgress) -> None:
        nonlocal told
        if not told:  # the lease is ours: it really is being resumed
            told = True
            slug = campaign_info(rt.db, campaign_id).issue_slug
            took_over = rt.took_over.get(campaign_id, False)
            log.warning("campaign %s: resuming it (its sender is gone)", campaign_id)
            notify.campaign_resumed(rt.settings, campaign_id, slug, p.recovered, took_over)

    try:
        run_campaign(rt.db, rt.settings, campaign_id, on_progress=progress, stop=rt.stop)
    except (LeaseHeld, WrongStatus) as exc:
        log.info("campaign %s: another sender has it, or it is over (%s)", campaign_id, exc)
    except EmptyAudience as exc:
        log.warning("%s", exc)
    except (CampaignError, TransportError) as exc:
        # The campaign stopped and recorded why; the report to staff has said so.
        log.warning("campaign %s stopped: %s", campaign_id, exc)
    except Exception:
        log.exception("campaign %s: the send failed", campaign_id)
    finally:
        with rt.lock:
            rt.sending.discard(campaign_id)
            rt.took_over.pop(campaign_id, None)


def _tell_missed(rt: Runtime, missed: list[Missed]) -> None:
    for m in missed:
        log.warning("schedule %s: the slot of %s was missed", m.schedule_id, m.slot.isoformat())
        notify.occurrence_missed(
            rt.settings, m.schedule_id, m.slot, m.zone, m.late, rt.settings.misfire_grace, m.slug
        )


# --- upkeep ------------------------------------------------------------------------------


def sync(rt: Runtime) -> None:
    """Bring the job store in line with the schedules table; record missed slots."""
    _tell_missed(rt, occurrences.settle(rt.db, rt.settings, utcnow()))
    if rt.stop.is_set():
        return
    with rt.db.engine.connect() as conn:
        rows = conn.execute(select(SCH).where(SCH.c.status == ScheduleStatus.ACTIVE)).all()
    with rt.lock:
        firing = set(rt.firing)
    wanted = {f"{JOB_PREFIX}{row.id}": row for row in rows if row.id not in firing}
    have = {job.id: job for job in rt.aps.get_jobs(jobstore=JOBS)}
    for job_id, row in wanted.items():
        name = f"schedule {row.id} v{row.version}"
        job = have.get(job_id)
        if job is not None and job.name == name:
            continue  # as it was: APScheduler keeps its own next run time (even overdue)
        trigger, first = _trigger(row)
        rt.aps.add_job(
            fire,
            trigger=trigger,
            args=(row.id,),
            id=job_id,
            name=name,
            jobstore=JOBS,
            executor=SENDS,
            replace_existing=True,
            next_run_time=first,
        )
        log.info("schedule %s: next run %s", row.id, first.isoformat())
    for job_id in have.keys() - wanted.keys() - {f"{JOB_PREFIX}{i}" for i in firing}:
        with contextlib.suppress(JobLookupError):
            rt.aps.remove_job(job_id, jobstore=JOBS)


def _trigger(row: Any) -> tuple[BaseTrigger, datetime]:
    if row.kind is ScheduleKind.ONCE:
        return DateTrigger(run_date=row.run_at, timezone=UTC), row.run_at
    cadence = cadence_of(row)
    # The first slot not yet dealt with: one still within the grace runs late.
    return cadence.trigger(), cadence.after(row.settled_until)


def resume_stalled(rt: Runtime) -> None:
    """Campaigns left ``sending`` by a sender that is gone: continue them."""
    for campaign_id, took_over in occurrences.stalled(rt.db, utcnow()):
        with rt.lock:
            if campaign_id in rt.sending:
                continue
            rt.took_over[campaign_id] = took_over
        rt.aps.add_job(
            resume_campaign,
            args=(campaign_id,),
            id=f"resume-{campaign_id}",
            executor=SENDS,
            jobstore=UPKEEP,
            replace_existing=True,
            misfire_grace_time=None,
        )


def remind(rt: Runtime) -> None:
    """The day before a send with nothing ready, staff hear about it (once)."""
    for r in occurrences.due_reminders(rt.db, utcnow()):
        notify.reminder(rt.settings, r.schedule_id, r.slot, r.zone, r.draft)


def fetch_bounces(rt: Runtime) -> None:
    """Read the bounce mailbox (``DIGESTMAIL_BOUNCE_IMAP_URL``), and apply pending events."""
    from digestmail import bounces

    try:
        report = bounces.fetch_bounces(rt.db, rt.settings)
    except bounces.FetchError as exc:
        log.warning("bounce mailbox at %s not read: %s", exc.host, exc.reason)
        return
    if report.read:
        log.info("bounce mailbox: %d messages read, %d bounces", report.read, report.bounces)


@dataclass(frozen=True)
class Periodic:
    name: str
    every: Callable[[Settings], float]  # seconds, from the settings
    run: Callable[[Runtime], None]

    def __call__(self, rt: Runtime) -> None:
        with rt.working() as go:
            if go:
                self.run(rt)


MAINTENANCE: tuple[Periodic, ...] = (
    Periodic("sync", lambda s: s.scheduler_sync, sync),
    Periodic("resume-stalled", lambda s: 60.0, resume_stalled),
    Periodic("remind", lambda s: 600.0, remind),
    Periodic("bounces", lambda s: 300.0, fetch_bounces),
)


# --- the scheduler -----------------------------------------------------------------------


class _JobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """APScheduler's SQLAlchemy store, tolerant of a second scheduler (running by mistake)
    having updated or removed a job first: that must never stop this one."""

    def update_job(self, job: Any) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            log.info("job %s was removed by another scheduler", job.id)

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except JobLookupError:
            log.info("job %s was already removed", job_id)


class _Background(BackgroundScheduler):  # type: ignore[misc]
    def _process_jobs(self) -> float | None:
        # A database error while updating a job would otherwise end APScheduler's
        # thread, and the scheduler would silently stop: wait and try again instead.
        try:
            wait: float | None = super()._process_jobs()
            return wait
        except Exception:
            log.exception("scheduler: could not process the jobs; trying again shortly")
            return float(self.jobstore_retry_interval)


class Scheduler:
    """Start and stop the scheduler of this process."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self._own_db = db is None
        self.db = db or Database(settings.database_url)
        self.aps = _Background(
            jobstores={
                JOBS: _JobStore(engine=self.db.engine, tablename="apscheduler_jobs"),
                UPKEEP: MemoryJobStore(),
            },
            executors={
                SENDS: ThreadPoolExecutor(SEND_THREADS),
                UPKEEP: ThreadPoolExecutor(max(UPKEEP_THREADS, len(MAINTENANCE))),
            },
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(grace(settings).total_seconds()),
            },
            timezone=UTC,
        )
        self.runtime = Runtime(settings, self.db, self.aps)

    def start(self) -> None:
        global _current
        with _current_lock:
            if _current is not None:
                raise RuntimeError("a scheduler is already running in this process")
            _current = self.runtime
        self.aps.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        now = datetime.now(UTC)
        for job in MAINTENANCE:
            self.aps.add_job(
                job,
                IntervalTrigger(seconds=job.every(self.settings)),
                args=(self.runtime,),
                id=f"upkeep-{job.name}",
                name=job.name,
                jobstore=UPKEEP,
                executor=UPKEEP,
                next_run_time=now,
                misfire_grace_time=None,
            )
        self.aps.start()
        log.info("scheduler started")

    def stop(self, *, wait: bool = True) -> None:
        """Stop: senders finish their batch and hand their campaign on (left ``sending``,
        for the next scheduler to continue at once).

        APScheduler's own ``shutdown(wait=True)`` holds its job-store lock while it waits
        for running jobs, and the sync job needs that lock: it would never finish. So
        APScheduler stops at once and this waits for the running jobs itself.
        """
        global _current
        rt = self.runtime
        rt.stop.set()
        if self.aps.running:
            self.aps.shutdown(wait=False)
        if wait:
            with rt.idle:
                rt.idle.wait_for(lambda: rt.running == 0)
        with _current_lock:
            if _current is self.runtime:
                _current = None
        if self._own_db:
            self.db.dispose()
        log.info("scheduler stopped")

    def _on_event(self, event: JobExecutionEvent) -> None:
        if not event.job_id.startswith(JOB_PREFIX):
            return
        schedule_id = int(event.job_id.removeprefix(JOB_PREFIX))
        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("schedule %s: its previous send is still running", schedule_id)
            return
        try:
            slot = event.scheduled_run_time.astimezone(UTC)
            missed = occurrences.record_missed(self.db, schedule_id, slot, utcnow())
            if missed is not None:
                _tell_missed(self.runtime, [missed])
        except Exception:
            log.exception("schedule %s: could not record a missed run", schedule_id)
