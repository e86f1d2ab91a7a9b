"""The console's charts: a key result drawn as SVG on the server, with the same story in words.

A chart is plain geometry the template writes out as SVG elements (no script, no charting library,
nothing loaded from anywhere): the actual value over time (the key result's daily rollups), the
straight line from baseline at the start date to target at the due date, the forecast from today's
value to the due date when there is one, and a mark at today. Every chart comes with its text
equivalent: one sentence with the value, the line, the pace, the forecast and the risk, and a table
of the values drawn. The template escapes all of it; nothing here writes markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from chief_of_staff.domain.goals import KeyResultView
from chief_of_staff.domain.pace import way

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 16, 40
Y_TICKS = 4

PACE_WORDS = {
    "achieved": "achieved",
    "ahead": "ahead of the line",
    "on_track": "on track",
    "at_risk": "at risk",
    "behind": "behind the line",
    "overdue": "overdue",
}


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Segment:
    start: Point
    end: Point


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    """One key result's chart: SVG geometry in a WIDTH x HEIGHT box, and its text equivalent."""

    key_result: str
    title: str
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    actual: list[Point]
    plan: Segment
    forecast: Segment | None
    today: float | None
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    summary: str
    table: list[tuple[str, str]]

    @property
    def actual_points(self) -> str:
        """The actual values as an SVG polyline's points attribute."""
        return " ".join(f"{point.x:.1f},{point.y:.1f}" for point in self.actual)


def number(value: float, places: int = 2) -> str:
    """A number as a person writes it: 1,250, 0.2, -1.25 (no exponent, no trailing zeros)."""
    text = f"{round(value, places) + 0.0:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def series(kr: KeyResultView, history: Sequence[tuple[date, float]], today: date) -> list[tuple[date, float]]:
    """The actual values to draw: the baseline on the start date, the end of each day an outcome moved it,
    and today's value held to today (the value stays where the last outcome left it)."""
    start = date.fromisoformat(kr.start_date)
    points = [(start, kr.baseline)] if not history or history[0][0] > start else []
    points += list(history)
    if points[-1][0] < today:
        points.append((today, kr.current))
    return points


def summary(kr: KeyResultView, today: date) -> str:
    """The chart in one paragraph: where the key result is, where the line says it should be, where it is heading."""
    unit = f" {kr.unit}" if kr.unit else ""
    words = [
        f"{kr.metric}: {number(kr.current)} of {number(kr.target)}{unit} by {kr.due_date}, {way(kr.progress)}.",
        f"The straight line from {number(kr.baseline)} on {kr.start_date} to {number(kr.target)} on {kr.due_date} "
        f"expects {number(kr.expected_now)} by today ({today.isoformat()}).",
        f"Pace: {PACE_WORDS[kr.pace]}" + (f", behind by {number(kr.behind_by)}." if kr.behind_by else "."),
    ]
    if kr.forecast_at_due is not None and kr.rate_per_day is not None:
        words.append(
            f"Forecast: {number(kr.forecast_at_due)} by {kr.due_date} at the recent rate "
            f"({number(kr.rate_per_day, 3)} a day)."
        )
    elif kr.forecast_note:
        words.append(f"No forecast yet: {kr.forecast_note}.")
    if kr.at_risk and kr.risk_reason:
        words.append(f"At risk: {kr.risk_reason}.")
    return " ".join(words)


def chart(kr: KeyResultView, history: Sequence[tuple[date, float]], today: date) -> Chart:
    """The key result's chart from its views and its daily values (goals.key_result_history)."""
    start, due = date.fromisoformat(kr.start_date), date.fromisoformat(kr.due_date)
    actual = series(kr, history, today)
    forecast_end = None if kr.forecast_at_due is None or today >= due else (due, kr.forecast_at_due)
    days = [start, due, today, *(day for day, _ in actual)]
    values = [kr.baseline, kr.target, *(value for _, value in actual)]
    if forecast_end is not None:
        values.append(forecast_end[1])
    first, last = min(days), max(days)
    low, high, step = axis(min(values), max(values))
    span = max((last - first).days, 1)
    plot_right, plot_bottom = WIDTH - RIGHT, HEIGHT - BOTTOM

    def x(day: date) -> float:
        return LEFT + (plot_right - LEFT) * (day - first).days / span

    def y(value: float) -> float:
        return plot_bottom - (plot_bottom - TOP) * (value - low) / (high - low)

    def at(day: date, value: float) -> Point:
        return Point(round(x(day), 1), round(y(value), 1))

    return Chart(
        key_result=kr.id,
        title=f"{kr.id} {kr.metric}",
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=plot_right,
        plot_top=TOP,
        plot_bottom=plot_bottom,
        actual=[at(day, value) for day, value in actual],
        plan=Segment(at(start, kr.baseline), at(due, kr.target)),
        forecast=None if forecast_end is None else Segment(at(today, kr.current), at(*forecast_end)),
        today=round(x(today), 1) if first <= today <= last else None,
        y_ticks=[
            Tick(round(y(low + step * n), 1), number(low + step * n)) for n in range(round((high - low) / step) + 1)
        ],
        x_ticks=[Tick(round(x(day), 1), day.isoformat()) for day in sorted({first, last})],
        summary=summary(kr, today),
        table=[(day.isoformat(), number(value)) for day, value in actual],
    )


def axis(low: float, high: float, ticks: int = Y_TICKS) -> tuple[float, float, float]:
    """The value axis over [low, high]: round ends and a round step (1, 2, 2.5 or 5 times a power of ten),
    about `ticks` of them; a flat range gets a unit of room."""
    if high == low:
        low, high = low - 1, high + 1
    raw = (high - low) / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(factor * power for factor in (1, 2, 2.5, 5, 10) if factor * power >= raw)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step
