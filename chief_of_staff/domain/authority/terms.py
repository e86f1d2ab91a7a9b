"""What a grant's bounds are, and which changes to them widen authority.

Pure: no storage. `widens` is the trust rule for changing a grant: a change
that narrows (lower limits, fewer targets, sooner end, stricter mode) is safe
for anyone, one that widens is an operator act (design brief, Trust). Used by
`grants` to gate changes and by reviews to classify proposals.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Annotated, Literal, Protocol

from pydantic import Field, StrictInt, model_validator

from chief_of_staff.core.fields import Cents, LocalDate, Model, Text, money

Period = Literal["day", "week", "month"]
Mode = Literal["auto", "notify", "approve"]
# What each mode does, as a mode field's description says it.
MODE_HELP = "auto acts; notify acts and tells; approve asks each time"
OnTimeout = Literal["deny", "approve"]
Pattern = Annotated[str, Field(min_length=1, max_length=200)]
Patterns = Annotated[list[Pattern], Field(max_length=20)]

_PERIOD_ORDER: tuple[Period, ...] = ("day", "week", "month")
# Moving right widens: the agency asks less often.
_MODE_ORDER = ("approve", "notify", "auto")


class BudgetSpec(Model):
    """A per-period budget: a count and/or an amount per calendar day, ISO week or month."""

    period: Period = Field(description="Calendar, in the workspace time zone")
    max_count: Annotated[StrictInt, Field(ge=0, le=1_000_000_000)] | None = Field(
        None, description="Actions per period"
    )
    max_cents: Cents | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> BudgetSpec:
        if self.max_count is None and self.max_cents is None:
            raise ValueError("a budget needs max_count, max_cents or both")
        return self


def one_per_period(budgets: list[BudgetSpec]) -> None:
    """Refuse two budgets for the same period (a model validator's check, hence ValueError)."""
    periods = [b.period for b in budgets]
    if len(periods) != len(set(periods)):
        raise ValueError("send at most one budget per period (day, week, month)")


class GrantTerms(Model):
    """The bounds of a grant that a change may move: what `widens` compares. Budgets in day, week, month order."""

    mode: Mode
    per_action_cap_cents: Cents | None = None
    budgets: Annotated[list[BudgetSpec], Field(max_length=3)] = Field(default_factory=list)
    scope_allow: Patterns = Field(default_factory=list)
    scope_deny: Patterns = Field(default_factory=list)
    expires_on: LocalDate | None = None
    on_timeout: OnTimeout = "deny"
    rationale: Text = ""

    @model_validator(mode="after")
    def _budgets_in_order(self) -> GrantTerms:
        one_per_period(self.budgets)
        self.budgets.sort(key=lambda b: _PERIOD_ORDER.index(b.period))
        return self


class _Bounds(Protocol):
    @property
    def per_action_cap_cents(self) -> int | None: ...
    @property
    def budgets(self) -> list[BudgetSpec]: ...


def largest_money_bound(bounds: _Bounds) -> int | None:
    """The largest amount a grant names; None when it names none (then it allows amount 0 only)."""
    amounts = [bounds.per_action_cap_cents, *(b.max_cents for b in bounds.budgets)]
    return max((a for a in amounts if a is not None), default=None)


def _periods_touched(period: Period, window_days: int) -> int:
    """How many calendar periods a rolling window of `window_days` can touch at most (it may start mid-period)."""
    length = {"day": 1, "week": 7, "month": 28}[period]
    return -(-window_days // length) + 1


def money_exposure(bounds: _Bounds, window_days: int) -> int | None:
    """The most money a grant can let out within any rolling window of `window_days`; None when nothing bounds it.

    What a chat act draws from the chat allowance when it creates or widens a grant, so the money chat
    lets out in any window never exceeds the allowance. A grant with no money bound at all allows
    amount 0 only, so it exposes nothing. Otherwise each action is bounded by the cap (and by the
    smallest amount budget), each budget bounds every calendar period the window can touch (a 7-day
    window touches 8 days, 2 ISO weeks or 2 months), and the tightest budget wins.
    """
    if largest_money_bound(bounds) is None:
        return 0
    # One action can cost no more than the cap, nor more than the smallest amount budget lets through.
    per_action = min(a for a in [bounds.per_action_cap_cents, *(b.max_cents for b in bounds.budgets)] if a is not None)
    spans = [
        limit * _periods_touched(b.period, window_days)
        for b in bounds.budgets
        if (limit := _period_bound(b, per_action)) is not None
    ]
    return min(spans, default=None)


def _period_bound(budget: BudgetSpec, per_action: int) -> int | None:
    bounds = [budget.max_cents, None if budget.max_count is None else budget.max_count * per_action]
    return min((b for b in bounds if b is not None), default=None)


def widens(before: GrantTerms, after: GrantTerms) -> list[str]:
    """Every way the change from `before` to `after` widens authority, in plain words; empty if it only narrows.

    Doubtful cases count as widening (removing a cap when no budget bounds money leaves amount 0
    only, yet is listed): a false "widens" only sends the change to the operator, a false
    "narrows" would let the agency raise its own authority.
    """
    return [*money_widening(before, after), *authority_widening(before, after)]


def money_widening(before: GrantTerms, after: GrantTerms) -> list[str]:
    """The ways a change raises how much money may go out: the only widening chat may make, against its allowance."""
    reasons = _raised("per-action cap", before.per_action_cap_cents, after.per_action_cap_cents, money)
    if largest_money_bound(before) is None and largest_money_bound(after) is not None:
        reasons.append("lets actions cost money, where only amount 0 was allowed")
    new = {b.period: b for b in after.budgets}
    for old in before.budgets:
        if old.period in new:
            reasons += _raised(f"{old.period} amount limit", old.max_cents, new[old.period].max_cents, money)
    return reasons


def authority_widening(before: GrantTerms, after: GrantTerms) -> list[str]:
    """Every widening that is not a raised money bound: counts, budgets removed, scope, expiry, mode, timeout.

    Chat may never make these, at any amount (design brief, Trust, property 2).
    """
    return [*_count_widening(before, after), *_scope_widening(before, after), *_standing_widening(before, after)]


def _raised(label: str, old: int | None, new: int | None, show: Callable[[int], str]) -> list[str]:
    """A limit (None = none) that is removed or raised."""
    if old is None or (new is not None and new <= old):
        return []
    if new is None:
        return [f"removes the {label} of {show(old)}"]
    return [f"raises the {label} from {show(old)} to {show(new)}"]


def _count_widening(before: GrantTerms, after: GrantTerms) -> list[str]:
    new = {b.period: b for b in after.budgets}
    reasons: list[str] = []
    for old in before.budgets:
        if old.period not in new:
            reasons.append(f"removes the {old.period} budget")
            continue
        reasons += _raised(f"{old.period} count limit", old.max_count, new[old.period].max_count, str)
    return reasons


def _scope_widening(before: GrantTerms, after: GrantTerms) -> list[str]:
    reasons = [f"drops the deny pattern {p!r}" for p in _missing(before.scope_deny, after.scope_deny)]
    if before.scope_allow and not after.scope_allow:
        reasons.append("empties the allow list, so any target is allowed")
    elif before.scope_allow:
        reasons += [f"allows targets matching {p!r}" for p in _missing(after.scope_allow, before.scope_allow)]
    return reasons


def _missing(patterns: list[str], among: list[str]) -> list[str]:
    """Patterns not in `among`, compared as matching compares them (case-insensitively)."""
    known = {p.strip().lower() for p in among}
    return [p for p in patterns if p.strip().lower() not in known]


def _standing_widening(before: GrantTerms, after: GrantTerms) -> list[str]:
    """Expiry, mode and timeout policy."""
    reasons = []
    if before.expires_on is not None and after.expires_on is None:
        reasons.append(f"removes the end date {before.expires_on}")
    elif before.expires_on is not None and after.expires_on is not None and after.expires_on > before.expires_on:
        reasons.append(f"extends the end date from {before.expires_on} to {after.expires_on}")
    if _MODE_ORDER.index(after.mode) > _MODE_ORDER.index(before.mode):
        reasons.append(f"changes the mode from {before.mode} to {after.mode}")
    if before.on_timeout == "deny" and after.on_timeout == "approve":
        reasons.append("lets a decision left unanswered go ahead when it expires")
    return reasons


def update_command(short: str, before: GrantTerms, after: GrantTerms) -> str:
    """The terminal command that makes this change through the verified channel."""
    parts = [f"chief-of-staff grant-update {short}"]
    if after.mode != before.mode:
        parts.append(f"--mode {after.mode}")
    if after.per_action_cap_cents != before.per_action_cap_cents:
        parts.append(f"--cap-cents {_or_none(after.per_action_cap_cents)}")
    old, new = {b.period: b for b in before.budgets}, {b.period: b for b in after.budgets}
    for period in _PERIOD_ORDER:
        if old.get(period) != new.get(period):
            budget = new.get(period)
            parts.append(
                f"--{period}-count {_or_none(budget and budget.max_count)} "
                f"--{period}-cents {_or_none(budget and budget.max_cents)}"
            )
    if after.scope_allow != before.scope_allow:
        parts.append(" ".join(["--allow", *map(shlex.quote, after.scope_allow)]))
    if after.scope_deny != before.scope_deny:
        parts.append(" ".join(["--deny", *map(shlex.quote, after.scope_deny)]))
    if after.expires_on != before.expires_on:
        parts.append(f"--expires-on {_or_none(after.expires_on)}")
    if after.on_timeout != before.on_timeout:
        parts.append(f"--on-timeout {after.on_timeout}")
    if after.rationale != before.rationale:
        parts.append(f"--rationale {shlex.quote(after.rationale)}")
    return " ".join(parts)


def _or_none(value: object) -> str:
    return "none" if value is None else str(value)
