"""What needs staff's attention now: the warnings on the admin's dashboard, as facts.

Each ``Concern`` says what is wrong and where (a schedule and its slot, a campaign, a
figure) and how much it matters (``stats.Level``: a warning, or an alarm that needs
someone today). The admin turns them into sentences with links; nothing here knows
about pages. The rules, in ``concerns``:

- a send whose time passed with nothing recorded: no scheduler is running (alarm);
- the next send of a cadence with no issue ready, or of a one-off whose issue is a
  draft again (an alarm within a day of it, a warning before);
- sends missed or skipped in the last two weeks (warning);
- campaigns stopped by a problem: failed (alarm), or paused by the sender (warning);
- campaigns left ``sending`` with nobody sending them (warning: the scheduler resumes
  them within a minute, so one that stays needs a look);
- a complaint rate past 0.1% (warning) or 0.3% (alarm) in one of the last campaigns.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from digestmail import scheduling, stats
from digestmail.campaigns.tables import C, I
from digestmail.db import Database
from digestmail.models import (
    CampaignStatus,
    OccurrenceOutcome,
    ScheduleKind,
    SkipReason,
    StopReason,
    utcnow,
)
from digestmail.scheduling import occurrences
from digestmail.stats import Level

# How long a missed or skipped send stays on the dashboard (one period of the digest).
RECENT_TROUBLE = timedelta(days=14)
# Sends looked at for RECENT_TROUBLE (more than two weeks of any sane rhythm).
_HISTORY = 50
# The latest campaigns whose complaint rate is watched.
COMPLAINTS_WATCHED = 5
# Nothing ready this close to a send is an alarm (when staff get their reminder too).
SOON = occurrences.REMIND_AHEAD


class ConcernKind(enum.StrEnum):
    OVERDUE = "overdue"  # a send's time passed and no scheduler took it
    NOTHING_READY = "nothing_ready"  # a cadence's next send has no issue ready
    DRAFT = "draft"  # a one-off send's issue is a draft again
    MISSED = "missed"  # a send recorded as missed (the scheduler was down too long)
    SKIPPED = "skipped"  # a send that sent nothing (``skip_reason`` says why)
    STOPPED = "stopped"  # a campaign stopped by a problem (failed, or paused by its sender)
    STALLED = "stalled"  # a campaign left sending, nobody sending it
    COMPLAINTS = "complaints"  # a campaign's complaint rate past the warning line


@dataclass(frozen=True)
class Concern:
    kind: ConcernKind
    level: Level
    schedule_id: int | None = None
    slot: datetime | None = None  # the send concerned (UTC)
    zone: str = "UTC"  # the schedule's zone, to show the slot in
    campaign_id: int | None = None
    issue_slug: str | None = None
    skip_reason: SkipReason | None = None
    stop_reason: StopReason | None = None
    campaign_status: CampaignStatus | None = None
    rate: float | None = None  # the complaint rate


def _schedules(db: Database, now: datetime) -> list[Concern]:
    found = [
        Concern(ConcernKind.OVERDUE, Level.ALARM, o.schedule_id, o.slot, o.zone, issue_slug=o.slug)
        for o in occurrences.overdue(db, now)
    ]
    for s in scheduling.overview(db, now=now).schedules:
        if s.next_run is None or s.sends_an_issue:
            continue
        level = Level.ALARM if s.next_run - now <= SOON else Level.WARNING
        kind = ConcernKind.NOTHING_READY if s.kind is ScheduleKind.CADENCE else ConcernKind.DRAFT
        found.append(Concern(kind, level, s.id, s.next_run, s.zone, issue_slug=s.issue_slug))
    for o in scheduling.history(db, limit=_HISTORY, now=now):
        if o.slot < now - RECENT_TROUBLE:
            break
        if o.outcome is OccurrenceOutcome.MISSED:
            found.append(
                Concern(
                    ConcernKind.MISSED,
                    Level.WARNING,
                    o.schedule_id,
                    o.slot,
                    o.zone,
                    issue_slug=o.issue_slug,
                )
            )
        elif o.outcome is OccurrenceOutcome.SKIPPED:
            found.append(
                Concern(
                    ConcernKind.SKIPPED,
                    Level.WARNING,
                    o.schedule_id,
                    o.slot,
                    o.zone,
                    issue_slug=o.issue_slug,
                    skip_reason=o.reason,
                )
            )
    return found


def _campaigns(db: Database, now: datetime) -> list[Concern]:
    stalled = [cid for cid, _gone in occurrences.stalled(db, now)]
    with db.engine.connect() as conn:
        stopped = conn.execute(
            select(C.c.id, C.c.status, C.c.error_reason, I.c.slug)
            .select_from(C.join(I, I.c.id == C.c.issue_id))
            .where(
                C.c.is_test.is_(False),
                or_(
                    C.c.status == CampaignStatus.FAILED,
                    and_(C.c.status == CampaignStatus.PAUSED, C.c.error_reason.is_not(None)),
                ),
            )
            .order_by(C.c.id)
        ).all()
        slugs = dict(
            conn.execute(
                select(C.c.id, I.c.slug)
                .select_from(C.join(I, I.c.id == C.c.issue_id))
                .where(C.c.id.in_(stalled))
            ).all()
        )
    found = [
        Concern(
            ConcernKind.STOPPED,
            Level.ALARM if r.status is CampaignStatus.FAILED else Level.WARNING,
            campaign_id=r.id,
            issue_slug=r.slug,
            stop_reason=StopReason(r.error_reason) if r.error_reason else None,
            campaign_status=CampaignStatus(r.status),
        )
        for r in stopped
    ]
    found += [
        Concern(ConcernKind.STALLED, Level.WARNING, campaign_id=cid, issue_slug=slugs.get(cid))
        for cid in stalled
    ]
    found += [
        Concern(
            ConcernKind.COMPLAINTS,
            f.complaint_level,
            campaign_id=f.campaign_id,
            issue_slug=f.issue_slug,
            rate=f.rates["complained"],
        )
        for f in stats.recent_figures(db, last=COMPLAINTS_WATCHED)
        if f.complaint_level is not Level.OK
    ]
    return found


def concerns(db: Database, *, now: datetime | None = None) -> list[Concern]:
    """Everything that needs a look, alarms first."""
    now = now or utcnow()
    found = _schedules(db, now) + _campaigns(db, now)
    return sorted(found, key=lambda c: c.level is not Level.ALARM)
