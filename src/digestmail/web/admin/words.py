"""The facts of the code below in the admin's words (the CLI has its own, with commands).

Plain words for people who are not programmers: what happened, and which button to
press next. Campaigns, schedules and their outcomes, what needs attention, figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digestmail.attention import Concern, ConcernKind
from digestmail.campaigns import (
    CampaignError,
    CampaignExists,
    CampaignInfo,
    CampaignNotFound,
    EmptyAudience,
    IssueNotFound,
    LeaseHeld,
    LeaseLost,
    MessageNotBuilt,
    WrongStatus,
)
from digestmail.models import (
    CampaignStatus,
    IntervalUnit,
    IssueStatus,
    OccurrenceOutcome,
    ScheduleKind,
    ScheduleStatus,
    StopReason,
)
from digestmail.notify import SKIP_WORDS, STOP_WORDS
from digestmail.notify import when as zoned
from digestmail.scheduling import (
    Action,
    AlreadyScheduled,
    AmbiguousTime,
    BadValue,
    Field,
    InThePast,
    IssueSent,
    MissingValue,
    NonexistentTime,
    NoOccurrenceOn,
    OccurrenceInfo,
    ScheduleError,
    ScheduleInfo,
    ScheduleNotFound,
    WrongState,
)
from digestmail.scheduling.times import WEEKDAYS
from digestmail.stats import Level

STATUS = {
    CampaignStatus.SCHEDULED: "Waiting to start",
    CampaignStatus.SENDING: "Sending",
    CampaignStatus.PAUSED: "Paused",
    CampaignStatus.SENT: "Sent",
    CampaignStatus.CANCELLED: "Cancelled",
    CampaignStatus.FAILED: "Stopped by a problem",
}

# "This sending …" in a sentence.
_IS = {
    CampaignStatus.SCHEDULED: "is waiting to start",
    CampaignStatus.SENDING: "is being sent",
    CampaignStatus.PAUSED: "is paused",
    CampaignStatus.SENT: "has finished",
    CampaignStatus.CANCELLED: "was cancelled",
    CampaignStatus.FAILED: "was stopped by a problem",
}

ISSUE_STATUS = {
    IssueStatus.DRAFT: "Draft",
    IssueStatus.READY: "Ready to send",
    IssueStatus.SENT: "Sent",
}


def when(value: datetime | None) -> str:
    return value.strftime("%d %b %Y, %H:%M UTC") if value else ""


def campaign_problem(exc: CampaignError) -> str:
    """One sentence for a refusal of the campaign code."""
    if isinstance(exc, CampaignNotFound):
        return "That sending does not exist (any more)."
    if isinstance(exc, IssueNotFound):
        return "That issue does not exist (any more)."
    if isinstance(exc, CampaignExists):
        if exc.unfinished and exc.status is not None:
            return (
                f"A sending of this issue {_IS[exc.status]}. Continue or cancel it before "
                "starting another."
            )
        if exc.failed:
            return (
                "The last sending of this issue stopped because of a problem. You can "
                "continue it, or start a new sending to everyone."
            )
        done = f" on {when(exc.finished_at)}" if exc.finished_at else ""
        return f"This issue was already sent{done}."
    if isinstance(exc, EmptyAudience):
        return "Nobody is subscribed (confirmed) yet, so there is nobody to send this issue to."
    if isinstance(exc, WrongStatus):
        return f"This sending {_IS[exc.status]}, so that cannot be done now."
    if isinstance(exc, LeaseHeld):
        return "This sending is already going on (another process is sending it)."
    if isinstance(exc, LeaseLost):
        return "Another process took over this sending; it goes on there."
    if isinstance(exc, MessageNotBuilt):
        return (
            f"The issue cannot be made into an email: {exc.reason}. Fix the issue file "
            "and upload it again."
        )
    return str(exc)


def stop_reason(info: CampaignInfo) -> str | None:
    """Why the sending stopped short of everyone, and what to do; None if it did not."""
    facts = info.error_data
    detail = (info.error or "").rstrip(".")
    match info.error_reason:
        case None:
            return info.error
        case StopReason.REFUSED:
            return f"The mail service refused it: {detail}. Fix the cause, then press Continue."
        case StopReason.KEPT_FAILING:
            return (
                f"The mail service kept failing ({facts.get('tries', 'several')} tries): "
                f"{detail}. Press Continue once it works again."
            )
        case StopReason.WAIT_TOO_LONG:
            until = facts.get("until")
            later = f" after {when(datetime.fromisoformat(until))}" if until else " later"
            return f"The mail service asked us to wait: {detail}. Press Continue{later}."
        case StopReason.UNCERTAIN:
            n = facts.get("recipients", info.in_flight_unknown)
            return (
                f"The mail service did not say whether it took the last {n} messages: "
                f"{detail}. Continue sends to them again (some may get the issue twice)."
            )
        case StopReason.UNBUILDABLE:
            return (
                f"The issue cannot be made into an email: {detail}. Fix the issue file, "
                "upload it again, then press Continue."
            )
        case StopReason.INTERRUPTED:
            return "The sending was interrupted. Press Continue to go on."
        case StopReason.UNEXPECTED:
            return f"An unexpected error stopped it: {detail}. Press Continue once it is fixed."
        case StopReason.NO_AUDIENCE:
            return "Nobody was subscribed when it started, so nothing was sent."


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def ago(moment: datetime, now: datetime) -> str:
    """How far a moment is from now, in the largest unit that says it: "in 3 days"."""
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    unit, length = next(((u, n) for u, n in _UNITS if size >= n), ("second", 1))
    n = int(size // length)
    amount = f"{n} {unit}{'' if n == 1 else 's'}"
    return f"in {amount}" if seconds >= 0 else f"{amount} ago"


# --- schedules ---------------------------------------------------------------------------

SCHEDULE_STATUS = {
    ScheduleStatus.ACTIVE: "Active",
    ScheduleStatus.PAUSED: "Paused",
    ScheduleStatus.DONE: "Done",
    ScheduleStatus.CANCELLED: "Cancelled",
}

# What a form field expects, for a refusal of what was typed.
_EXPECTED = {
    Field.EVERY: "a number of weeks or days",
    Field.WEEKDAY: "a weekday",
    Field.TIME_OF_DAY: "a time of day, such as 09:00",
    Field.MOMENT: "a date and a time of day",
    Field.DATE: "a date",
    Field.ZONE: "a time zone, such as America/New_York, Europe/Berlin or UTC",
}

_DONE_TO = {
    Action.CANCEL: "cancelled",
    Action.MOVE: "moved",
    Action.SKIP: "skipped",
    Action.PAUSE: "paused",
    Action.RESUME: "continued",
}


def rhythm(info: ScheduleInfo) -> str:
    """What a schedule does: "Every 2 weeks on Friday at 09:00 (America/New_York)"."""
    if info.kind is ScheduleKind.ONCE or info.every is None or info.at is None:
        what = f"“{info.issue_title or info.issue_slug}”" if info.issue_slug else "an issue"
        return f"Once: {what}"
    count, unit = info.every.count, info.every.unit
    if unit is IntervalUnit.WEEK:
        every = "Every week" if count == 1 else f"Every {count} weeks"
        day = WEEKDAYS[info.weekday or 0].capitalize()
        return f"{every} on {day} at {info.at:%H:%M} ({info.zone})"
    every = "Every day" if count == 1 else f"Every {count} days"
    return f"{every} at {info.at:%H:%M} ({info.zone})"


def outcome(o: OccurrenceInfo) -> str:
    """What became of one send of a schedule."""
    if o.outcome is OccurrenceOutcome.SENT:
        if o.campaign_status in (None, CampaignStatus.SENT):
            return f"Sent “{o.issue_slug}”"
        return f"Started sending “{o.issue_slug}” (now: {STATUS[o.campaign_status].lower()})"
    if o.outcome is OccurrenceOutcome.SKIPPED:
        why = SKIP_WORDS[o.reason] if o.reason else "no reason was recorded"
        return f"Nothing sent: {why}"
    if o.outcome is OccurrenceOutcome.MISSED:
        return (
            "Missed: the scheduler was not running at the time, and it was too late to send "
            "when it came back"
        )
    return "Skipped by staff"


def schedule_problem(exc: ScheduleError | CampaignError, *, choosing: bool = False) -> str:
    """One sentence for a refusal of the scheduling code. ``choosing``: the page offers
    the moments a time the clocks skip or pass twice could mean (``time_choice``)."""
    if isinstance(exc, CampaignError):
        if isinstance(exc, CampaignExists):
            return (
                "This issue already has a sending (finished, or waiting to be continued), "
                "so it is not scheduled again. To send it once more, use “Send again…” on "
                "its page."
            )
        return campaign_problem(exc)
    if isinstance(exc, BadValue):
        if exc.field is Field.EVERY:
            return "Give how often as a number of weeks from 1 to 52 (or of days, up to 366)."
        if exc.field is Field.MOMENT:
            return "The date and time could not be read: give a date and a time such as 09:30."
        extra = f" ({exc.problem})" if exc.problem else ""
        typed = f"“{exc.value}”" if exc.value.strip() else "Nothing"
        return f"{typed} is not {_EXPECTED[exc.field]}{extra}."
    if isinstance(exc, MissingValue):
        if exc.needed:
            return "Choose the weekday it goes out on."
        return "A rhythm in days has no weekday: choose weeks, or leave the weekday out."
    if isinstance(exc, NonexistentTime):
        said = (
            f"{exc.local:%d %b %Y, %H:%M} does not exist in {exc.zone}: the clocks skip that "
            "hour when summer time starts"
        )
        if choosing:
            return f"{said}. Choose one of the times either side of it, or another time."
        return f"{said}, and the send would be lost. Choose another time."
    if isinstance(exc, AmbiguousTime):
        return (
            f"{exc.local:%d %b %Y, %H:%M} happens twice in {exc.zone}: the clocks go back "
            "that night. Choose which one you mean."
        )
    if isinstance(exc, InThePast):
        return (
            f"That time has passed (it is now {exc.now:%d %b %Y, %H:%M} UTC). Choose a later time."
        )
    if isinstance(exc, ScheduleNotFound):
        return "That schedule does not exist (any more)."
    if isinstance(exc, WrongState):
        return _wrong_state(exc)
    if isinstance(exc, AlreadyScheduled):
        return (
            f"“{exc.slug}” is already scheduled for {zoned(exc.run_at, exc.zone)}. Move "
            "that send, or cancel it first."
        )
    if isinstance(exc, IssueSent):
        sent = f" on {exc.sent_at:%d %b %Y}" if exc.sent_at else ""
        return (
            f"“{exc.slug}” was already sent{sent}, so it is not scheduled. To send it once "
            "more, use “Send again…” on its page."
        )
    if isinstance(exc, NoOccurrenceOn):
        nearest = ", ".join(f"{zoned(s, exc.zone)}" for s in exc.nearest)
        return f"There is no send on {exc.day:%d %b %Y}. The next ones: {nearest}."
    return str(exc)


@dataclass(frozen=True)
class TimeChoice:
    """The question a form asks about a time the clocks skip or pass twice: its legend,
    and its options as (value of the form's ``moment`` field, words); the last option,
    with no value, keeps the date and time as typed."""

    legend: str
    options: list[tuple[str, str]]


def time_choice(exc: ScheduleError | CampaignError) -> TimeChoice | None:
    """The moments a local time could mean, to choose from; None for other refusals."""
    if isinstance(exc, AmbiguousTime):
        legend = "That time happens twice: which one?"
        notes = ("the first, before the clocks go back", "the second, after the clocks go back")
    elif isinstance(exc, NonexistentTime):
        legend = "That time does not exist that day: which did you mean?"
        notes = ("before the clocks go forward", "after the clocks go forward")
    else:
        return None
    options = [
        (moment.isoformat(), f"{zoned(moment, exc.zone)} ({note})")
        for moment, note in zip(exc.choices, notes, strict=True)
    ]
    return TimeChoice(legend, [*options, ("", "Another time: the date and time below")])


def _wrong_state(exc: WrongState) -> str:
    if exc.action is Action.MOVE and exc.kind is ScheduleKind.CADENCE:
        return (
            "A rhythm does not move. To send one issue at another time, skip that send and "
            "schedule the issue on its own."
        )
    if exc.action is Action.SKIP and exc.kind is ScheduleKind.ONCE:
        return "A send of one issue is not skipped: move it, or cancel it."
    if exc.action is Action.PAUSE and exc.status is ScheduleStatus.PAUSED:
        return "It is paused already."
    if exc.action is Action.RESUME and exc.status is ScheduleStatus.ACTIVE:
        return "It is not paused."
    state = SCHEDULE_STATUS[exc.status].lower()
    return f"This schedule is {state}, so it cannot be {_DONE_TO[exc.action]}."


# --- what needs attention ------------------------------------------------------------------

LEVEL = {Level.OK: "", Level.WARNING: "Warning", Level.ALARM: "Alarm"}


def percent(rate: float) -> str:
    """A share as staff read it: one decimal below 10% (complaints live there)."""
    return f"{rate * 100:.1f}%" if rate < 0.1 else f"{rate * 100:.0f}%"


def complaints(level: Level) -> str | None:
    """What a complaint rate's level means, and what to do; None when it is fine."""
    if level is Level.WARNING:
        return (
            "Complaints passed 0.1% of delivered mail. Mail services watch this figure: "
            "check that everyone on the list asked for the digest."
        )
    if level is Level.ALARM:
        return (
            "Complaints reached 0.3% of delivered mail, the rate at which Gmail and Yahoo "
            "start refusing or slowing down a sender. Look at how addresses came onto the "
            "list before the next send."
        )
    return None


@dataclass(frozen=True)
class Said:
    """A concern in words, with where to go about it."""

    text: str
    href: str
    link: str


def concern(c: Concern) -> Said:
    slot = zoned(c.slot, c.zone) if c.slot else ""
    schedule = f"/admin/schedule/{c.schedule_id}" if c.schedule_id else "/admin/schedule"
    sending = f"/admin/campaigns/{c.campaign_id}"
    issue = f"“{c.issue_slug}”"
    match c.kind:
        case ConcernKind.OVERDUE:
            return Said(
                f"The send due {slot} has not started: the scheduler does not seem to be "
                "running. Ask whoever runs the server to check it.",
                schedule,
                "The schedule",
            )
        case ConcernKind.NOTHING_READY:
            return Said(
                f"No issue is ready for the send on {slot}. Mark one ready to send before "
                "then, or nothing goes out.",
                "/admin/issues",
                "Issues",
            )
        case ConcernKind.DRAFT:
            return Said(
                f"{issue} is scheduled for {slot} but is a draft. Mark it ready to send "
                "before then, or that send is skipped.",
                f"/admin/issues/{c.issue_slug}",
                "The issue",
            )
        case ConcernKind.MISSED:
            return Said(
                f"The send due {slot} was missed: the scheduler was not running, and it was "
                "too late to send when it came back. Send the issue by hand if it should "
                "still go out.",
                schedule,
                "The schedule",
            )
        case ConcernKind.SKIPPED:
            why = SKIP_WORDS[c.skip_reason] if c.skip_reason else "no reason was recorded"
            return Said(f"Nothing was sent on {slot}: {why}.", schedule, "The schedule")
        case ConcernKind.STOPPED:
            why = STOP_WORDS[c.stop_reason] if c.stop_reason else "a problem"
            if c.campaign_status is CampaignStatus.FAILED:
                text = f"The sending of {issue} was stopped by a problem: {why}."
            else:
                text = f"The sending of {issue} paused by itself: {why}."
            return Said(f"{text} Open it to continue or cancel it.", sending, "The sending")
        case ConcernKind.STALLED:
            return Said(
                f"The sending of {issue} stopped without finishing: whatever was sending it "
                "has gone. The scheduler continues such a sending within a minute; if this "
                "stays, press Continue on its page.",
                sending,
                "The sending",
            )
        case ConcernKind.COMPLAINTS:
            rate = percent(c.rate or 0.0)
            return Said(
                f"{rate} of the people who got {issue} marked it as spam. "
                f"{complaints(c.level) or ''}",
                sending,
                "Its figures",
            )
