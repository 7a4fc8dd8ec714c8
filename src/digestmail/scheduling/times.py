"""Reading what staff type about time, and the wall-clock rules of a zone.

Pure functions: text in, values out, or a ``BadValue`` (or a DST refusal) saying which
piece could not be read. A local time is refused when the clocks skip it that day
(``NonexistentTime``) and when they pass it twice (``AmbiguousTime``): a one-off send
must name one moment, so staff are asked to give the offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digestmail.models import IntervalUnit
from digestmail.scheduling.errors import (
    AmbiguousTime,
    BadValue,
    Field,
    NonexistentTime,
)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_EVERY = {IntervalUnit.WEEK: 52, IntervalUnit.DAY: 366}
_UNITS = {"w": IntervalUnit.WEEK, "d": IntervalUnit.DAY}
_EVERY = re.compile(r"(\d{1,4}) ?([wd])", re.IGNORECASE)
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A date and a time of day, seconds and an offset optional: nothing looser, so that a
# bare date is not read as midnight.
_MOMENT = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?",
    re.IGNORECASE,
)
_LONGEST = 64


@dataclass(frozen=True)
class Every:
    count: int
    unit: IntervalUnit

    @property
    def days(self) -> int:
        return self.count * (7 if self.unit is IntervalUnit.WEEK else 1)


def parse_every(text: str) -> Every:
    """``2w`` (every other week), ``1w``, ``7d``."""
    found = _EVERY.fullmatch(text.strip())
    if not found:
        raise BadValue(Field.EVERY, text)
    count, unit = int(found[1]), _UNITS[found[2].lower()]
    if not 1 <= count <= MAX_EVERY[unit]:
        raise BadValue(Field.EVERY, text, f"from 1 to {MAX_EVERY[unit]} {unit.value}s")
    return Every(count, unit)


def parse_weekday(text: str) -> int:
    """Monday is 0. ``fri``, ``Friday``: a weekday's name or its first three letters."""
    word = text.strip().lower()
    if len(word) >= 3:
        for number, name in enumerate(WEEKDAYS):
            if name.startswith(word):
                return number
    raise BadValue(Field.WEEKDAY, text)


def parse_time_of_day(text: str) -> time:
    """``09:00``, ``9:30``, ``17:45`` (24-hour clock)."""
    found = _TIME.fullmatch(text.strip())
    if not found:
        raise BadValue(Field.TIME_OF_DAY, text)
    hour, minute = int(found[1]), int(found[2])
    if hour > 23 or minute > 59:
        raise BadValue(Field.TIME_OF_DAY, text, "hours 0-23, minutes 0-59")
    return time(hour, minute)


def parse_date(text: str) -> date:
    """``2025-03-14``."""
    if not _DATE.fullmatch(text.strip()):
        raise BadValue(Field.DATE, text)
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadValue(Field.DATE, text, str(exc)) from None


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``America/New_York``, ``UTC``)."""
    key = name.strip()
    if not key or len(key) > _LONGEST:
        raise BadValue(Field.ZONE, name)
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadValue(Field.ZONE, name) from None


def resolve(local: datetime, zone_name: str) -> datetime:
    """The one moment (UTC) a wall-clock time names in a zone.

    Raises ``NonexistentTime`` inside a DST gap and ``AmbiguousTime`` inside a fold.
    """
    tz = zone(zone_name)
    naive = local.replace(tzinfo=None)
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    try:
        if first.utcoffset() == second.utcoffset():
            return first.astimezone(UTC)
        earlier, later = sorted((first.astimezone(UTC), second.astimezone(UTC)))
        if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
            raise NonexistentTime(naive, zone_name, (earlier, later))
    except OverflowError:
        raise BadValue(Field.MOMENT, local.isoformat(), "out of range") from None
    raise AmbiguousTime(naive, zone_name, (earlier, later))


def parse_moment(text: str, zone_name: str) -> datetime:
    """A moment (UTC, to the second): ISO 8601 with an offset (``2025-03-14T09:00-04:00``,
    ``…Z``), or a local time in ``zone_name`` (``2025-03-14T09:00``, ``2025-03-14 09:00``)."""
    value = text.strip()
    if len(value) > _LONGEST or not _MOMENT.fullmatch(value):
        raise BadValue(Field.MOMENT, text)
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadValue(Field.MOMENT, text, str(exc)) from None
    parsed = parsed.replace(microsecond=0)
    if parsed.tzinfo is None:
        return resolve(parsed, zone_name)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise BadValue(Field.MOMENT, text, "out of range") from None
