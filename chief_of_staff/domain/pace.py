"""Pace and forecast of a key result: pure arithmetic over numbers and local dates.

`pace_of` compares the current value with a straight line from baseline at the start date to
target at the due date. `forecast_of` extends the recent rate (the deltas of the trailing
window, read from the `key_result_days` rollup) to the due date and says whether the key
result is at risk, and why. Both work for "down" key results: the journey and every shortfall
carry the sign of target - baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

PaceLabel = Literal["achieved", "ahead", "on_track", "behind", "overdue"]

# Within this share of the whole journey (|target - baseline|) a key result counts as on track.
ON_TRACK_TOLERANCE = 0.05
# The recent rate is the mean daily delta over this many local days, today included.
RATE_WINDOW_DAYS = 14
# A key result with no outcomes yet is not judged until this many days after its start (or half
# its span, for short ones): a goal set this morning is not "at risk" for having no data yet.
GRACE_DAYS = 7


@dataclass(frozen=True)
class Pace:
    progress: float
    expected_now: float
    pace: PaceLabel
    behind_by: float


@dataclass(frozen=True)
class Forecast:
    rate_per_day: float
    forecast_at_due: float
    at_risk: bool
    risk_reason: str | None


def pace_of(baseline: float, target: float, current: float, start: date, due: date, today: date) -> Pace:
    """Where a key result stands against a straight line from baseline at start to target at due.

    Works for "down" key results too: both the journey and the shortfall carry the sign of
    target - baseline, so "behind" always means "not as far along as the line".
    """
    journey = target - baseline
    elapsed = (today - start).days / (due - start).days
    expected = baseline + journey * min(max(elapsed, 0.0), 1.0)
    progress = (current - baseline) / journey
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


def forecast_of(
    baseline: float,
    target: float,
    current: float,
    start: date,
    due: date,
    today: date,
    *,
    recent_delta: float,
    recent_outcomes: int,
    window_days: int = RATE_WINDOW_DAYS,
) -> Forecast:
    """The value at the due date if the recent rate holds, and whether that misses the target.

    `recent_delta` and `recent_outcomes` are the sums over `rate_window(start, today, window_days)`.
    Not at risk once achieved. At risk when past due, or when the forecast falls short of the
    target in the key result's direction, unless it is still in its grace period (no outcomes in
    the window and fewer than GRACE_DAYS, or half its span, since the start).
    """
    days = rate_window(start, today, window_days)[1]
    rate = recent_delta / days
    forecast = round(current + rate * max(0, (due - today).days), 2)
    sign = math.copysign(1.0, target - baseline)
    rate_shown = round(rate, 3) + 0.0  # + 0.0 turns -0.0 into 0.0
    if (current - baseline) / (target - baseline) >= 1:
        return Forecast(rate_shown, forecast, False, None)
    if today > due:
        return Forecast(
            rate_shown, forecast, True, f"due {due.isoformat()} passed at {_num(current)} of {_num(target)}"
        )
    in_grace = recent_outcomes == 0 and (today - start).days < min(GRACE_DAYS, (due - start).days // 2)
    if in_grace or (target - forecast) * sign <= 0:
        return Forecast(rate_shown, forecast, False, None)
    window = "today's rate" if days == 1 else f"the last {days} days' rate"
    return Forecast(
        rate_shown,
        forecast,
        True,
        f"forecast {_num(forecast)} of {_num(target)} by {due.isoformat()} at {window} ({_num(rate_shown, 3)}/day)",
    )


def _num(value: float, places: int = 2) -> str:
    """A number as a person writes it: 9, 0.2, -1.25 (no exponent, no trailing zeros)."""
    text = f"{round(value, places) + 0.0:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
