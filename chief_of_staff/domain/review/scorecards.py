"""The review's scorecards: per agency and role, a period's outcomes, cost, key results moved, budgets and
decisions.

They read rollups and index ranges only, so they cost the same on an empty workspace and on
one with a million outcomes: agency_days and role_quarter_hours (outcomes per local day / UTC
quarter hour), key_result_days (key-result deltas per day), budget_usage (each budget's draw
per period), denial_hours (denials per UTC hour) and partial indexes over unfinished tasks and
live decisions. The roster
tables (agencies, roles, goals, key results, grants and their budgets) are small and read whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from chief_of_staff.core import ids
from chief_of_staff.core.clock import format_ts, local_date, local_midnight_utc, parse_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.fields import Model, parse_local_date
from chief_of_staff.domain import workspace
from chief_of_staff.domain.authority.grants import period_key

MAX_SCORECARD_DAYS = 366


class Tally(Model):
    """Outcomes in a period by result, what they cost and saved."""

    outcomes: int
    successes: int
    partials: int
    failures: int
    success_rate: float | None
    cost_cents: int
    cost_per_outcome_cents: int | None
    minutes_saved: int


class RoleCard(Tally):
    role: str


class KeyResultCost(Model):
    """How far a key result moved in the period and what each unit toward its target cost the agency."""

    key_result: str
    metric: str
    unit: str
    moved: float
    cost_per_unit_cents: int | None


class BudgetUse(Model):
    """A budget's draw over the calendar periods that overlap the scorecard's, against its limit summed
    over those of them in which the grant was in force (`periods`)."""

    period: Literal["day", "week", "month"]
    periods: str
    used_count: int
    used_cents: int
    max_count: int | None
    max_cents: int | None


class GrantSpend(Model):
    grant: str
    capability: str
    role: str | None
    status: str
    budgets: list[BudgetUse]


class DecisionTally(Model):
    """Decisions asked in the period and how they stand: approved includes used and timed-out approvals."""

    asked: int = 0
    approved: int = 0
    denied: int = 0
    expired: int = 0
    pending: int = 0


class Scorecard(Tally):
    agency: str
    since: date
    until: date
    roles: list[RoleCard]
    key_results: list[KeyResultCost]
    grants: list[GrantSpend]
    decisions: DecisionTally


# --- arithmetic ----------------------------------------------------------------------------------


def _per(cents: float, units: float) -> int | None:
    """Cents per unit, rounded half up; None when nothing was counted."""
    return None if units <= 0 else math.floor(cents / units + 0.5)


def _tally(row: Row) -> dict[str, Any]:
    count, successes = int(row["outcomes"] or 0), int(row["successes"] or 0)
    cost = int(row["cost_cents"] or 0)
    return {
        "outcomes": count,
        "successes": successes,
        "partials": int(row["partials"] or 0),
        "failures": int(row["failures"] or 0),
        "success_rate": round(successes / count, 3) if count else None,
        "cost_cents": cost,
        "cost_per_outcome_cents": _per(cost, count),
        "minutes_saved": int(row["minutes_saved"] or 0),
    }


def _sums(prefix: str) -> str:
    return ", ".join(
        f"total({prefix}.{c}) AS {c}"
        for c in ("outcomes", "successes", "partials", "failures", "cost_cents", "minutes_saved")
    )


# --- scorecards ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Period:
    since: date
    until: date
    start: datetime  # UTC instant of local midnight at `since`
    end: datetime  # UTC instant of local midnight after `until`


def _period(since: date | str, until: date | str, timezone: str) -> _Period:
    first, last = parse_local_date(since, "since"), parse_local_date(until, "until")
    if last < first:
        raise InvalidInput(f"until: {last} is before since ({first}); send until on or after since.")
    if (last - first).days >= MAX_SCORECARD_DAYS:
        raise InvalidInput(f"until: a scorecard covers at most {MAX_SCORECARD_DAYS} days; send a shorter period.")
    return _Period(
        first, last, local_midnight_utc(first, timezone), local_midnight_utc(last + timedelta(days=1), timezone)
    )


async def scorecards(tx: Tx, *, since: date | str, until: date | str) -> list[Scorecard]:
    """Per agency (and its roles) for the local days since..until inclusive: outcomes by result, success
    rate, cost per outcome and per key-result unit, minutes saved, each grant's budget use, decisions."""
    timezone = (await workspace.get(tx)).timezone
    span = _period(since, until, timezone)
    agencies = await tx.all(
        f"SELECT a.id, a.name, a.status, {_sums('d')} FROM agencies AS a LEFT JOIN agency_days AS d "
        "ON d.agency_id = a.id AND d.day BETWEEN ? AND ? GROUP BY a.id ORDER BY a.id",
        (span.since.isoformat(), span.until.isoformat()),
    )
    roles = await _role_cards(tx, span)
    costs = await _key_result_moves(tx, span)
    grants = await _grant_spend(tx, span, timezone)
    asked = await _decision_tallies(tx, span)
    cards = []
    for row in agencies:
        if row["status"] != "active" and not row["outcomes"]:
            continue
        tally = _tally(row)
        cards.append(
            Scorecard(
                **tally,
                agency=row["name"],
                since=span.since,
                until=span.until,
                roles=roles.get(row["id"], []),
                key_results=[_kr_cost(kr, int(tally["cost_cents"] or 0)) for kr in costs.get(row["id"], [])],
                grants=grants.get(row["id"], []),
                decisions=asked.get(row["id"], DecisionTally()),
            )
        )
    return cards


async def _role_cards(tx: Tx, span: _Period) -> dict[int, list[RoleCard]]:
    """Active roles (and retired ones that worked in the period) by agency, from the quarter-hour rollup."""
    rows = await tx.all(
        f"SELECT r.id, r.agency_id, r.name, r.status, {_sums('q')} FROM roles AS r "
        "LEFT JOIN role_quarter_hours AS q ON q.role_id = r.id AND q.slot >= ? AND q.slot < ? "
        "GROUP BY r.id ORDER BY r.id",
        (format_ts(span.start)[:16], format_ts(span.end)[:16]),
    )
    cards: dict[int, list[RoleCard]] = {}
    for row in rows:
        if row["status"] == "active" or row["outcomes"]:
            cards.setdefault(row["agency_id"], []).append(RoleCard(**_tally(row), role=row["name"]))
    return cards


async def _key_result_moves(tx: Tx, span: _Period) -> dict[int, list[Row]]:
    """Key results of active goals, and of closed ones that moved in the period, by agency."""
    rows = await tx.all(
        "SELECT kr.id, kr.metric, kr.unit, kr.baseline, kr.target, g.agency_id, g.status, "
        "(SELECT total(d.delta_sum) FROM key_result_days AS d WHERE d.key_result_id = kr.id "
        "AND d.day BETWEEN ? AND ?) AS moved FROM goals AS g JOIN key_results AS kr ON kr.goal_id = g.id "
        "ORDER BY kr.id",
        (span.since.isoformat(), span.until.isoformat()),
    )
    found: dict[int, list[Row]] = {}
    for row in rows:
        if row["status"] == "active" or row["moved"]:
            found.setdefault(row["agency_id"], []).append(row)
    return found


def _kr_cost(row: Row, cost_cents: int) -> KeyResultCost:
    # Units count toward the target: a "down" key result that fell by 2 moved 2 units.
    toward = row["moved"] * math.copysign(1.0, row["target"] - row["baseline"])
    return KeyResultCost(
        key_result=ids.format_id("key_result", row["id"]),
        metric=row["metric"],
        unit=row["unit"],
        moved=round(row["moved"], 6) + 0.0,
        cost_per_unit_cents=_per(cost_cents, toward),
    )


def _period_keys(period: str, first: date, last: date) -> tuple[str, str, int]:
    """The first and last calendar period key overlapping the local days first..last, and how many
    periods that is."""
    if period == "day":
        count = (last - first).days + 1
    elif period == "week":
        count = ((last - timedelta(days=last.weekday())) - (first - timedelta(days=first.weekday()))).days // 7 + 1
    else:
        count = (last.year * 12 + last.month) - (first.year * 12 + first.month) + 1
    return _key_of(period, first), _key_of(period, last), count


def _key_of(period: str, day: date) -> str:
    return period_key(period, datetime(day.year, day.month, day.day, 12, tzinfo=UTC), "UTC")


def _in_force(row: Row, span: _Period, bounds: tuple[str, str], timezone: str) -> tuple[date, date] | None:
    """The local days of the span on which the grant was in force: from the day it was made to the day it
    was revoked or expired (a grant that ends at a local midnight is not in force on the day that follows).
    None when that is the whole span, the usual case, told from the stored text alone (`bounds` are the
    span's UTC start and end as stored), so only a grant made or ended inside the span is parsed."""
    start, end = bounds
    ends = [row[column] for column in ("revoked_at", "expires_at") if row[column] is not None and row[column] < end]
    if row["created_at"] <= start and not ends:
        return None
    made = span.since if row["created_at"] <= start else local_date(parse_ts(row["created_at"]), timezone)
    last = min([span.until] + [local_date(parse_ts(text) - timedelta(microseconds=1), timezone) for text in ends])
    return max(span.since, made), max(made, last)


async def _grant_spend(tx: Tx, span: _Period, timezone: str) -> dict[int, list[GrantSpend]]:
    """Grants in force during the period, by agency. Each budget's use is summed over the calendar periods
    overlapping the span, and its limit over those in which the grant was in force: a grant made on the
    last day of a two-week review has one week's limit, not two."""
    keys = {period: _period_keys(period, span.since, span.until) for period in ("day", "week", "month")}
    bounds = (format_ts(span.start), format_ts(span.end))
    rows = await tx.all(
        "SELECT g.id, g.agency_id, g.capability, g.status, g.created_at, g.revoked_at, g.expires_at, "
        "r.name AS role_name, b.period, "
        "b.max_count, b.max_cents, total(u.used_count) AS used_count, total(u.used_cents) AS used_cents "
        "FROM grants AS g LEFT JOIN roles AS r ON r.id = g.role_id LEFT JOIN grant_budgets AS b ON b.grant_id = g.id "
        "LEFT JOIN budget_usage AS u ON u.budget_id = b.id AND u.period_key "
        "BETWEEN CASE b.period WHEN 'day' THEN :d1 WHEN 'week' THEN :w1 ELSE :m1 END "
        "AND CASE b.period WHEN 'day' THEN :d2 WHEN 'week' THEN :w2 ELSE :m2 END "
        "WHERE g.created_at < :end AND (g.revoked_at IS NULL OR g.revoked_at > :start) "
        "AND (g.expires_at IS NULL OR g.expires_at > :start) GROUP BY g.id, b.id ORDER BY g.id, b.id",
        {
            "d1": keys["day"][0],
            "d2": keys["day"][1],
            "w1": keys["week"][0],
            "w2": keys["week"][1],
            "m1": keys["month"][0],
            "m2": keys["month"][1],
            "start": bounds[0],
            "end": bounds[1],
        },
    )
    spend: dict[int, dict[int, GrantSpend]] = {}
    windows: dict[int, tuple[date, date] | None] = {}
    for row in rows:
        by_grant = spend.setdefault(row["agency_id"], {})
        if row["id"] not in by_grant:
            windows[row["id"]] = _in_force(row, span, bounds, timezone)
            status = row["status"] if row["expires_at"] is None or row["expires_at"] > tx.now_text else "expired"
            by_grant[row["id"]] = GrantSpend(
                grant=ids.format_id("grant", row["id"]),
                capability=row["capability"],
                role=row["role_name"],
                status=status,
                budgets=[],
            )
        if row["period"] is not None:
            window = windows[row["id"]]
            active = keys[row["period"]] if window is None else _period_keys(row["period"], *window)
            by_grant[row["id"]].budgets.append(_budget_use(row, active))
    return {agency: list(grants.values()) for agency, grants in spend.items()}


def _budget_use(row: Row, active: tuple[str, str, int]) -> BudgetUse:
    """Used over the span's periods (the grant drew nothing outside its own), limit over its active ones."""
    first, last, count = active
    return BudgetUse(
        period=row["period"],
        periods=first if first == last else f"{first}..{last}",
        used_count=int(row["used_count"]),
        used_cents=int(row["used_cents"]),
        max_count=None if row["max_count"] is None else row["max_count"] * count,
        max_cents=None if row["max_cents"] is None else row["max_cents"] * count,
    )


async def _decision_tallies(tx: Tx, span: _Period) -> dict[int, DecisionTally]:
    """Decisions opened in the period, by agency and how they stand now."""
    rows = await tx.all(
        "SELECT agency_id, sum(status IN ('approved', 'redeemed')) AS approved, sum(status = 'denied') AS denied, "
        "sum(status = 'expired' OR (status = 'pending' AND expires_at <= :now)) AS expired, "
        "sum(status = 'pending' AND expires_at > :now) AS pending, count(*) AS asked "
        "FROM decisions WHERE created_at >= :start AND created_at < :end AND agency_id IS NOT NULL "
        "GROUP BY agency_id",
        {"now": tx.now_text, "start": format_ts(span.start), "end": format_ts(span.end)},
    )
    return {
        row["agency_id"]: DecisionTally(
            asked=row["asked"],
            approved=row["approved"],
            denied=row["denied"],
            expired=row["expired"],
            pending=row["pending"],
        )
        for row in rows
    }
