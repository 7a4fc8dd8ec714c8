"""What staff say about when to send: cadences, one-off sends, and changes to them.

Written by the CLI and the admin alike, into the ``schedules`` table; the scheduler
process reads it within seconds (``DIGESTMAIL_SCHEDULER_SYNC``). Every change bumps the
schedule's ``version`` so that the scheduler rebuilds its job. What staff type is
read here (``times``), and every refusal is a ``ScheduleError`` carrying the facts.
Functions take ``now`` so that tests can say when "now" is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from digestmail import issues
from digestmail.campaigns import IssueNotFound, check_new_campaign
from digestmail.campaigns.tables import C, I
from digestmail.config import Settings
from digestmail.db import Database
from digestmail.models import (
    ID_MAX,
    CampaignStatus,
    IntervalUnit,
    IssueStatus,
    OccurrenceOutcome,
    ScheduleKind,
    ScheduleStatus,
    SkipReason,
    utcnow,
)
from digestmail.scheduling.errors import (
    Action,
    AlreadyScheduled,
    Field,
    InThePast,
    IssueSent,
    MissingValue,
    NoOccurrenceOn,
    ScheduleNotFound,
    WrongState,
)
from digestmail.scheduling.occurrences import (
    OCC,
    SCH,
    SEEKING,
    cadence_of,
    next_slot,
    pick_issue,
)
from digestmail.scheduling.slots import Cadence, first_date
from digestmail.scheduling.times import (
    Every,
    parse_date,
    parse_every,
    parse_moment,
    parse_time_of_day,
    parse_weekday,
    zone,
)

if TYPE_CHECKING:
    from digestmail.scheduling.occurrences import AnyRow

RECENT = 10


@dataclass(frozen=True)
class OccurrenceInfo:
    schedule_id: int
    slot: datetime
    zone: str
    outcome: OccurrenceOutcome
    reason: SkipReason | None
    issue_slug: str | None
    campaign_id: int | None
    campaign_status: CampaignStatus | None

    def to_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule_id,
            "slot": self.slot.astimezone(zone(self.zone)).isoformat(),
            "outcome": self.outcome.value,
            "reason": self.reason.value if self.reason else None,
            "issue": self.issue_slug,
            "campaign": self.campaign_id,
            "campaign_status": self.campaign_status.value if self.campaign_status else None,
        }


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule as staff see it. For a cadence, ``issue_slug`` is the issue that would
    go out next (None: none ready); for a one-off, its own issue."""

    id: int
    kind: ScheduleKind
    status: ScheduleStatus
    zone: str
    issue_slug: str | None
    next_run: datetime | None
    # The issue's title and status (a cadence's is ready, or there is none; a one-off's
    # own issue may be a draft again, and would then be skipped).
    issue_title: str | None = None
    issue_status: IssueStatus | None = None
    every: Every | None = None
    at: time | None = None
    start: date | None = None
    run_at: datetime | None = None
    # Future slots staff cancelled ahead of time.
    skipping: list[datetime] = field(default_factory=list)

    @property
    def sends_an_issue(self) -> bool:
        """Whether its next send would send an issue as things stand now."""
        return self.issue_status is IssueStatus.READY

    @property
    def weekday(self) -> int | None:
        if self.every is None or self.every.unit is not IntervalUnit.WEEK or self.start is None:
            return None
        return self.start.weekday()

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(zone(self.zone))

    def coming(self, count: int) -> list[datetime]:
        """Its next ``count`` sends (a one-off: its one), those staff skipped left out."""
        if self.next_run is None:
            return []
        if self.every is None or self.at is None or self.start is None:
            return [self.next_run]
        cadence = Cadence(self.every, self.at, self.zone, self.start)
        skipped = set(self.skipping)
        found, slot = [self.next_run], self.next_run
        while len(found) < count:
            slot = cadence.after(slot)
            if slot not in skipped:
                found.append(slot)
        return found

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "status": self.status.value,
            "timezone": self.zone,
            "issue": self.issue_slug,
            "next_run": self.local(self.next_run).isoformat() if self.next_run else None,
        }
        if self.kind is ScheduleKind.CADENCE and self.every and self.at and self.start:
            out["every"] = {"count": self.every.count, "unit": self.every.unit.value}
            out["weekday"] = self.weekday
            out["at"] = self.at.strftime("%H:%M")
            out["from"] = self.start.isoformat()
            out["skipping"] = [self.local(s).isoformat() for s in self.skipping]
        else:
            out["at"] = self.local(self.run_at).isoformat() if self.run_at else None
        return out


@dataclass(frozen=True)
class Overview:
    schedules: list[ScheduleInfo]
    recent: list[OccurrenceInfo]  # the last occurrences of all schedules, newest first

    def to_json(self) -> dict[str, Any]:
        return {
            "schedules": [s.to_json() for s in self.schedules],
            "occurrences": [o.to_json() for o in self.recent],
        }


# --- reading --------------------------------------------------------------------------


def _info(conn: Connection, row: AnyRow, now: datetime) -> ScheduleInfo:
    upcoming = next_slot(conn, row, now)
    if row.kind is ScheduleKind.ONCE:
        issue = conn.execute(
            select(I.c.slug, I.c.title, I.c.status).where(I.c.id == row.issue_id)
        ).one()
        return ScheduleInfo(
            row.id,
            row.kind,
            row.status,
            row.timezone,
            issue.slug,
            upcoming,
            issue_title=issue.title,
            issue_status=IssueStatus(issue.status),
            run_at=row.run_at,
        )
    picked = pick_issue(conn) if row.status in SEEKING else None
    skipping = list(
        conn.scalars(
            select(OCC.c.slot_at)
            .where(
                OCC.c.schedule_id == row.id,
                OCC.c.slot_at > now,
                OCC.c.outcome == OccurrenceOutcome.CANCELLED,
            )
            .order_by(OCC.c.slot_at)
        )
    )
    cadence = cadence_of(row)
    return ScheduleInfo(
        row.id,
        row.kind,
        row.status,
        row.timezone,
        picked.slug if picked else None,
        upcoming,
        issue_title=picked.title if picked else None,
        issue_status=IssueStatus.READY if picked else None,
        every=cadence.every,
        at=cadence.at,
        start=cadence.start,
        skipping=skipping,
    )


def _row(conn: Connection, schedule_id: int, *, lock: bool = False) -> AnyRow:
    if not 0 < schedule_id <= ID_MAX:
        raise ScheduleNotFound(schedule_id)
    query = select(SCH).where(SCH.c.id == schedule_id)
    row = conn.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise ScheduleNotFound(schedule_id)
    return row


def schedule_info(db: Database, schedule_id: int, *, now: datetime | None = None) -> ScheduleInfo:
    with db.engine.connect() as conn:
        return _info(conn, _row(conn, schedule_id), now or utcnow())


def _schedules(conn: Connection, now: datetime, everything: bool) -> list[ScheduleInfo]:
    query = select(SCH).order_by(SCH.c.id)
    if not everything:
        query = query.where(SCH.c.status.in_(SEEKING))
    return [_info(conn, row, now) for row in conn.execute(query).all()]


def _history(
    conn: Connection, now: datetime, limit: int, schedule_id: int | None = None
) -> list[OccurrenceInfo]:
    query = (
        select(OCC, SCH.c.timezone, I.c.slug, C.c.status.label("campaign_status"))
        .select_from(
            OCC.join(SCH, SCH.c.id == OCC.c.schedule_id)
            .outerjoin(I, I.c.id == OCC.c.issue_id)
            .outerjoin(C, C.c.id == OCC.c.campaign_id)
        )
        .where(OCC.c.slot_at <= now)
        .order_by(OCC.c.slot_at.desc(), OCC.c.id.desc())
        .limit(limit)
    )
    if schedule_id is not None:
        query = query.where(OCC.c.schedule_id == schedule_id)
    return [
        OccurrenceInfo(
            r.schedule_id,
            r.slot_at,
            r.timezone,
            r.outcome,
            r.reason,
            r.slug,
            r.campaign_id,
            r.campaign_status,
        )
        for r in conn.execute(query).all()
    ]


def overview(db: Database, *, everything: bool = False, now: datetime | None = None) -> Overview:
    """Active and paused schedules (``everything``: done and cancelled ones too), and the
    last occurrences of all of them."""
    now = now or utcnow()
    with db.engine.connect() as conn:
        return Overview(_schedules(conn, now, everything), _history(conn, now, RECENT))


def history(
    db: Database,
    *,
    schedule_id: int | None = None,
    limit: int = RECENT,
    now: datetime | None = None,
) -> list[OccurrenceInfo]:
    """What became of the last ``limit`` slots (of one schedule, or of all), newest first."""
    with db.engine.connect() as conn:
        return _history(conn, now or utcnow(), max(1, limit), schedule_id)


def next_send(db: Database, *, now: datetime | None = None) -> ScheduleInfo | None:
    """The schedule that sends soonest, with its next slot and what it would send then
    (None: nothing is scheduled, or everything is paused)."""
    now = now or utcnow()
    with db.engine.connect() as conn:
        upcoming = [s for s in _schedules(conn, now, False) if s.next_run is not None]
    return min(upcoming, key=lambda s: (s.next_run, s.id), default=None)


# --- what staff say -------------------------------------------------------------------


def add_cadence(
    db: Database,
    settings: Settings,
    *,
    every: str,
    on: str | None,
    at: str,
    tz: str | None = None,
    start: str | None = None,
    now: datetime | None = None,
) -> ScheduleInfo:
    """Every ``every`` (``2w``) on weekday ``on`` (``fri``; weekly cadences only) at ``at``
    (``09:00``) on the wall clock of ``tz`` (default ``DIGESTMAIL_TIMEZONE``), from the
    date ``start`` (default today), the first slot still ahead.

    Refused when a slot in the next years falls in a DST gap (the clocks skip that time,
    and the whole occurrence would be lost); a time that happens twice is sent at the
    earlier one.
    """
    now = now or utcnow()
    interval = parse_every(every)
    weekday = parse_weekday(on) if on is not None else None
    if interval.unit is IntervalUnit.WEEK and weekday is None:
        raise MissingValue(Field.WEEKDAY, needed=True)
    if interval.unit is IntervalUnit.DAY and weekday is not None:
        raise MissingValue(Field.WEEKDAY, needed=False)
    at_time = parse_time_of_day(at)
    zone_name = tz.strip() if tz else settings.timezone
    zone(zone_name)
    tz_today = now.astimezone(zone(zone_name)).date()
    earliest = parse_date(start) if start is not None else tz_today
    begin = first_date(interval, weekday, at_time, zone_name, earliest, now)
    gap = Cadence(interval, at_time, zone_name, begin).skipped_day()
    if gap is not None:
        raise gap
    with db.engine.begin() as conn:
        result = conn.execute(
            insert(SCH).values(
                kind=ScheduleKind.CADENCE,
                status=ScheduleStatus.ACTIVE,
                every=interval.count,
                unit=interval.unit,
                at_time=at_time,
                start_date=begin,
                timezone=zone_name,
                version=1,
                settled_until=now,
                created_at=now,
                updated_at=now,
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        return _info(conn, _row(conn, int(pk[0])), now)


def add_one_off(
    db: Database,
    settings: Settings,
    slug: str,
    *,
    at: str,
    tz: str | None = None,
    now: datetime | None = None,
) -> ScheduleInfo:
    """Send the issue at ``at`` (ISO 8601 with an offset, or a local time in ``tz``,
    default ``DIGESTMAIL_TIMEZONE``); the issue is marked ready.

    Refused for a time in the past or one the clocks skip or pass twice, an unknown
    issue, one already sent (or with a campaign already), one already scheduled.
    """
    now = now or utcnow()
    zone_name = tz.strip() if tz else settings.timezone
    zone(zone_name)
    moment = parse_moment(at, zone_name)
    if moment <= now:
        raise InThePast(moment, now)
    with db.engine.connect() as conn:
        _issue(conn, slug)
    # A campaign of it already (finished, failed, unfinished): sending it again is a
    # decision for a person, not for a schedule.
    check_new_campaign(db, slug, audience=False)
    with db.engine.begin() as conn:
        issue = _issue(conn, slug)
        _refuse_scheduled(conn, issue)
        conn.execute(update(I).where(I.c.id == issue.id).values(status=IssueStatus.READY))
        result = conn.execute(
            insert(SCH).values(
                kind=ScheduleKind.ONCE,
                status=ScheduleStatus.ACTIVE,
                issue_id=issue.id,
                run_at=moment,
                timezone=zone_name,
                version=1,
                settled_until=now,
                created_at=now,
                updated_at=now,
            )
        )
        pk = result.inserted_primary_key
        assert pk is not None
        return _info(conn, _row(conn, int(pk[0])), now)


def _issue(conn: Connection, slug: str) -> AnyRow:
    issue = conn.execute(
        select(I.c.id, I.c.slug, I.c.status, I.c.sent_at).where(I.c.slug == slug).with_for_update()
    ).one_or_none()
    if issue is None:
        raise IssueNotFound(slug)
    if issue.status is IssueStatus.SENT:
        raise IssueSent(slug, issue.sent_at)
    return issue


def _refuse_scheduled(conn: Connection, issue: AnyRow) -> None:
    waiting = conn.execute(
        select(SCH.c.id, SCH.c.run_at, SCH.c.timezone)
        .where(
            SCH.c.issue_id == issue.id,
            SCH.c.kind == ScheduleKind.ONCE,
            SCH.c.status.in_(SEEKING),
        )
        .order_by(SCH.c.id)
        .limit(1)
    ).one_or_none()
    if waiting is not None:
        raise AlreadyScheduled(issue.slug, waiting.id, waiting.run_at, waiting.timezone)


def _change(conn: Connection, row: AnyRow, now: datetime, **values: Any) -> None:
    conn.execute(
        update(SCH)
        .where(SCH.c.id == row.id)
        .values(version=SCH.c.version + 1, updated_at=now, **values)
    )


# Which statuses each change applies to, and the status it leads to.
_TRANSITIONS: dict[Action, tuple[tuple[ScheduleStatus, ...], ScheduleStatus]] = {
    Action.CANCEL: (SEEKING, ScheduleStatus.CANCELLED),
    Action.PAUSE: ((ScheduleStatus.ACTIVE,), ScheduleStatus.PAUSED),
    Action.RESUME: ((ScheduleStatus.PAUSED,), ScheduleStatus.ACTIVE),
}


def _transition(
    db: Database,
    schedule_id: int,
    action: Action,
    now: datetime,
    check: Callable[[AnyRow], None] | None = None,
    **values: Any,
) -> ScheduleInfo:
    allowed, status = _TRANSITIONS[action]
    with db.engine.begin() as conn:
        row = _row(conn, schedule_id, lock=True)
        if row.status not in allowed:
            raise WrongState(row.id, row.kind, row.status, action)
        if check is not None:
            check(row)
        _change(conn, row, now, status=status, **values)
        return _info(conn, _row(conn, schedule_id), now)


def cancel(db: Database, schedule_id: int, *, now: datetime | None = None) -> ScheduleInfo:
    """Stop the schedule for good (its occurrences stay on record)."""
    return _transition(db, schedule_id, Action.CANCEL, now or utcnow())


def pause(db: Database, schedule_id: int, *, now: datetime | None = None) -> ScheduleInfo:
    """Send nothing until resumed; slots that pass meanwhile are not sent later."""
    return _transition(db, schedule_id, Action.PAUSE, now or utcnow())


def resume(db: Database, schedule_id: int, *, now: datetime | None = None) -> ScheduleInfo:
    """Send again from the next slot on (a one-off whose time passed must be moved)."""
    now = now or utcnow()

    def still_ahead(row: AnyRow) -> None:
        if row.kind is ScheduleKind.ONCE and row.run_at <= now:
            raise InThePast(row.run_at, now)

    return _transition(db, schedule_id, Action.RESUME, now, still_ahead, settled_until=now)


def move(
    db: Database,
    schedule_id: int,
    *,
    at: str,
    tz: str | None = None,
    now: datetime | None = None,
) -> ScheduleInfo:
    """A one-off send at another time (read in ``tz``, default the schedule's own zone)."""
    now = now or utcnow()
    with db.engine.begin() as conn:
        row = _row(conn, schedule_id, lock=True)
        if row.kind is not ScheduleKind.ONCE or row.status not in SEEKING:
            raise WrongState(row.id, row.kind, row.status, Action.MOVE)
        zone_name = tz.strip() if tz else row.timezone
        zone(zone_name)
        moment = parse_moment(at, zone_name)
        if moment <= now:
            raise InThePast(moment, now)
        _change(conn, row, now, run_at=moment, timezone=zone_name, reminded_for=None)
        return _info(conn, _row(conn, schedule_id), now)


def skip(
    db: Database, schedule_id: int, *, on: str, now: datetime | None = None
) -> tuple[ScheduleInfo, datetime]:
    """Cancel the cadence's one occurrence on that local date; returns it and the slot."""
    now = now or utcnow()
    day = parse_date(on)
    with db.engine.begin() as conn:
        row = _row(conn, schedule_id, lock=True)
        if row.kind is not ScheduleKind.CADENCE or row.status not in SEEKING:
            raise WrongState(row.id, row.kind, row.status, Action.SKIP)
        cadence = cadence_of(row)
        slot = cadence.on(day)
        if slot is None:
            nearest, probe = [], max(now, _midnight(day, row.timezone))
            for _ in range(3):
                probe = cadence.after(probe)
                nearest.append(probe)
            raise NoOccurrenceOn(row.id, day, row.timezone, nearest)
        if slot <= now:
            raise InThePast(slot, now)
        done = conn.scalar(
            select(OCC.c.outcome).where(OCC.c.schedule_id == row.id, OCC.c.slot_at == slot)
        )
        if done is None:
            conn.execute(
                insert(OCC).values(
                    schedule_id=row.id,
                    slot_at=slot,
                    outcome=OccurrenceOutcome.CANCELLED,
                    recorded_at=now,
                )
            )
        return _info(conn, _row(conn, schedule_id), now), slot


def _midnight(day: date, zone_name: str) -> datetime:
    return datetime.combine(day, time(0), zone(zone_name)) - timedelta(seconds=1)


@dataclass(frozen=True)
class Readiness:
    """An issue's readiness after a change, and the one-off sends waiting for it."""

    slug: str
    status: IssueStatus
    waiting: list[ScheduleInfo]


def set_ready(db: Database, slug: str, ready: bool, *, now: datetime | None = None) -> Readiness:
    """Mark an unsent issue ready (a cadence may send it; a one-off will) or a draft
    (``issues.set_ready``), and say which one-off sends wait for it."""
    now = now or utcnow()
    try:
        issue = issues.set_ready(db, slug, ready)
    except issues.IssueAlreadySent:
        sent = issues.get_issue(db, slug)
        raise IssueSent(slug, sent.sent_at if sent else None) from None
    if issue is None:
        raise IssueNotFound(slug)
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(SCH)
            .where(
                SCH.c.issue_id == issue.id,
                SCH.c.kind == ScheduleKind.ONCE,
                SCH.c.status.in_(SEEKING),
            )
            .order_by(SCH.c.id)
        ).all()
        return Readiness(slug, issue.status, [_info(conn, row, now) for row in rows])
