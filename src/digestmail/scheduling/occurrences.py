"""What happens at a slot, and the slots nobody was there for.

``take_slot`` is the whole decision of a scheduled send, in one transaction holding the
schedule's row: which slot this is, whether it is still on time, which issue goes, and
the campaign with its occurrence row (unique per schedule and slot). A second
scheduler running by mistake waits for that transaction and then finds the slot taken.
Sending itself is ``campaigns.run_campaign``, after the commit.

``settle`` records the slots that passed beyond the grace with nobody to send them
(the scheduler was down): missed, never sent days late by surprise. ``stalled`` finds
campaigns whose sender is gone, ``due_reminders`` the sends coming up with nothing ready,
``overdue`` the slots whose time passed with no scheduler there to take them.
No APScheduler here: the scheduler process (``runner``) calls these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Row, Table, and_, exists, insert, or_, select, update

from digestmail.campaigns.errors import CampaignExists, EmptyAudience
from digestmail.campaigns.lease import holder_gone
from digestmail.campaigns.operations import create_campaign_on
from digestmail.campaigns.tables import C, I
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import (
    CampaignStatus,
    IssueStatus,
    Occurrence,
    OccurrenceOutcome,
    Schedule,
    ScheduleKind,
    ScheduleStatus,
    SkipReason,
)
from digestmail.scheduling.slots import Cadence
from digestmail.scheduling.times import Every

if TYPE_CHECKING:
    # A row of any select (SQLAlchemy 2.1 types rows by their columns).
    AnyRow = Row[*tuple[Any, ...]]

SCH = cast(Table, Schedule.__table__)
OCC = cast(Table, Occurrence.__table__)

# A run may start this early by the clock (another thread's view of "now").
TOLERANCE = timedelta(seconds=1)
# Reminders go out when the next send is this close and nothing is ready.
REMIND_AHEAD = timedelta(hours=24)
# A scheduled campaign that nobody started this long after its slot was taken.
STUCK_AFTER = timedelta(seconds=60)
# A slot this far in the past with no outcome recorded: no scheduler took it.
OVERDUE_AFTER = timedelta(minutes=2)
SEEKING = (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED)


def cadence_of(row: AnyRow) -> Cadence:
    """The cadence a schedule row describes."""
    return Cadence(Every(row.every, row.unit), row.at_time, row.timezone, row.start_date)


def grace(settings: Settings) -> timedelta:
    """How late a send may still go. At least a second: the milliseconds a run takes to
    start must not make every send late."""
    return timedelta(seconds=max(1, settings.misfire_grace))


def pick_issue(conn: Connection) -> AnyRow | None:
    """The issue a cadence sends next: the oldest that is ready, has never had a campaign,
    and is not waiting for a one-off send of its own."""
    campaigned = exists().where(C.c.issue_id == I.c.id, C.c.is_test.is_(False))
    reserved = exists().where(
        SCH.c.issue_id == I.c.id,
        SCH.c.kind == ScheduleKind.ONCE,
        SCH.c.status.in_(SEEKING),
    )
    return conn.execute(
        select(I.c.id, I.c.slug, I.c.title)
        .where(I.c.status == IssueStatus.READY, ~campaigned, ~reserved)
        .order_by(I.c.issue_date.asc().nulls_last(), I.c.created_at, I.c.id)
        .limit(1)
    ).one_or_none()


def _schedule(conn: Connection, schedule_id: int, *, lock: bool) -> AnyRow | None:
    query = select(SCH).where(SCH.c.id == schedule_id)
    return conn.execute(query.with_for_update() if lock else query).one_or_none()


def _recorded(conn: Connection, schedule_id: int, slots: Sequence[datetime]) -> set[datetime]:
    if not slots:
        return set()
    return set(
        conn.scalars(
            select(OCC.c.slot_at).where(OCC.c.schedule_id == schedule_id, OCC.c.slot_at.in_(slots))
        )
    )


def _record(
    conn: Connection,
    schedule_id: int,
    slot: datetime,
    outcome: OccurrenceOutcome,
    now: datetime,
    *,
    reason: SkipReason | None = None,
    issue_id: int | None = None,
    campaign_id: int | None = None,
) -> None:
    conn.execute(
        insert(OCC).values(
            schedule_id=schedule_id,
            slot_at=slot,
            outcome=outcome,
            reason=reason,
            issue_id=issue_id,
            campaign_id=campaign_id,
            recorded_at=now,
        )
    )


def _slug(conn: Connection, issue_id: int | None) -> str | None:
    return None if issue_id is None else conn.scalar(select(I.c.slug).where(I.c.id == issue_id))


@dataclass(frozen=True)
class Missed:
    schedule_id: int
    slot: datetime
    zone: str
    late: timedelta
    slug: str | None


@dataclass(frozen=True)
class SlotResult:
    """What ``take_slot`` decided. ``outcome`` None: nothing to do (the slot is someone
    else's, already recorded, or the schedule is paused or gone)."""

    schedule_id: int
    outcome: OccurrenceOutcome | None = None
    slot: datetime | None = None
    zone: str = "UTC"
    reason: SkipReason | None = None
    campaign_id: int | None = None
    slug: str | None = None
    late: timedelta = timedelta(0)
    # Earlier slots of the cadence that nobody sent (APScheduler runs only the latest of
    # several overdue ones): recorded as missed on the way.
    missed: list[Missed] = field(default_factory=list)


def take_slot(db: Database, settings: Settings, schedule_id: int, now: datetime) -> SlotResult:
    """Decide the schedule's current slot: a campaign to send, a skip, or a miss."""
    with db.engine.begin() as conn:
        row = _schedule(conn, schedule_id, lock=True)
        if row is None or row.status is not ScheduleStatus.ACTIVE:
            return SlotResult(schedule_id)
        zone = row.timezone
        once = row.kind is ScheduleKind.ONCE
        slot = row.run_at if once else cadence_of(row).latest(now + TOLERANCE)
        if slot is None or slot > now + TOLERANCE or slot <= row.settled_until:
            return SlotResult(schedule_id, zone=zone)
        missed = [] if once else _missed_before(conn, row, slot, now)
        if _recorded(conn, schedule_id, [slot]):
            return SlotResult(schedule_id, zone=zone, missed=missed)
        late = max(timedelta(0), now - slot)
        result = SlotResult(schedule_id, slot=slot, zone=zone, late=late, missed=missed)
        if late > grace(settings):
            _record(conn, schedule_id, slot, OccurrenceOutcome.MISSED, now, issue_id=row.issue_id)
            missed_now = replace(result, outcome=OccurrenceOutcome.MISSED)
            return _finish(conn, row, missed_now, _slug(conn, row.issue_id))
        issue = _issue_for(conn, row)
        if isinstance(issue, SkipReason):
            skipped = _skip(conn, row, result, issue, now)
            return _finish(conn, row, skipped, _slug(conn, row.issue_id))
        issue_id, slug = issue
        try:
            campaign_id = create_campaign_on(conn, settings, slug, scheduled_at=slot)
        except EmptyAudience:
            skipped = _skip(conn, row, result, SkipReason.NO_SUBSCRIBERS, now, issue_id)
            return _finish(conn, row, skipped, slug)
        except CampaignExists as exc:
            why = SkipReason.UNFINISHED if exc.unfinished else SkipReason.ALREADY_SENT
            return _finish(conn, row, _skip(conn, row, result, why, now, issue_id), slug)
        _record(
            conn,
            schedule_id,
            slot,
            OccurrenceOutcome.SENT,
            now,
            issue_id=issue_id,
            campaign_id=campaign_id,
        )
        sent = replace(result, outcome=OccurrenceOutcome.SENT, campaign_id=campaign_id)
        return _finish(conn, row, sent, slug)


def _issue_for(conn: Connection, row: AnyRow) -> tuple[int, str] | SkipReason:
    if row.kind is ScheduleKind.CADENCE:
        picked = pick_issue(conn)
        return SkipReason.NO_READY_ISSUE if picked is None else (picked.id, picked.slug)
    issue = conn.execute(select(I.c.id, I.c.slug, I.c.status).where(I.c.id == row.issue_id)).one()
    status = IssueStatus(issue.status)
    if status is IssueStatus.SENT:
        return SkipReason.ALREADY_SENT
    if status is IssueStatus.DRAFT:
        return SkipReason.NOT_READY
    return int(issue.id), str(issue.slug)


def _skip(
    conn: Connection,
    row: AnyRow,
    result: SlotResult,
    reason: SkipReason,
    now: datetime,
    issue_id: int | None = None,
) -> SlotResult:
    assert result.slot is not None
    issue_id = issue_id if issue_id is not None else row.issue_id
    _record(
        conn, row.id, result.slot, OccurrenceOutcome.SKIPPED, now, reason=reason, issue_id=issue_id
    )
    return replace(result, outcome=OccurrenceOutcome.SKIPPED, reason=reason)


def _finish(conn: Connection, row: AnyRow, result: SlotResult, slug: str | None) -> SlotResult:
    """A one-off whose slot is recorded is done; the result names the issue."""
    if row.kind is ScheduleKind.ONCE:
        conn.execute(
            update(SCH)
            .where(SCH.c.id == row.id)
            .values(status=ScheduleStatus.DONE, version=SCH.c.version + 1)
        )
    return replace(result, slug=slug)


def _missed_before(conn: Connection, row: AnyRow, slot: datetime, now: datetime) -> list[Missed]:
    """Record the cadence's slots between its settled time and ``slot`` that nobody sent."""
    earlier = [s for s in cadence_of(row).between(row.settled_until, slot) if s < slot]
    done = _recorded(conn, row.id, earlier)
    missed = []
    for s in earlier:
        if s not in done:
            _record(conn, row.id, s, OccurrenceOutcome.MISSED, now)
            missed.append(Missed(row.id, s, row.timezone, now - s, None))
    return missed


def settle(db: Database, settings: Settings, now: datetime) -> list[Missed]:
    """Record as missed every slot that passed beyond the grace with no outcome; move each
    active schedule's settled time up to there."""
    horizon = now - grace(settings)
    with db.engine.connect() as conn:
        ids = list(
            conn.scalars(
                select(SCH.c.id).where(
                    SCH.c.status == ScheduleStatus.ACTIVE, SCH.c.settled_until < horizon
                )
            )
        )
    found: list[Missed] = []
    for schedule_id in ids:
        with db.engine.begin() as conn:
            row = _schedule(conn, schedule_id, lock=True)
            if row is None or row.status is not ScheduleStatus.ACTIVE:
                continue
            if row.kind is ScheduleKind.ONCE:
                slots = [row.run_at] if row.settled_until < row.run_at <= horizon else []
            else:
                slots = cadence_of(row).between(row.settled_until, horizon)
            done = _recorded(conn, schedule_id, slots)
            slug = _slug(conn, row.issue_id)
            for slot in slots:
                if slot not in done:
                    # A one-off's issue is kept with its missed slot, as in record_missed:
                    # the history says which issue did not go out.
                    _record(
                        conn,
                        schedule_id,
                        slot,
                        OccurrenceOutcome.MISSED,
                        now,
                        issue_id=row.issue_id,
                    )
                    found.append(Missed(schedule_id, slot, row.timezone, now - slot, slug))
            values: dict[str, Any] = {"settled_until": horizon}
            if row.kind is ScheduleKind.ONCE and row.run_at <= horizon:
                values.update(status=ScheduleStatus.DONE, version=SCH.c.version + 1)
            conn.execute(update(SCH).where(SCH.c.id == schedule_id).values(**values))
    return found


def record_missed(db: Database, schedule_id: int, slot: datetime, now: datetime) -> Missed | None:
    """APScheduler gave up on a run of the schedule's job: record that slot as missed
    (unless it is recorded already, or not the schedule's to send any more)."""
    with db.engine.begin() as conn:
        row = _schedule(conn, schedule_id, lock=True)
        if row is None or row.status is not ScheduleStatus.ACTIVE or slot <= row.settled_until:
            return None
        if row.kind is ScheduleKind.ONCE and slot != row.run_at:
            return None  # a time it was moved away from
        if _recorded(conn, schedule_id, [slot]):
            return None
        _record(conn, schedule_id, slot, OccurrenceOutcome.MISSED, now, issue_id=row.issue_id)
        missed = Missed(schedule_id, slot, row.timezone, now - slot, _slug(conn, row.issue_id))
        if row.kind is ScheduleKind.ONCE:
            _finish(conn, row, SlotResult(schedule_id), None)
        return missed


def stalled(db: Database, now: datetime) -> list[tuple[int, bool]]:
    """Campaigns nobody is sending that should be: ``sending`` with no live lease (it ran
    out, or its holder is provably gone: the flag), and scheduled slots' campaigns that
    nobody started."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(C.c.id, C.c.lease_owner, C.c.lease_expires_at).where(
                C.c.is_test.is_(False),
                or_(
                    C.c.status == CampaignStatus.SENDING,
                    and_(
                        C.c.status == CampaignStatus.SCHEDULED,
                        C.c.created_at < now - STUCK_AFTER,
                        exists().where(OCC.c.campaign_id == C.c.id),
                    ),
                ),
            )
        ).all()
    found = []
    for r in rows:
        if r.lease_owner is None or r.lease_expires_at is None or r.lease_expires_at < now:
            found.append((int(r.id), False))
        elif holder_gone(r.lease_owner):
            found.append((int(r.id), True))
    return found


@dataclass(frozen=True)
class Reminder:
    schedule_id: int
    slot: datetime
    zone: str
    draft: str | None  # a one-off's issue that is still a draft; None: no issue ready


def next_slot(conn: Connection, row: AnyRow, now: datetime) -> datetime | None:
    """The schedule's next slot after ``now`` that staff have not cancelled."""
    if row.status is not ScheduleStatus.ACTIVE:
        return None
    if row.kind is ScheduleKind.ONCE:
        return row.run_at if row.run_at > row.settled_until else None
    cadence = cadence_of(row)
    cancelled = set(
        conn.scalars(
            select(OCC.c.slot_at).where(
                OCC.c.schedule_id == row.id,
                OCC.c.slot_at > now,
                OCC.c.outcome == OccurrenceOutcome.CANCELLED,
            )
        )
    )
    slot = cadence.after(max(now, row.settled_until))
    while slot in cancelled:
        slot = cadence.after(slot)
    return slot


def due_reminders(db: Database, now: datetime) -> list[Reminder]:
    """Sends within a day with nothing ready, each reminded about once."""
    found = []
    with db.engine.begin() as conn:
        rows = conn.execute(select(SCH).where(SCH.c.status == ScheduleStatus.ACTIVE)).all()
        for row in rows:
            slot = next_slot(conn, row, now)
            if slot is None or slot <= now or slot - now > REMIND_AHEAD:
                continue
            if row.reminded_for is not None and row.reminded_for == slot:
                continue
            draft: str | None = None
            if row.kind is ScheduleKind.CADENCE:
                if pick_issue(conn) is not None:
                    continue
            else:
                issue = conn.execute(
                    select(I.c.slug, I.c.status).where(I.c.id == row.issue_id)
                ).one()
                if IssueStatus(issue.status) is not IssueStatus.DRAFT:
                    continue
                draft = str(issue.slug)
            taken = conn.execute(
                update(SCH)
                .where(
                    SCH.c.id == row.id,
                    or_(SCH.c.reminded_for.is_(None), SCH.c.reminded_for != slot),
                )
                .values(reminded_for=slot)
            ).rowcount
            if taken == 1:
                found.append(Reminder(row.id, slot, row.timezone, draft))
    return found


@dataclass(frozen=True)
class Overdue:
    schedule_id: int
    slot: datetime
    zone: str
    slug: str | None  # a one-off's issue


def overdue(db: Database, now: datetime) -> list[Overdue]:
    """Slots of active schedules whose time passed ``OVERDUE_AFTER`` ago or more with
    nothing recorded: a running scheduler takes a slot within seconds, so nobody is
    running one (yet). Once a scheduler starts, such a slot is sent late or, past the
    grace, recorded as missed."""
    due = now - OVERDUE_AFTER
    found = []
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(SCH).where(SCH.c.status == ScheduleStatus.ACTIVE).order_by(SCH.c.id)
        ).all()
        for row in rows:
            if row.kind is ScheduleKind.ONCE:
                slot = row.run_at if row.run_at <= due else None
            else:
                slot = cadence_of(row).latest(due)
            if slot is None or slot <= row.settled_until or _recorded(conn, row.id, [slot]):
                continue
            found.append(Overdue(row.id, slot, row.timezone, _slug(conn, row.issue_id)))
    return found
