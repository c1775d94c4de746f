"""Balance and equity charts drawn on the server as SVG coordinates: no script, no third-party asset.

The template draws two polylines in a fixed ``viewBox`` that scales to the screen width (phones included);
colours and line widths come from the site's stylesheet. The same points, sampled, make the text alternative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import formats

from accounts.selectors import HistoryPoint

WIDTH = 640
HEIGHT = 240
LEFT = 8  # the value labels sit inside the plot area, above their grid line
RIGHT = 8
TOP = 12
BOTTOM = 24

PERIODS: dict[str, tuple[timedelta, str]] = {
    # period -> (span, resolution of the points)
    "day": (timedelta(days=1), "minute"),
    "week": (timedelta(days=7), "hour"),
    "month": (timedelta(days=31), "hour"),
    "year": (timedelta(days=366), "day"),
}
TABLE_ROWS = 12


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass
class Chart:
    period: str
    start: datetime
    end: datetime
    width: int = WIDTH
    height: int = HEIGHT
    balance_points: str = ""
    equity_points: str = ""
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    table: list[HistoryPoint] = field(default_factory=list)
    low: Decimal | None = None
    high: Decimal | None = None

    @property
    def empty(self) -> bool:
        return not self.balance_points


def _label(value: Decimal) -> str:
    return formats.number_format(value, decimal_pos=0, use_l10n=True, force_grouping=True)


def _x_label(at: datetime, period: str) -> str:
    return formats.date_format(at, "H:i" if period == "day" else "j M")


def line_chart(points: Sequence[HistoryPoint], *, period: str, start: datetime, end: datetime) -> Chart:
    """Scale the points into the SVG box. A point before ``start`` (the value at the start) is drawn at the
    left edge; the last value is carried to the right edge so a quiet account still shows a line."""
    chart = Chart(period=period, start=start, end=end)
    if not points:
        return chart
    values = [p.balance for p in points] + [p.equity for p in points]
    low, high = min(values), max(values)
    if low == high:
        low, high = low - 1, high + 1
    pad = (high - low) * Decimal("0.08")
    low, high = low - pad, high + pad
    chart.low, chart.high = low, high
    span = (end - start).total_seconds() or 1.0
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        return LEFT + max(0.0, min(1.0, (at - start).total_seconds() / span)) * plot_w

    def y(value: Decimal) -> float:
        return TOP + float((high - value) / (high - low)) * plot_h

    def line(values: list[tuple[datetime, Decimal]]) -> str:
        coords = [(x(at), y(v)) for at, v in values]
        coords.append((LEFT + plot_w, coords[-1][1]))
        return " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)

    chart.balance_points = line([(p.at, p.balance) for p in points])
    chart.equity_points = line([(p.at, p.equity) for p in points])
    for i in range(5):
        value = low + (high - low) * Decimal(i) / 4
        chart.y_ticks.append(Tick(LEFT, y(value), _label(value)))
    for i in range(5):
        at = start + (end - start) * i / 4
        chart.x_ticks.append(Tick(x(at), HEIGHT - 6, _x_label(at, period)))
    chart.table = sample(points, TABLE_ROWS)
    return chart


def sample(points: Sequence[HistoryPoint], rows: int) -> list[HistoryPoint]:
    """At most ``rows`` points, evenly spread, always including the last one."""
    if len(points) <= rows:
        return list(points)
    step = len(points) / rows
    picked = [points[min(len(points) - 1, int((i + 1) * step) - 1)] for i in range(rows)]
    return picked
