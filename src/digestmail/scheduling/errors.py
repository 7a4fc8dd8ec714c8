"""What a scheduling operation can refuse, as data: ids, times, zones, what was typed.

The CLI and the admin turn these into words (with the syntax expected, and what to do
next); ``str()`` of each is a plain statement of the facts, for logs.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from digestmail.models import ScheduleKind, ScheduleStatus


class ScheduleError(Exception):
    """A scheduling operation that cannot be done; subclasses carry the facts."""


class Field(StrEnum):
    """Which piece of what staff typed could not be read."""

    EVERY = "every"  # an interval: 2w, 1w, 7d
    WEEKDAY = "weekday"  # mon … sun
    TIME_OF_DAY = "time_of_day"  # 09:00
    MOMENT = "moment"  # 2025-03-14T09:00, with or without an offset
    DATE = "date"  # 2025-03-14
    ZONE = "zone"  # America/New_York


class BadValue(ScheduleError):
    """``value`` cannot be read as a ``field``; ``problem`` says what is wrong, in a few
    words that hold no instructions (``None``: the form itself is wrong)."""

    def __init__(self, field: Field, value: str, problem: str | None = None) -> None:
        extra = f" ({problem})" if problem else ""
        super().__init__(f"{value!r} is not a valid {field.value}{extra}")
        self.field = field
        self.value = value
        self.problem = problem


class MissingValue(ScheduleError):
    """A cadence in weeks needs its weekday; one in days must not have one."""

    def __init__(self, field: Field, *, needed: bool) -> None:
        super().__init__(f"{field.value} is {'needed' if needed else 'not expected'}")
        self.field = field
        self.needed = needed


class NonexistentTime(ScheduleError):
    """The wall-clock time does not happen on that day (the clocks skip it); ``choices``
    are the two moments it could have meant, earlier first: that time read on the clock
    after the change (which shows it an hour early, 01:30 for 02:30) and on the clock
    before it (an hour late, 03:30)."""

    def __init__(self, local: datetime, zone: str, choices: tuple[datetime, datetime]) -> None:
        super().__init__(f"{local:%Y-%m-%d %H:%M} does not exist in {zone}")
        self.local = local
        self.zone = zone
        self.choices = choices


class AmbiguousTime(ScheduleError):
    """The wall-clock time happens twice that day (the clocks go back); ``choices`` are
    the two moments, earlier first."""

    def __init__(self, local: datetime, zone: str, choices: tuple[datetime, datetime]) -> None:
        super().__init__(f"{local:%Y-%m-%d %H:%M} happens twice in {zone}")
        self.local = local
        self.zone = zone
        self.choices = choices


class InThePast(ScheduleError):
    def __init__(self, moment: datetime, now: datetime) -> None:
        super().__init__(f"{moment.isoformat()} is in the past (now {now.isoformat()})")
        self.moment = moment
        self.now = now


class ScheduleNotFound(ScheduleError):
    def __init__(self, schedule_id: int) -> None:
        super().__init__(f"there is no schedule {schedule_id}")
        self.schedule_id = schedule_id


class Action(StrEnum):
    CANCEL = "cancel"
    MOVE = "move"
    SKIP = "skip"
    PAUSE = "pause"
    RESUME = "resume"


class WrongState(ScheduleError):
    """The schedule's kind or status does not allow what was asked (moving a cadence,
    pausing a cancelled one, …)."""

    def __init__(
        self, schedule_id: int, kind: ScheduleKind, status: ScheduleStatus, action: Action
    ) -> None:
        super().__init__(
            f"schedule {schedule_id} ({kind.value}, {status.value}): cannot {action.value}"
        )
        self.schedule_id = schedule_id
        self.kind = kind
        self.status = status
        self.action = action


class AlreadyScheduled(ScheduleError):
    """The issue already has a one-off send waiting."""

    def __init__(self, slug: str, schedule_id: int, run_at: datetime, zone: str) -> None:
        super().__init__(f"{slug} is already scheduled (schedule {schedule_id})")
        self.slug = slug
        self.schedule_id = schedule_id
        self.run_at = run_at
        self.zone = zone


class IssueSent(ScheduleError):
    """The issue was sent; its readiness no longer means anything."""

    def __init__(self, slug: str, sent_at: datetime | None) -> None:
        super().__init__(f"{slug} was already sent")
        self.slug = slug
        self.sent_at = sent_at


class NoOccurrenceOn(ScheduleError):
    """The cadence does not send on that day; ``nearest`` are its next slots from then."""

    def __init__(self, schedule_id: int, day: date, zone: str, nearest: list[datetime]) -> None:
        super().__init__(f"schedule {schedule_id} sends nothing on {day.isoformat()}")
        self.schedule_id = schedule_id
        self.day = day
        self.zone = zone
        self.nearest = nearest
