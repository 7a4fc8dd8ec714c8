"""When a cadence sends: its slots, computed by APScheduler's own trigger.

A cadence is "every N weeks (or days) at this wall-clock time in this zone, from this
date", which is exactly ``CalendarIntervalTrigger``: the slots keep their local time
across DST changes (09:00 in New York is 14:00 UTC in winter and 13:00 in summer), not
a fixed count of hours. The scheduler fires the same trigger; everything else that asks
about slots (what ``list`` shows, which slot a late run belongs to, which were missed)
asks it here, so the two can never disagree.

Slot dates are the start date plus whole periods, so any aligned date can serve as a
starting point: the trigger is started a period or two before the moment asked about
rather than from the cadence's first slot years ago.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.calendarinterval import CalendarIntervalTrigger

from digestmail.models import IntervalUnit
from digestmail.scheduling.errors import AmbiguousTime, NonexistentTime
from digestmail.scheduling.times import Every, resolve

# How far ahead a new cadence is checked for a slot the clocks skip.
CHECK_YEARS = 10


@dataclass(frozen=True)
class Cadence:
    every: Every
    at: time
    zone: str
    start: date  # the first slot's local date

    def trigger(self, start: date | None = None) -> CalendarIntervalTrigger:
        weeks = self.every.count if self.every.unit is IntervalUnit.WEEK else 0
        days = self.every.count if self.every.unit is IntervalUnit.DAY else 0
        return CalendarIntervalTrigger(
            weeks=weeks,
            days=days,
            hour=self.at.hour,
            minute=self.at.minute,
            start_date=start or self.start,
            timezone=ZoneInfo(self.zone),
        )

    def _from(self, moment: datetime, periods_back: int = 2) -> Iterator[datetime]:
        """Slots (UTC) from a few periods before ``moment`` on, in order."""
        period = self.every.days
        day = moment.astimezone(ZoneInfo(self.zone)).date()
        k = max(0, (day - self.start).days // period - periods_back)
        trigger = self.trigger(self.start + timedelta(days=k * period))
        previous: datetime | None = None
        while True:
            fire = trigger.get_next_fire_time(previous, moment)
            if fire is None:  # pragma: no cover  (no end date is ever set)
                return
            yield fire.astimezone(UTC)
            previous = fire

    def after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment``."""
        return next(s for s in self._from(moment) if s > moment)

    def between(self, after: datetime, until: datetime) -> list[datetime]:
        """Slots ``s`` with ``after < s <= until``."""
        found: list[datetime] = []
        for slot in self._from(after):
            if slot > until:
                return found
            if slot > after:
                found.append(slot)
        return found  # pragma: no cover

    def latest(self, moment: datetime) -> datetime | None:
        """The last slot at or before ``moment`` (None before the first)."""
        last = None
        for slot in self._from(moment):
            if slot > moment:
                return last
            last = slot
        return last  # pragma: no cover

    def on(self, day: date) -> datetime | None:
        """The slot on that local date, if the cadence sends that day."""
        tz = ZoneInfo(self.zone)
        start = datetime.combine(day, time(0), tz).astimezone(UTC)
        slot = self.after(start - timedelta(seconds=1))
        return slot if slot.astimezone(tz).date() == day else None

    def skipped_day(self, years: int = CHECK_YEARS) -> NonexistentTime | None:
        """The first slot in ``years`` whose wall-clock time the clocks skip (the trigger
        would drop that whole occurrence), or None. A time that happens twice is sent at
        the earlier of the two."""
        period = self.every.days
        for k in range(years * 366 // period + 1):
            local = datetime.combine(self.start + timedelta(days=k * period), self.at)
            try:
                resolve(local, self.zone)
            except NonexistentTime as exc:
                return exc
            except AmbiguousTime:
                continue
        return None


def first_date(
    every: Every, weekday: int | None, at: time, zone: str, earliest: date, now: datetime
) -> date:
    """The first slot's date for a new cadence: on or after ``earliest``, on ``weekday``
    (weekly cadences), and with its time still ahead of ``now`` (a cadence never starts
    with a send that is already late)."""
    tz = ZoneInfo(zone)
    day = max(earliest, now.astimezone(tz).date())
    if weekday is not None:
        day += timedelta(days=(weekday - day.weekday()) % 7)
    step = 7 if weekday is not None else 1
    while True:
        probe = Cadence(every, at, zone, day)
        first = probe.after(datetime.combine(day, time(0), tz).astimezone(UTC) - timedelta(1))
        if first > now:
            return first.astimezone(tz).date()
        day += timedelta(days=step)
