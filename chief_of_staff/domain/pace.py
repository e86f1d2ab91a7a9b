"""Pace, forecast and standing of a key result: pure arithmetic over numbers and local dates.

`pace_of` compares the current value with a straight line from baseline at the start date to
target at the due date. `forecast_of` extends the recent rate (the deltas of the trailing
window, read from the `key_result_days` rollup; for a level key result, the trend between its
observations in that window) to the due date and says whether that misses the target, once the
key result has a minimum history (MIN_HISTORY_DAYS and MIN_DATA_POINTS): before that it says
why there is no forecast yet. `standing_of` is the one place that turns the
two into the label and the at-risk flag a reader sees, so they never contradict. All of them
work for "down" key results: the journey and every shortfall carry the sign of target - baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import Literal

# "at_risk" is on (or ahead of) the line today but forecast to miss the target at the recent rate.
PaceLabel = Literal["achieved", "ahead", "on_track", "at_risk", "behind", "overdue"]
# An active key result is at risk exactly when its label is one of these (standing_of decides both).
RISK_LABELS: frozenset[PaceLabel] = frozenset({"at_risk", "behind", "overdue"})

# Within this share of the whole journey (|target - baseline|) a key result counts as on track.
ON_TRACK_TOLERANCE = 0.05
# The recent rate is the mean daily delta over this many local days, today included.
RATE_WINDOW_DAYS = 14
# No forecast (and so no risk drawn from one, and no retarget proposal) until the key result is
# this many local days old, today included, and has this many data points (outcomes that moved
# it): one busy first day extrapolated over a quarter is a guess, not a forecast.
MIN_HISTORY_DAYS = 7
MIN_DATA_POINTS = 3


@dataclass(frozen=True)
class Pace:
    progress: float
    expected_now: float
    pace: PaceLabel
    behind_by: float


@dataclass(frozen=True)
class Observed:
    """A level key result's recent observations: how much its value changed from the day it was observed
    `since` (the last on or before the rate window's first day, else the first in it) to its latest
    observation in the window, and the days between the two."""

    since: date
    change: float
    days: int


@dataclass(frozen=True)
class Forecast:
    """The recent rate and where it leads by the due date; both None (and `note` says why) before
    the minimum history. `at_risk` here means only that the forecast misses, or the due date passed."""

    rate_per_day: float | None
    forecast_at_due: float | None
    at_risk: bool
    risk_reason: str | None
    note: str | None = None


@dataclass(frozen=True)
class Standing:
    """What a reader sees of a key result: the line, the forecast, and one verdict drawn from both."""

    progress: float
    expected_now: float
    pace: PaceLabel
    behind_by: float
    rate_per_day: float | None
    forecast_at_due: float | None
    at_risk: bool
    risk_reason: str | None
    forecast_note: str | None


def progress_of(baseline: float, target: float, value: float) -> float:
    """The share of the way from baseline to target that `value` stands at: 0 at the baseline, 1 at
    the target, in either direction (a "down" key result from 10 to 2 at 9 is 0.125 of the way)."""
    return (value - baseline) / (target - baseline)


def way(share: float) -> str:
    """A share of the way as a person reads it: "10% of the way". Whole percents, cut toward zero, so
    a key result one step short of its target never reads 100%."""
    # Exact arithmetic, so a huge share (stored before numbers were bounded) does not overflow, and
    # rounded to a millionth first, so 0.29 (stored as 0.28999...) is 29%.
    percent = round(Fraction(share) * 100, 6)
    whole = math.floor(percent) if percent >= 0 else math.ceil(percent)
    return f"{whole}% of the way"


def pace_of(baseline: float, target: float, current: float, start: date, due: date, today: date) -> Pace:
    """Where a key result stands against a straight line from baseline at start to target at due.

    Works for "down" key results too: both the journey and the shortfall carry the sign of
    target - baseline, so "behind" always means "not as far along as the line".
    """
    journey = target - baseline
    elapsed = (today - start).days / (due - start).days
    expected = baseline + journey * min(max(elapsed, 0.0), 1.0)
    progress = progress_of(baseline, target, current)
    shortfall = (expected - current) * math.copysign(1.0, journey)
    if progress >= 1:
        label: PaceLabel = "achieved"
    elif today > due:
        label = "overdue"
    elif shortfall > ON_TRACK_TOLERANCE * abs(journey):
        label = "behind"
    elif -shortfall > ON_TRACK_TOLERANCE * abs(journey):
        label = "ahead"
    else:
        label = "on_track"
    return Pace(round(progress, 3), round(expected, 2), label, round(max(0.0, shortfall), 2))


def rate_window(start: date, today: date, window_days: int = RATE_WINDOW_DAYS) -> tuple[date, int]:
    """The first local day and the length of the rate's window, which ends today (inclusive).

    It spans `window_days`, or the days since the start date when fewer, and at least today.
    """
    days = min(max((today - start).days + 1, 1), window_days)
    return today - timedelta(days=days - 1), days


def history_days(start: date, today: date) -> int:
    """How many local days of the key result's life have begun, today included (0 before its start)."""
    return max((today - start).days + 1, 0)


def no_forecast_yet(start: date, today: date, points: int) -> str | None:
    """Why a key result has no forecast yet, or None once it has the minimum history."""
    days = history_days(start, today)
    if days >= MIN_HISTORY_DAYS and points >= MIN_DATA_POINTS:
        return None
    return (
        f"forecast after {MIN_HISTORY_DAYS} days and {MIN_DATA_POINTS} data points; "
        f"{_count(days, 'day')}, {_count(points, 'point')} so far"
    )


def forecast_of(
    baseline: float,
    target: float,
    current: float,
    start: date,
    due: date,
    today: date,
    *,
    recent_delta: float,
    points: int,
    level: Observed | None = None,
    window_days: int = RATE_WINDOW_DAYS,
) -> Forecast:
    """The value at the due date if the recent rate holds, and whether that misses the target.

    `recent_delta` is the sum over `rate_window(start, today, window_days)`; `points` counts the
    outcomes that moved the key result since it began (exact up to what the minimum needs). A level
    key result observed in the window (`level`) moves at the trend between two of its observations
    instead, over the days that really separate them: the step from its baseline to a first
    measurement is not a rate (a cost per post first measured at 30 against a baseline of 40 did not
    fall by 10 in a day), and a change since an observation made before the window did not all happen
    inside it. Its value holds where it was when it was observed on one day only. Before
    MIN_HISTORY_DAYS and MIN_DATA_POINTS there is no forecast, only the note saying why. The forecast
    never goes below zero for a key result whose baseline and target are both at least zero (a count,
    a cost, a rate: it cannot), nor beyond where the recent rate leads. Not at risk once achieved; at
    risk when past due, or when the forecast falls short of the target in the key result's direction.
    """
    achieved = progress_of(baseline, target, current) >= 1
    passed = None if achieved or today <= due else f"due {due.isoformat()} passed at {_num(current)} of {_num(target)}"
    note = no_forecast_yet(start, today, points)
    if note is not None:
        return Forecast(None, None, passed is not None, passed, note)
    days = rate_window(start, today, window_days)[1]
    if level is None:
        rate, basis = recent_delta / days, "today's rate" if days == 1 else f"the last {days} days' rate"
    else:
        rate = level.change / level.days if level.days else 0.0
        basis = f"the trend of its observations since {level.since.isoformat()}"
    forecast = round(_plausible(current + rate * max(0, (due - today).days), baseline, target, current), 2) + 0.0
    rate_shown = round(rate, 3) + 0.0  # + 0.0 turns -0.0 into 0.0
    if achieved or passed is not None:
        return Forecast(rate_shown, forecast, passed is not None, passed)
    if (target - forecast) * math.copysign(1.0, target - baseline) <= 0:
        return Forecast(rate_shown, forecast, False, None)
    return Forecast(
        rate_shown,
        forecast,
        True,
        f"forecast {_num(forecast)} of {_num(target)} by {due.isoformat()} at {basis} ({_num(rate_shown, 3)}/day)",
    )


def _plausible(value: float, baseline: float, target: float, current: float) -> float:
    """The forecast kept where the quantity can be: a key result measured from and toward values at
    or above zero cannot fall below zero (nor below where it already is, should stored data say so)."""
    if baseline >= 0 and target >= 0:
        return max(value, min(0.0, current))
    return value


def standing_of(
    baseline: float,
    target: float,
    current: float,
    start: date,
    due: date,
    today: date,
    *,
    recent_delta: float,
    points: int,
    level: Observed | None = None,
    active: bool = True,
    window_days: int = RATE_WINDOW_DAYS,
) -> Standing:
    """The label and the at-risk flag of a key result, decided together from the same numbers.

    The line says achieved, overdue, behind, on_track or ahead; a forecast that misses the target
    turns on_track or ahead into at_risk (and leaves behind as it is). An active key result is at
    risk exactly when its label is in RISK_LABELS, with the reason; a closed goal's key results are
    history, never at risk. Before the minimum history there is no forecast, so only the line judges.
    """
    line = pace_of(baseline, target, current, start, due, today)
    forecast = forecast_of(
        baseline,
        target,
        current,
        start,
        due,
        today,
        recent_delta=recent_delta,
        points=points,
        level=level,
        window_days=window_days,
    )
    label, reason = line.pace, forecast.risk_reason
    if label not in ("achieved", "overdue") and forecast.at_risk:
        label = "behind" if label == "behind" else "at_risk"
    elif label == "behind":
        reason = f"behind the line: {_num(current)} against {_num(line.expected_now)} expected by today"
    at_risk = active and label in RISK_LABELS
    return Standing(
        progress=line.progress,
        expected_now=line.expected_now,
        pace=label,
        behind_by=line.behind_by,
        rate_per_day=forecast.rate_per_day,
        forecast_at_due=forecast.forecast_at_due,
        at_risk=at_risk,
        risk_reason=reason if at_risk else None,
        forecast_note=forecast.note,
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def _num(value: float, places: int = 2) -> str:
    """A number as a person writes it: 9, 0.2, -1.25 (no exponent, no trailing zeros)."""
    text = f"{round(value, places) + 0.0:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
