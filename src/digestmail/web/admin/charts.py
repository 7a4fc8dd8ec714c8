"""The dashboard's charts, drawn on the server as SVG (``templates/web/admin/_charts.html``).

Only the geometry is here: where each bar goes and how tall it is, which grid lines to
draw and what they say, in the units of the drawing's ``viewBox`` (the page scales it
to its width). Bars start at zero, so that a bar twice as tall means twice as many. The
figures themselves come from ``stats``; every chart on a page also has its numbers in
a table, for screen readers and for anyone who wants them exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Room around the plot, in viewBox units: value labels above, bar labels below.
_TOP = 22
_BOTTOM = 26
_RIGHT = 6
_CHAR = 7.2  # the width of a digit at the charts' font size, near enough
_GAP = 0.3  # the share of each bar's slot left empty between bars
_WIDEST_BAR = 56


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # under the bar ("" where labels are thinned out)
    value: int
    text: str  # the value as shown: 1,234
    title: str  # what a pointer resting on the bar shows: "label: 1,234"

    @property
    def middle(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True)
class GridLine:
    y: float
    text: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: float  # where the plot starts (grid labels to its left)
    baseline: float  # the y of zero
    bars: list[Bar]
    grid: list[GridLine]
    values_on_bars: bool

    @property
    def right(self) -> float:
        return self.width - _RIGHT

    @property
    def label_y(self) -> float:
        return self.baseline + 17


def number(value: int) -> str:
    return f"{value:,}"


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (at least 1):
    the top of a chart's scale, a round number to read grid lines against."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def bar_chart(
    points: Sequence[tuple[str, int]],
    *,
    width: int,
    height: int,
    values_on_bars: bool = True,
    grid: bool = False,
    max_labels: int = 12,
) -> BarChart:
    """One bar per point, left to right; ``max_labels`` bar labels at most (every k-th
    bar and the last), so that they never overlap on a long series."""
    top = nice_ceiling(max((v for _, v in points), default=0))
    ticks = [0, top // 2, top] if top % 2 == 0 and top >= 2 else [0, top]
    left = 4.0 + (len(number(top)) * _CHAR if grid else 0.0)
    baseline = float(height - _BOTTOM)
    plot_height = baseline - _TOP
    n = len(points)
    slot = (width - _RIGHT - left) / n if n else 0.0
    bar_width = min(slot * (1 - _GAP), _WIDEST_BAR)
    every = -(-n // max_labels) if n else 1  # ceiling division
    bars = []
    for i, (label, value) in enumerate(points):
        h = plot_height * value / top
        shown = label if (n - 1 - i) % every == 0 else ""
        bars.append(
            Bar(
                x=round(left + i * slot + (slot - bar_width) / 2, 1),
                y=round(baseline - h, 1),
                width=round(bar_width, 1),
                height=round(h, 1),
                label=shown,
                value=value,
                text=number(value),
                title=f"{label}: {number(value)}",
            )
        )
    lines = (
        [GridLine(round(baseline - plot_height * t / top, 1), number(t)) for t in ticks]
        if grid
        else []
    )
    return BarChart(width, height, left, baseline, bars, lines, values_on_bars)
