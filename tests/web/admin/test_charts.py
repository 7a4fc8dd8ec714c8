"""The charts' geometry (web/admin/charts.py): bars from zero, inside the drawing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digestmail.web.admin import charts


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 1), (1, 1), (2, 2), (3, 5), (5, 5), (6, 10), (11, 20), (250, 500), (501, 1000)],
)
def test_the_scale_ends_on_a_round_number(value: int, top: int) -> None:
    assert charts.nice_ceiling(value) == top


def test_no_points_draw_no_bars() -> None:
    chart = charts.bar_chart([], width=200, height=100, grid=True)
    assert chart.bars == []
    assert [g.text for g in chart.grid] == ["0", "1"]


def test_one_point_is_one_bar_of_full_height_in_the_middle() -> None:
    chart = charts.bar_chart([("4.1", 120)], width=240, height=150)
    [bar] = chart.bars
    assert bar.text == "120" and bar.title == "4.1: 120" and bar.label == "4.1"
    assert bar.y + bar.height == chart.baseline
    assert bar.height == pytest.approx((chart.baseline - 22) * 120 / 200)
    assert bar.middle == pytest.approx((chart.left + chart.right) / 2, abs=0.1)
    assert bar.width <= 56


def test_zeros_are_drawn_flat_and_labels_thinned_out_keep_the_last() -> None:
    points = [(f"w{i}", 0) for i in range(12)]
    chart = charts.bar_chart(points, width=560, height=240, grid=True, max_labels=6)
    assert all(b.height == 0 and b.y == chart.baseline for b in chart.bars)
    labels = [b.label for b in chart.bars]
    assert labels == ["", "w1", "", "w3", "", "w5", "", "w7", "", "w9", "", "w11"]
    assert chart.grid[-1].text == "1"


@settings(max_examples=100)
@given(values=st.lists(st.integers(min_value=0, max_value=10**7), max_size=30))
def test_bars_stay_in_the_drawing_and_in_proportion(values: list[int]) -> None:
    chart = charts.bar_chart(
        [(str(i), v) for i, v in enumerate(values)], width=560, height=240, grid=True
    )
    assert len(chart.bars) == len(values)
    for bar, value in zip(chart.bars, values, strict=True):
        assert chart.left <= bar.x and bar.x + bar.width <= chart.right + 0.1
        assert 0 <= bar.y <= chart.baseline and bar.height >= 0
        assert bar.y + bar.height == pytest.approx(chart.baseline, abs=0.1)
        assert bar.text == f"{value:,}"
    tallest = max(values, default=0)
    if tallest:
        ratio = max(b.height for b in chart.bars) / (chart.baseline - 22)
        assert ratio == pytest.approx(tallest / charts.nice_ceiling(tallest), abs=0.01)
    assert [b.x for b in chart.bars] == sorted(b.x for b in chart.bars)
