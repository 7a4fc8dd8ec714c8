"""``digestmail schedule …`` and ``digestmail issue ready|unready``: when issues go out.

``schedule SLUG --at TIME`` schedules one issue; ``schedule cadence|list|cancel|move|
skip|pause|resume`` are subcommands of the same group: a first word that names no
subcommand is read as an issue's slug (``_ScheduleGroup``). The work is in
``digestmail.scheduling``; this module turns its facts into sentences with the command
to type next.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from digestmail import scheduling
from digestmail.campaigns import CampaignError
from digestmail.cli.common import console, database, err_console, fail
from digestmail.cli.send import campaign_problem
from digestmail.config import get_settings
from digestmail.db import Database
from digestmail.models import IntervalUnit, OccurrenceOutcome, ScheduleKind, ScheduleStatus
from digestmail.notify import SKIP_WORDS
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
from digestmail.scheduling.times import WEEKDAYS, zone

ONE_OFF = "one-off"


class _ScheduleGroup(TyperGroup):
    """``schedule SLUG --at TIME``: a first word that is no subcommand is the slug, and
    is handed to the one-off command as its name (its usage line then reads
    ``digestmail schedule SLUG [OPTIONS]``)."""

    # Typer's own click types, which it does not export: ``Any`` stands in for them.
    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return args[0], self.commands[ONE_OFF], args[1:]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_ScheduleGroup,
    no_args_is_help=True,
    help=(
        "When issues go out. `digestmail schedule SLUG --at TIME [--tz ZONE]` sends one "
        "issue at a set time; `schedule cadence` sends the oldest ready issue on a "
        "regular rhythm. The scheduler (`digestmail scheduler`, or `digestmail serve`) "
        "does the sending."
    ),
)


# --- the facts, in words -----------------------------------------------------------------

_SYNTAX = {
    Field.EVERY: "an interval: a number and w (weeks) or d (days), e.g. 2w for every other week",
    Field.WEEKDAY: "a weekday: mon, tue, wed, thu, fri, sat or sun",
    Field.TIME_OF_DAY: "a time of day: HH:MM on the 24-hour clock, e.g. 09:00",
    Field.MOMENT: (
        "a date and time: 2025-03-14T09:00 (local time in the --tz zone, default "
        "DIGESTMAIL_TIMEZONE), or with its offset, 2025-03-14T09:00-04:00"
    ),
    Field.DATE: "a date: YYYY-MM-DD",
    Field.ZONE: "a time zone: a name such as America/New_York, Europe/Berlin or UTC",
}

_DONE_TO = {
    Action.CANCEL: "cancelled",
    Action.MOVE: "moved",
    Action.SKIP: "skipped",
    Action.PAUSE: "paused",
    Action.RESUME: "resumed",
}


def iso(moment: datetime, zone_name: str) -> str:
    """A moment in the zone staff gave, as ISO 8601 with its offset (seconds if any)."""
    local = moment.astimezone(zone(zone_name))
    return local.isoformat(timespec="seconds" if local.second else "minutes")


def when(moment: datetime, zone_name: str) -> str:
    """A moment as people read it, with the ISO form to copy."""
    local = moment.astimezone(zone(zone_name))
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()} ({iso(moment, zone_name)})"


def schedule_problem(exc: ScheduleError | CampaignError) -> str:
    """One line for a refusal, with what to do next."""
    if isinstance(exc, CampaignError):
        return campaign_problem(exc)
    if isinstance(exc, BadValue):
        extra = f" ({exc.problem})" if exc.problem else ""
        return f"{exc.value!r} is not {_SYNTAX[exc.field]}{extra}."
    if isinstance(exc, MissingValue):
        if exc.needed:
            return "A cadence in weeks needs its weekday: add --on fri (or mon … sun)."
        return "--on is for a cadence in weeks (--every 2w); a cadence in days has no weekday."
    if isinstance(exc, NonexistentTime):
        # Clock times, not moments: the advice fits a cadence's --at as well as a one-off's.
        before, after = (f"{c.astimezone(zone(exc.zone)):%H:%M}" for c in exc.choices)
        return (
            f"{exc.local:%Y-%m-%d %H:%M} does not exist in {exc.zone}: the clocks skip that "
            f"hour when daylight saving time starts. Choose another time, such as {before} "
            f"or {after}."
        )
    if isinstance(exc, AmbiguousTime):
        first, second = (iso(c, exc.zone) for c in exc.choices)
        return (
            f"{exc.local:%Y-%m-%d %H:%M} happens twice in {exc.zone} (the clocks go back "
            f"that night): give the offset to say which, {first} or {second}."
        )
    if isinstance(exc, InThePast):
        return (
            f"{exc.moment.isoformat(timespec='minutes')} is in the past (it is now "
            f"{exc.now:%Y-%m-%d %H:%M} UTC); choose a later time."
        )
    if isinstance(exc, ScheduleNotFound):
        return (
            f"There is no schedule {exc.schedule_id}; `digestmail schedule list --all` shows them."
        )
    if isinstance(exc, WrongState):
        return _wrong_state(exc)
    if isinstance(exc, AlreadyScheduled):
        return (
            f"{exc.slug} is already scheduled for {when(exc.run_at, exc.zone)} (schedule "
            f"{exc.schedule_id}); change it with `digestmail schedule move {exc.schedule_id} "
            f"--at TIME`, or `digestmail schedule cancel {exc.schedule_id}` first."
        )
    if isinstance(exc, IssueSent):
        sent = f" on {exc.sent_at:%Y-%m-%d}" if exc.sent_at else ""
        return (
            f"{exc.slug} was already sent{sent}: it cannot be scheduled or marked again. "
            f"`digestmail send {exc.slug} --again` sends it once more, now."
        )
    if isinstance(exc, NoOccurrenceOn):
        nearest = ", ".join(f"{iso(s, exc.zone)[:10]}" for s in exc.nearest)
        return (
            f"Schedule {exc.schedule_id} sends nothing on {exc.day.isoformat()}; its next "
            f"sends are on {nearest}."
        )
    return str(exc)


def _wrong_state(exc: WrongState) -> str:
    sid = exc.schedule_id
    if exc.action is Action.MOVE and exc.kind is ScheduleKind.CADENCE:
        return (
            f"Schedule {sid} is a cadence: only a one-off send moves. To send one "
            f"occurrence at another time, skip it (`digestmail schedule skip {sid} --on "
            "DATE`) and schedule the issue on its own (`digestmail schedule SLUG --at TIME`)."
        )
    if exc.action is Action.SKIP and exc.kind is ScheduleKind.ONCE:
        return (
            f"Schedule {sid} is a one-off send: cancel it (`digestmail schedule cancel "
            f"{sid}`) or move it (`digestmail schedule move {sid} --at TIME`)."
        )
    if exc.action is Action.PAUSE and exc.status is ScheduleStatus.PAUSED:
        return f"Schedule {sid} is paused already (`digestmail schedule resume {sid}`)."
    if exc.action is Action.RESUME and exc.status is ScheduleStatus.ACTIVE:
        return f"Schedule {sid} is not paused: it is active."
    return f"Schedule {sid} is {exc.status.value}: it cannot be {_DONE_TO[exc.action]}."


def describe(info: ScheduleInfo) -> str:
    """What a schedule does, in a few words."""
    if info.kind is ScheduleKind.ONCE or info.every is None or info.at is None:
        return "once"
    count, unit = info.every.count, info.every.unit
    if unit is IntervalUnit.WEEK:
        rhythm = "every week" if count == 1 else f"every {count} weeks"
        day = WEEKDAYS[info.weekday or 0].capitalize()
        return f"{rhythm} on {day} at {info.at:%H:%M} {info.zone}"
    rhythm = "every day" if count == 1 else f"every {count} days"
    return f"{rhythm} at {info.at:%H:%M} {info.zone}"


def outcome_words(o: OccurrenceInfo) -> str:
    if o.outcome is OccurrenceOutcome.SENT:
        status = f" ({o.campaign_status.value})" if o.campaign_status else ""
        return f"sent as campaign {o.campaign_id}{status}: {o.issue_slug}"
    if o.outcome is OccurrenceOutcome.SKIPPED:
        why = SKIP_WORDS[o.reason] if o.reason else "no reason recorded"
        return f"skipped: {why}"
    if o.outcome is OccurrenceOutcome.MISSED:
        return "missed: the scheduler was not running, and the grace ran out"
    return "cancelled by staff"


def _next(info: ScheduleInfo) -> str:
    if info.next_run is not None:
        return iso(info.next_run, info.zone)
    return info.status.value if info.status is not ScheduleStatus.ACTIVE else "-"


# --- commands -----------------------------------------------------------------------------


@app.command(ONE_OFF, hidden=True)
def one_off(
    ctx: typer.Context,
    at: str = typer.Option(..., "--at", help="When: 2025-03-14T09:00, or with its offset."),
    tz: str | None = typer.Option(
        None, "--tz", help="Zone of a time without offset (default: DIGESTMAIL_TIMEZONE)."
    ),
) -> None:
    """Send one issue at a set time (`digestmail schedule SLUG --at TIME`); marks it ready."""
    slug = ctx.info_name or ""
    with database() as db:
        try:
            info = scheduling.add_one_off(db, get_settings(), slug, at=at, tz=tz)
        except (ScheduleError, CampaignError) as exc:
            raise fail(schedule_problem(exc)) from exc
    assert info.run_at is not None
    console.print(
        f"Schedule {info.id}: {slug} goes out {when(info.run_at, info.zone)}. It is marked ready."
    )


@app.command("cadence")
def cadence(
    every: str = typer.Option(..., "--every", help="2w: every other week (or 1w, 7d, …)."),
    on: str | None = typer.Option(None, "--on", help="Weekday: mon … sun (weekly cadences)."),
    at: str = typer.Option(..., "--at", help="Wall-clock time, HH:MM."),
    tz: str | None = typer.Option(
        None, "--tz", help="Time zone, e.g. America/New_York (default: DIGESTMAIL_TIMEZONE)."
    ),
    start: str | None = typer.Option(
        None, "--from", metavar="YYYY-MM-DD", help="First possible date (default: today)."
    ),
) -> None:
    """Send the oldest ready issue on a regular rhythm, at a wall-clock time across DST."""
    with database() as db:
        try:
            info = scheduling.add_cadence(
                db, get_settings(), every=every, on=on, at=at, tz=tz, start=start
            )
        except ScheduleError as exc:
            raise fail(schedule_problem(exc)) from exc
    first = when(info.next_run, info.zone) if info.next_run else "-"
    console.print(f"Schedule {info.id}: {describe(info)}; the first send is {first}.")
    if info.issue_slug:
        console.print(f"It would send {info.issue_slug} (the oldest ready issue not yet sent).")
    else:
        console.print(
            "No issue is ready yet: mark one with `digestmail issue ready SLUG` (or add it "
            "with --ready) before then, or nothing is sent."
        )


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    everything: bool = typer.Option(
        False, "--all", help="Also one-off sends that are done, and cancelled schedules."
    ),
) -> None:
    """Every cadence and one-off send, its next run, and the last outcomes."""
    with database() as db:
        seen = scheduling.overview(db, everything=everything)
    if as_json:
        typer.echo(json.dumps(seen.to_json(), indent=2))
        return
    if not seen.schedules:
        console.print("Nothing is scheduled.")
    else:
        table = Table("ID", "When", "Sends", "Next run", "Status")
        table.columns[3].no_wrap = True
        for s in seen.schedules:
            sends = s.issue_slug or ("none ready" if s.kind is ScheduleKind.CADENCE else "-")
            table.add_row(str(s.id), describe(s), sends, _next(s), s.status.value)
        console.print(table)
        for s in seen.schedules:
            if s.skipping:
                days = ", ".join(iso(x, s.zone)[:10] for x in s.skipping)
                console.print(f"Schedule {s.id} skips {days}.")
    if seen.recent:
        console.print("Last outcomes:")
        for o in seen.recent:
            console.print(f"  {iso(o.slot, o.zone)}  schedule {o.schedule_id}: {outcome_words(o)}")


@app.command("cancel")
def cancel(schedule_id: int = typer.Argument(..., help="Schedule id.")) -> None:
    """Stop a cadence or a one-off send for good (what it did stays on record)."""
    _change(scheduling.cancel, schedule_id, "cancelled")


@app.command("pause")
def pause(schedule_id: int = typer.Argument(..., help="Schedule id.")) -> None:
    """Send nothing until resumed; sends whose time passes meanwhile are not made up."""
    _change(scheduling.pause, schedule_id, "paused")


@app.command("resume")
def resume(schedule_id: int = typer.Argument(..., help="Schedule id.")) -> None:
    """Send again, from the next time on."""
    info = _change(scheduling.resume, schedule_id, "resumed")
    if info.next_run is not None:
        console.print(f"Next send: {when(info.next_run, info.zone)}.")


def _change(
    operation: Callable[[Database, int], ScheduleInfo], schedule_id: int, done: str
) -> ScheduleInfo:
    with database() as db:
        try:
            info = operation(db, schedule_id)
        except ScheduleError as exc:
            raise fail(schedule_problem(exc)) from exc
    console.print(f"Schedule {schedule_id} {done}.")
    return info


@app.command("move")
def move(
    schedule_id: int = typer.Argument(..., help="Schedule id (a one-off send)."),
    at: str = typer.Option(..., "--at", help="The new time: 2025-03-14T09:00, or with offset."),
    tz: str | None = typer.Option(
        None, "--tz", help="Zone of a time without offset (default: the schedule's own)."
    ),
) -> None:
    """Send a one-off at another time."""
    with database() as db:
        try:
            info = scheduling.move(db, schedule_id, at=at, tz=tz)
        except ScheduleError as exc:
            raise fail(schedule_problem(exc)) from exc
    assert info.run_at is not None
    console.print(
        f"Schedule {info.id}: {info.issue_slug} now goes out {when(info.run_at, info.zone)}."
    )


@app.command("skip")
def skip(
    schedule_id: int = typer.Argument(..., help="Schedule id (a cadence)."),
    on: str = typer.Option(..., "--on", metavar="YYYY-MM-DD", help="The day of the send to skip."),
) -> None:
    """Skip one send of a cadence; the ones after it go ahead."""
    with database() as db:
        try:
            info, slot = scheduling.skip(db, schedule_id, on=on)
        except ScheduleError as exc:
            raise fail(schedule_problem(exc)) from exc
    after = f" The next send is {when(info.next_run, info.zone)}." if info.next_run else ""
    console.print(f"Schedule {schedule_id} will not send {when(slot, info.zone)}.{after}")


# --- issue ready | unready -----------------------------------------------------------------


# The commands themselves are registered on the issue group in ``cli/issue_store.py``,
# which imports this module when one of them runs (``issue check`` stays quick).


def readiness(slug: str, is_ready: bool) -> None:
    """``issue ready`` / ``issue unready``: mark the issue, and say what its schedules do."""
    with database() as db:
        try:
            result = scheduling.set_ready(db, slug, is_ready)
        except (ScheduleError, CampaignError) as exc:
            raise fail(schedule_problem(exc)) from exc
    console.print(f"{slug} is {result.status.value}.")
    for s in result.waiting:
        if s.run_at is None:
            continue
        if is_ready:
            console.print(f"Schedule {s.id} sends it {when(s.run_at, s.zone)}.")
        else:
            err_console.print(
                f"Schedule {s.id} would send it {when(s.run_at, s.zone)}: unless it is ready "
                f"again by then, that send is skipped (`digestmail schedule cancel {s.id}` "
                "cancels it)."
            )
