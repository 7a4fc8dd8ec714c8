"""Scheduling: when issues go out, decided by staff, carried out by one scheduler.

- ``times``: reading what staff type (intervals, weekdays, times, dates, zones) and the
  wall-clock rules of a zone (a time the clocks skip, or pass twice);
- ``slots``: a cadence's slots, computed by APScheduler's ``CalendarIntervalTrigger``;
- ``plans``: what staff say (cadences, one-off sends, cancel, move, skip, pause, resume,
  an issue ready or not) and what they see (``overview``);
- ``occurrences``: what happens at a slot, the slots nobody was there for, campaigns
  whose sender is gone, reminders;
- ``runner``: the scheduler process (APScheduler), which carries it out.

Nothing here knows about the command line; errors carry data (``errors``).
"""

from __future__ import annotations

from digestmail.scheduling.errors import (
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
    ScheduleError,
    ScheduleNotFound,
    WrongState,
)
from digestmail.scheduling.plans import (
    OccurrenceInfo,
    Overview,
    Readiness,
    ScheduleInfo,
    add_cadence,
    add_one_off,
    cancel,
    history,
    move,
    next_send,
    overview,
    pause,
    resume,
    schedule_info,
    set_ready,
    skip,
)

__all__ = [
    "Action",
    "AlreadyScheduled",
    "AmbiguousTime",
    "BadValue",
    "Field",
    "InThePast",
    "IssueSent",
    "MissingValue",
    "NoOccurrenceOn",
    "NonexistentTime",
    "OccurrenceInfo",
    "Overview",
    "Readiness",
    "ScheduleError",
    "ScheduleInfo",
    "ScheduleNotFound",
    "WrongState",
    "add_cadence",
    "add_one_off",
    "cancel",
    "history",
    "move",
    "next_send",
    "overview",
    "pause",
    "resume",
    "schedule_info",
    "set_ready",
    "skip",
]
