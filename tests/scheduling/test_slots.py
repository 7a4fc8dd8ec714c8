"""A cadence's slots keep their wall-clock time across DST (and Tokyo has none)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.models import IntervalUnit
from digestmail.scheduling.slots import Cadence, first_date
from digestmail.scheduling.times import Every

NY = "America/New_York"
TOKYO = "Asia/Tokyo"
FORTNIGHT = Every(2, IntervalUnit.WEEK)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_every_other_friday_at_nine_in_new_york_across_both_dst_changes() -> None:
    cadence = Cadence(FORTNIGHT, time(9, 0), NY, date(2025, 2, 28))
    year = cadence.between(_utc(2025, 2, 1), _utc(2026, 1, 1))
    local = [s.astimezone(ZoneInfo(NY)) for s in year]
    assert all(d.strftime("%a %H:%M") == "Fri 09:00" for d in local)
    first = [date(2025, 2, 28), date(2025, 3, 14), date(2025, 3, 28)]
    assert [d.date() for d in local[:3]] == first
    # Clocks spring forward on Sunday 9 March: 14:00 UTC before, 13:00 UTC after.
    assert year[0] == _utc(2025, 2, 28, 14) and year[1] == _utc(2025, 3, 14, 13)
    assert year[1] - year[0] == timedelta(days=14, hours=-1)
    # ... and fall back on Sunday 2 November: 13:00 UTC before, 14:00 UTC after.
    autumn = cadence.between(_utc(2025, 10, 20), _utc(2025, 11, 15))
    assert autumn == [_utc(2025, 10, 24, 13), _utc(2025, 11, 7, 14)]
    assert autumn[1] - autumn[0] == timedelta(days=14, hours=1)
    assert len(year) == 22  # 28 February to 26 December


def test_tokyo_has_no_dst_so_slots_are_exactly_fourteen_days_apart() -> None:
    cadence = Cadence(FORTNIGHT, time(9, 0), TOKYO, date(2025, 2, 28))
    year = cadence.between(_utc(2025, 2, 1), _utc(2026, 1, 1))
    assert all(s.hour == 0 and s.minute == 0 for s in year)  # 09:00 JST = 00:00 UTC
    assert {b - a for a, b in itertools.pairwise(year)} == {timedelta(days=14)}


def test_after_latest_and_on_answer_from_any_moment() -> None:
    cadence = Cadence(FORTNIGHT, time(9, 0), NY, date(2025, 2, 28))
    assert cadence.after(_utc(2025, 3, 1)) == _utc(2025, 3, 14, 13)
    assert cadence.after(_utc(2025, 3, 14, 13)) == _utc(2025, 3, 28, 13)  # strictly after
    assert cadence.latest(_utc(2025, 3, 14, 13)) == _utc(2025, 3, 14, 13)  # at or before
    assert cadence.latest(_utc(2025, 3, 20)) == _utc(2025, 3, 14, 13)
    assert cadence.latest(_utc(2025, 2, 27)) is None  # before the first
    assert cadence.on(date(2025, 3, 14)) == _utc(2025, 3, 14, 13)
    assert cadence.on(date(2025, 3, 21)) is None  # the other Friday
    assert cadence.after(_utc(2031, 6, 1)).astimezone(ZoneInfo(NY)).strftime("%a %H:%M") == (
        "Fri 09:00"
    )


def test_a_new_cadence_starts_with_its_next_slot_still_ahead() -> None:
    friday_ten = datetime(2025, 2, 28, 10, 0, tzinfo=ZoneInfo(NY)).astimezone(UTC)
    assert first_date(FORTNIGHT, 4, time(9), NY, date(2025, 2, 1), friday_ten) == date(2025, 3, 7)
    friday_eight = friday_ten - timedelta(hours=2)
    assert first_date(FORTNIGHT, 4, time(9), NY, date(2025, 2, 1), friday_eight) == date(
        2025, 2, 28
    )
    # --from a later date: the first Friday on or after it.
    assert first_date(FORTNIGHT, 4, time(9), NY, date(2025, 4, 1), friday_ten) == date(2025, 4, 4)
    # Days: today if still ahead, else tomorrow.
    daily = Every(1, IntervalUnit.DAY)
    assert first_date(daily, None, time(9), NY, date(2025, 1, 1), friday_ten) == date(2025, 3, 1)


def test_a_time_the_clocks_skip_is_found_and_a_repeated_one_is_sent_once_early() -> None:
    daily = Every(1, IntervalUnit.DAY)
    gap = Cadence(daily, time(2, 30), NY, date(2025, 1, 1)).skipped_day()
    assert gap is not None and gap.local == datetime(2025, 3, 9, 2, 30)
    assert Cadence(FORTNIGHT, time(2, 30), NY, date(2025, 2, 28)).skipped_day() is None  # Fridays
    sundays = Cadence(Every(1, IntervalUnit.WEEK), time(1, 30), NY, date(2025, 10, 26))
    assert sundays.skipped_day() is None
    # 01:30 happens twice on 2 November: the cadence sends once, at the earlier (EDT).
    assert sundays.between(_utc(2025, 11, 1), _utc(2025, 11, 3)) == [_utc(2025, 11, 2, 5, 30)]


@settings(max_examples=60)
@given(
    every=st.builds(
        Every,
        st.integers(1, 6),
        st.sampled_from([IntervalUnit.WEEK, IntervalUnit.DAY]),
    ),
    at=st.times().map(lambda t: time(t.hour, t.minute)),
    tz=st.sampled_from([NY, TOKYO, "Europe/London", "Australia/Sydney"]),
    start=st.dates(date(2024, 1, 1), date(2026, 1, 1)),
    offset=st.integers(0, 900),
)
def test_starting_the_trigger_late_gives_the_slots_it_gives_from_the_start(
    every: Every, at: time, tz: str, start: date, offset: int
) -> None:
    """The jump ahead (``Cadence._from``) never changes which slots there are."""
    cadence = Cadence(every, at, tz, start)
    trigger = cadence.trigger()
    slots, previous = [], None
    while True:
        fire = trigger.get_next_fire_time(previous, datetime.now(UTC))
        assert fire is not None
        if fire.date() > start + timedelta(days=1300):
            break
        slots.append(fire.astimezone(UTC))
        previous = fire
    after = datetime.combine(start + timedelta(days=offset), time(0), UTC)
    until = after + timedelta(days=300)
    assert cadence.between(after, until) == [s for s in slots if after < s <= until]
    assert cadence.after(after) == next(s for s in slots if s > after)
