"""The console's gauges: how much of a limit is used, drawn as SVG on the server, with the same in words.

A gauge is a bar in a WIDTH x HEIGHT box: the track is the limit, the filled part what is used of it in
the current period (a grant's budget) or window (the chat allowance). Its level (ok, near, full, over)
is a CSS class; "over" is possible when a limit was lowered after the period's use. Every gauge comes with
its text equivalent, the sentence the template writes beside it and into the SVG's description. The
template escapes all of it; nothing here writes markup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from chief_of_staff.core.fields import money
from chief_of_staff.domain.authority.grants import GrantView
from chief_of_staff.domain.trust import Allowance

WIDTH, HEIGHT = 240, 20
NEAR = 0.8  # from here on a gauge warns: most of the limit is used

Level = Literal["ok", "near", "full", "over"]

PERIOD_WORDS = {"day": "today", "week": "this week", "month": "this month"}


@dataclass(frozen=True)
class Gauge:
    """One limit's use: the bar's geometry, its level, and the sentence that says the same."""

    key: str  # unique on the page: the SVG's title and description are named by it
    title: str
    width: int
    height: int
    fill: float
    level: Level
    words: str


def gauge(key: str, title: str, used: int, limit: int, words: str) -> Gauge:
    """A bar `used` of `limit` long (a limit of 0 is full from the start); longer than the track never."""
    ratio = 1.0 if limit <= 0 else used / limit
    return Gauge(
        key=key,
        title=title,
        width=WIDTH,
        height=HEIGHT,
        fill=round(min(ratio, 1.0) * WIDTH, 1),
        level=level(used, limit),
        words=words,
    )


def level(used: int, limit: int) -> Level:
    if used > limit:
        return "over"
    if used >= limit:
        return "full"
    return "near" if used >= NEAR * limit else "ok"


def budget_gauges(grant: GrantView, currency: str) -> list[Gauge]:
    """A gauge for each limit of each budget of a grant, its count and its amount, in the current period."""

    def show(cents: int) -> str:
        return money(cents, currency)

    shown = []
    for budget in grant.budgets:
        when = PERIOD_WORDS[budget.period]
        limits: list[tuple[str, int, int, Callable[[int], str]]] = []
        if budget.max_count is not None:
            limits.append(("actions", budget.used_count, budget.max_count, str))
        if budget.max_cents is not None:
            limits.append(("amount", budget.used_cents, budget.max_cents, show))
        for what, used, limit, shown_as in limits:
            unit = "actions" if what == "actions" else ""
            words = f"{when.capitalize()} ({budget.period_key}): {_used_words(used, limit, shown_as, unit)}"
            key = f"{grant.id}-{budget.period}-{what}"
            shown.append(gauge(key, f"{grant.id}: {what} used {when}", used, limit, words))
    return shown


def allowance_gauge(allowance: Allowance, currency: str) -> Gauge:
    """The chat allowance: what chat acts drew in the rolling window, against the allowance."""

    def show(cents: int) -> str:
        return money(cents, currency)

    words = (
        f"{show(allowance.used_cents)} of {show(allowance.allowance_cents)} drawn by chat approvals in the last "
        f"{allowance.window_days} days; {show(allowance.left_cents)} left."
    )
    return gauge("chat-allowance", "Chat allowance", allowance.used_cents, allowance.allowance_cents, words)


def _used_words(used: int, limit: int, show: Callable[[int], str], unit: str = "") -> str:
    """ "12 of 50 actions used, 38 left." (or "2 over the limit." when a lowered limit is already passed)."""
    of = f"{show(used)} of {show(limit)}" + (f" {unit}" if unit else "")
    rest = f"{show(used - limit)} over the limit" if used > limit else f"{show(limit - used)} left"
    return f"{of} used, {rest}."
