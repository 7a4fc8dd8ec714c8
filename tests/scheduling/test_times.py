"""Reading what staff type about time: every refusal says which piece, nothing escapes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.models import IntervalUnit
from digestmail.scheduling.errors import (
    AmbiguousTime,
    BadValue,
    Field,
    NonexistentTime,
    ScheduleError,
)
from digestmail.scheduling.times import (
    Every,
    parse_date,
    parse_every,
    parse_moment,
    parse_time_of_day,
    parse_weekday,
    resolve,
    zone,
)

NY = "America/New_York"


def test_intervals_weekdays_times_and_dates() -> None:
    assert parse_every("2w") == Every(2, IntervalUnit.WEEK)
    assert parse_every(" 7D ") == Every(7, IntervalUnit.DAY)
    assert parse_every("2w").days == 14
    assert parse_weekday("fri") == 4 and parse_weekday("Friday") == 4
    assert parse_weekday("MON") == 0 and parse_weekday("sun") == 6
    assert parse_time_of_day("09:00") == time(9, 0) and parse_time_of_day("7:05") == time(7, 5)
    assert parse_date("2025-03-14") == date(2025, 3, 14)


@pytest.mark.parametrize(
    ("parse", "text", "field"),
    [
        (parse_every, "fortnightly", Field.EVERY),
        (parse_every, "0w", Field.EVERY),
        (parse_every, "53w", Field.EVERY),
        (parse_weekday, "fr", Field.WEEKDAY),
        (parse_weekday, "funday", Field.WEEKDAY),
        (parse_time_of_day, "9am", Field.TIME_OF_DAY),
        (parse_time_of_day, "24:00", Field.TIME_OF_DAY),
        (parse_date, "14/03/2025", Field.DATE),
        (parse_date, "2025-02-30", Field.DATE),
        (zone, "Mars/Olympus", Field.ZONE),
        (zone, "../../etc/passwd", Field.ZONE),
    ],
)
def test_what_cannot_be_read_is_refused_naming_the_field(
    parse: object, text: str, field: Field
) -> None:
    assert callable(parse)
    with pytest.raises(BadValue) as raised:
        parse(text)
    assert raised.value.field is field and raised.value.value == text


def test_a_moment_with_an_offset_or_a_local_time_in_the_zone() -> None:
    moment = datetime(2025, 3, 14, 13, 0, tzinfo=UTC)
    assert parse_moment("2025-03-14T09:00-04:00", "UTC") == moment
    assert parse_moment("2025-03-14T13:00Z", NY) == moment
    assert parse_moment("2025-03-14 09:00", NY) == moment  # EDT, after the spring change
    assert parse_moment("2025-03-07T09:00", NY) == datetime(2025, 3, 7, 14, 0, tzinfo=UTC)
    assert parse_moment("2025-03-14T09:00:30.25", "UTC").second == 30  # to the second
    for text in ("2025-03-14", "09:00", "next friday", "2025-03-14T9:00", "2025-13-01T09:00"):
        with pytest.raises(BadValue) as raised:
            parse_moment(text, NY)
        assert raised.value.field is Field.MOMENT


def test_a_local_time_the_clocks_skip_or_pass_twice_is_refused() -> None:
    with pytest.raises(NonexistentTime) as gap:
        parse_moment("2025-03-09T02:30", NY)
    assert gap.value.local == datetime(2025, 3, 9, 2, 30) and gap.value.zone == NY
    # What it could have meant: an hour early or an hour late on the clock.
    assert gap.value.choices == (
        datetime(2025, 3, 9, 6, 30, tzinfo=UTC),  # 01:30 EST
        datetime(2025, 3, 9, 7, 30, tzinfo=UTC),  # 03:30 EDT
    )
    with pytest.raises(AmbiguousTime) as fold:
        parse_moment("2025-11-02T01:30", NY)
    assert fold.value.choices == (
        datetime(2025, 11, 2, 5, 30, tzinfo=UTC),  # 01:30 EDT
        datetime(2025, 11, 2, 6, 30, tzinfo=UTC),  # 01:30 EST
    )
    # With its offset the same wall-clock time is one moment.
    assert parse_moment("2025-11-02T01:30-05:00", NY) == fold.value.choices[1]
    # Tokyo has no DST: every local time is one moment.
    assert resolve(datetime(2025, 3, 9, 2, 30), "Asia/Tokyo") == datetime(
        2025, 3, 8, 17, 30, tzinfo=UTC
    )


ZONES = st.sampled_from([NY, "Asia/Tokyo", "Europe/Berlin", "Australia/Lord_Howe", "UTC"])


@settings(max_examples=200)
@given(text=st.text(max_size=40), tz=ZONES)
def test_any_text_is_a_moment_or_a_refusal_that_says_why(text: str, tz: str) -> None:
    try:
        moment = parse_moment(text, tz)
    except ScheduleError as exc:
        assert str(exc)
        return
    assert moment.tzinfo is UTC and moment.microsecond == 0


@settings(max_examples=200)
@given(local=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2090, 1, 1)), tz=ZONES)
def test_every_local_time_written_out_reads_back_as_itself(local: datetime, tz: str) -> None:
    local = local.replace(microsecond=0)
    try:
        moment = parse_moment(local.isoformat(), tz)
    except (NonexistentTime, AmbiguousTime) as exc:
        # Only around a clock change, and said so with the two moments it could mean:
        # on the clock, one before the time asked and one after it (a gap), or the time
        # asked itself, twice (a fold).
        first, second = (c.astimezone(zone(tz)).replace(tzinfo=None) for c in exc.choices)
        assert exc.choices[0] < exc.choices[1]
        if isinstance(exc, NonexistentTime):
            assert first < local < second
        else:
            assert first == local == second
        return
    assert moment.astimezone(zone(tz)).replace(tzinfo=None) == local
    # Written with its offset, the moment is read back exactly.
    assert parse_moment(moment.astimezone(zone(tz)).isoformat(), "UTC") == moment


@settings(max_examples=100)
@given(text=st.text(max_size=12))
def test_interval_weekday_and_time_parsers_read_or_refuse(text: str) -> None:
    for parse in (parse_every, parse_weekday, parse_time_of_day, parse_date):
        try:
            parse(text)
        except BadValue as exc:
            assert exc.value == text
