"""The review's anomalies: what the operator should look at, each with the numbers that make it one.

They read rollups and index ranges only, so they cost the same on an empty workspace and on one
with a million outcomes: agency_days (outcomes per local day), budget_usage (each budget's draw per
period), denial_hours (denials per UTC hour) and partial indexes over unfinished tasks and live
decisions. The roster tables (agencies, roles, goals, key results, grants and their budgets) are
small and read whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Literal

from chief_of_staff.core import ids
from chief_of_staff.core.clock import format_ts, local_date, local_midnight_utc, parse_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.fields import Model, money, parse_local_date
from chief_of_staff.domain import goals, workspace
from chief_of_staff.domain.authority.grants import period_key

# Failure rate: the last 7 local days (today included) against the 28 before them. It fires only on
# enough evidence: 10+ outcomes and 3+ failures this week, 20+ outcomes in the baseline, and a rate
# more than 10 percentage points above the baseline's. One bad afternoon is not an anomaly.
FAILURE_RECENT_DAYS, FAILURE_BASELINE_DAYS = 7, 28
FAILURE_MIN_RECENT_OUTCOMES, FAILURE_MIN_RECENT_FAILURES, FAILURE_MIN_BASELINE_OUTCOMES = 10, 3, 20
FAILURE_RATE_MARGIN = Fraction(1, 10)
# Claimed this many times and still unfinished: its leases keep running out (or it is handed back).
LEASE_CHURN_CLAIMS = 3
# Budget burn: on pace to exceed (used / elapsed share of the period > limit), once a quarter is used.
BURN_MIN_SHARE = Fraction(1, 4)
# Denials: the last 24 hours against the daily average of the 7 days before; 5+ and over 3x.
SPIKE_BASELINE_DAYS, SPIKE_FACTOR, SPIKE_MIN_DENIALS = 7, 3, 5
DECISION_WAIT = timedelta(hours=24)
# Reservations whose hold ran out unsettled (spent in full) in this many days: every one is reported.
UNSETTLED_DAYS = 7
# Anomalies about single tasks or decisions stop here (most urgent first); the inbox lists the rest.
MAX_PER_KIND = 10

AnomalyKind = Literal[
    "failure_rate",
    "lease_churn",
    "overdue_task",
    "budget_burn",
    "denial_spike",
    "goal_behind",
    "goal_at_risk",
    "decision_waiting",
    "unsettled_holds",
]
Evidence = dict[str, float | int | str]
UNFINISHED = "('open', 'claimed', 'blocked', 'waiting')"


class Anomaly(Model):
    """Something the operator should look at, with the numbers that make it one."""

    kind: AnomalyKind
    subject: str
    message: str
    evidence: Evidence


# --- anomalies -----------------------------------------------------------------------------------


async def anomalies(
    tx: Tx, *, today: date | str | None = None, decision_wait: timedelta = DECISION_WAIT
) -> list[Anomaly]:
    """What the server finds worth the operator's look, each with its evidence (see the thresholds above).

    `today` (default: the workspace's local today) anchors the day-based checks: failure rate and
    overdue tasks. Leases, budget periods, denials and waiting decisions are measured from tx.now.
    """
    timezone = (await workspace.get(tx)).timezone
    day = local_date(tx.now, timezone) if today is None else parse_local_date(today, "today")
    found: list[Anomaly] = []
    found += await _failure_rates(tx, day)
    found += await _lease_churn(tx)
    found += await _overdue_tasks(tx, day)
    found += await _budget_burn(tx, timezone)
    found += await _denial_spikes(tx)
    found += _goals_behind(await goals.list_goals(tx))
    found += await _decisions_waiting(tx, decision_wait)
    found += await _unsettled_holds(tx)
    return found


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 0.0


async def _failure_rates(tx: Tx, today: date) -> list[Anomaly]:
    recent = today - timedelta(days=FAILURE_RECENT_DAYS - 1)
    first = recent - timedelta(days=FAILURE_BASELINE_DAYS)
    rows = await tx.all(
        "SELECT a.id, a.name, total(CASE WHEN d.day >= :recent THEN d.outcomes END) AS recent_outcomes, "
        "total(CASE WHEN d.day >= :recent THEN d.failures END) AS recent_failures, "
        "total(CASE WHEN d.day < :recent THEN d.outcomes END) AS base_outcomes, "
        "total(CASE WHEN d.day < :recent THEN d.failures END) AS base_failures "
        "FROM agencies AS a JOIN agency_days AS d ON d.agency_id = a.id AND d.day BETWEEN :first AND :today "
        "WHERE a.status = 'active' GROUP BY a.id ORDER BY a.id",
        {"recent": recent.isoformat(), "first": first.isoformat(), "today": today.isoformat()},
    )
    found = []
    for row in rows:
        outcomes, failures = int(row["recent_outcomes"]), int(row["recent_failures"])
        base_outcomes, base_failures = int(row["base_outcomes"]), int(row["base_failures"])
        if (
            outcomes < FAILURE_MIN_RECENT_OUTCOMES
            or failures < FAILURE_MIN_RECENT_FAILURES
            or base_outcomes < FAILURE_MIN_BASELINE_OUTCOMES
        ):
            continue
        if Fraction(failures, outcomes) <= Fraction(base_failures, base_outcomes) + FAILURE_RATE_MARGIN:
            continue
        rate, base = _rate(failures, outcomes), _rate(base_failures, base_outcomes)
        found.append(
            Anomaly(
                kind="failure_rate",
                subject=ids.format_id("agency", row["id"]),
                message=f"{row['name']} failed {failures} of {outcomes} outcomes in the last {FAILURE_RECENT_DAYS} "
                f"days ({rate:.0%}), against {base:.0%} in the {FAILURE_BASELINE_DAYS} days before.",
                evidence={
                    "failures": failures,
                    "outcomes": outcomes,
                    "failure_rate": rate,
                    "baseline_failures": base_failures,
                    "baseline_outcomes": base_outcomes,
                    "baseline_rate": base,
                },
            )
        )
    return found


async def _lease_churn(tx: Tx) -> list[Anomaly]:
    # The literals repeat tasks_lease_churn's WHERE: a partial index serves only queries that imply it.
    rows = await tx.all(
        "SELECT id, status, lease_count, lease_expires_at FROM tasks INDEXED BY tasks_lease_churn "
        f"WHERE lease_count >= {LEASE_CHURN_CLAIMS} AND status IN {UNFINISHED} "
        f"ORDER BY lease_count DESC, id LIMIT {MAX_PER_KIND}"
    )
    found = []
    for row in rows:
        live = row["status"] == "claimed" and (row["lease_expires_at"] or "") > tx.now_text
        lapsed = row["lease_count"] - int(live)
        label = ids.format_id("task", row["id"])
        found.append(
            Anomaly(
                kind="lease_churn",
                subject=label,
                message=f"{label} was claimed {row['lease_count']} times and is still {row['status']}: {lapsed} "
                "leases ended without finishing it. It may be too big, unclear or blocked.",
                evidence={"claims": row["lease_count"], "unfinished_leases": lapsed, "status": row["status"]},
            )
        )
    return found


async def _overdue_tasks(tx: Tx, today: date) -> list[Anomaly]:
    rows = await tx.all(
        f"SELECT id, priority, due_on, status FROM tasks INDEXED BY tasks_due WHERE due_on IS NOT NULL "
        f"AND status IN {UNFINISHED} AND priority IN (0, 1) AND due_on < ? ORDER BY priority, due_on, id "
        f"LIMIT {MAX_PER_KIND}",
        (today.isoformat(),),
    )
    found = []
    for row in rows:
        late = (today - date.fromisoformat(row["due_on"])).days
        label = ids.format_id("task", row["id"])
        found.append(
            Anomaly(
                kind="overdue_task",
                subject=label,
                message=f"{label} (P{row['priority']}, {row['status']}) was due {row['due_on']}, "
                f"{late} day{'s' * (late != 1)} ago.",
                evidence={
                    "priority": f"P{row['priority']}",
                    "due_on": row["due_on"],
                    "days_overdue": late,
                    "status": row["status"],
                },
            )
        )
    return found


def _period_bounds(period: str, now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """The UTC start and end of the calendar period holding `now` in the workspace timezone."""
    day = local_date(now, timezone)
    if period == "day":
        first, after = day, day + timedelta(days=1)
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        after = first + timedelta(days=7)
    else:
        first = day.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    return local_midnight_utc(first, timezone), local_midnight_utc(after, timezone)


async def _budget_burn(tx: Tx, timezone: str) -> list[Anomaly]:
    keys = {period: period_key(period, tx.now, timezone) for period in ("day", "week", "month")}
    rows = await tx.all(
        "SELECT g.id, g.capability, a.name AS agency_name, b.period, b.max_count, b.max_cents, "
        "coalesce(u.used_count, 0) AS used_count, coalesce(u.used_cents, 0) AS used_cents "
        "FROM grants AS g JOIN agencies AS a ON a.id = g.agency_id JOIN grant_budgets AS b ON b.grant_id = g.id "
        "LEFT JOIN budget_usage AS u ON u.budget_id = b.id "
        "AND u.period_key = CASE b.period WHEN 'day' THEN :day WHEN 'week' THEN :week ELSE :month END "
        "WHERE g.status = 'active' AND (g.expires_at IS NULL OR g.expires_at > :now) ORDER BY g.id, b.id",
        {**keys, "now": tx.now_text},
    )
    found = []
    for row in rows:
        start, end = _period_bounds(row["period"], tx.now, timezone)
        elapsed = Fraction((tx.now - start) // timedelta(microseconds=1), (end - start) // timedelta(microseconds=1))
        for used, limit, unit in (
            (row["used_count"], row["max_count"], "count"),
            (row["used_cents"], row["max_cents"], "cents"),
        ):
            if limit and used >= BURN_MIN_SHARE * limit and used > limit * elapsed:
                found.append(_burn(row, keys[row["period"]], used, limit, unit, elapsed))
    return found


def _burn(row: Row, key: str, used: int, limit: int, unit: str, elapsed: Fraction) -> Anomaly:
    label = ids.format_id("grant", row["id"])
    projected = float(used / elapsed) if elapsed else math.inf
    message = (
        f"{label} {row['capability']} ({row['agency_name']}) has used {_amount(used, unit)} of "
        f"{_amount(limit, unit)} this {row['period']} ({key}) with {float(elapsed):.0%} of it gone: "
        + ("the budget is used up." if used >= limit else f"on pace for {_amount(projected, unit)}.")
    )
    return Anomaly(
        kind="budget_burn",
        subject=label,
        message=message,
        evidence={
            "period": key,
            "unit": unit,
            "used": used,
            "limit": limit,
            "elapsed": round(float(elapsed), 3),
            "projected": round(projected, 2) if elapsed else used,
        },
    )


def _amount(value: float, unit: str) -> str:
    return money(round(value)) if unit == "cents" else f"{round(value, 1):g}"


async def _denial_spikes(tx: Tx) -> list[Anomaly]:
    # Whole UTC hours, the current one included: 24 recent hour slots and the 7 x 24 before them.
    recent = tx.now - timedelta(hours=23)
    first = recent - timedelta(days=SPIKE_BASELINE_DAYS)
    rows = await tx.all(
        "SELECT a.id, a.name, total(CASE WHEN h.hour >= :recent THEN h.denials END) AS recent, "
        "total(CASE WHEN h.hour < :recent THEN h.denials END) AS before FROM agencies AS a "
        "JOIN denial_hours AS h ON h.agency_id = a.id AND h.hour BETWEEN :first AND :now GROUP BY a.id ORDER BY a.id",
        {"recent": _hour(recent), "first": _hour(first), "now": _hour(tx.now)},
    )
    found = []
    for row in rows:
        recent_count, before = int(row["recent"]), int(row["before"])
        # recent > factor x (before / days), in whole numbers.
        if recent_count < SPIKE_MIN_DENIALS or recent_count * SPIKE_BASELINE_DAYS <= SPIKE_FACTOR * before:
            continue
        average = round(before / SPIKE_BASELINE_DAYS, 2)
        found.append(
            Anomaly(
                kind="denial_spike",
                subject=ids.format_id("agency", row["id"]),
                message=f"{row['name']} was denied {recent_count} times in the last 24 hours, against {average:g} a "
                f"day over the {SPIKE_BASELINE_DAYS} days before. It may be trying what its grants do not allow.",
                evidence={"denials_24h": recent_count, "baseline_denials": before, "baseline_daily_average": average},
            )
        )
    return found


def _hour(instant: datetime) -> str:
    """The denial_hours key of an instant: its UTC hour, 2026-11-23T08."""
    return format_ts(instant)[:13]


def _goals_behind(views: Iterable[goals.GoalView]) -> list[Anomaly]:
    found = []
    for goal in views:
        for kr in goal.key_results:
            # at_risk is pace.standing_of's verdict, drawn with the label: behind, overdue or at_risk.
            if not kr.at_risk:
                continue
            behind = kr.pace in ("behind", "overdue")
            where = f"{kr.id} {kr.metric} of {goal.id} ({goal.agency})"
            state = (
                f"is {kr.pace}: {kr.current:g} against {kr.expected_now:g} expected by today, "
                f"target {kr.target:g} by {kr.due_date}"
                if behind
                else f"is at risk: {kr.risk_reason}"
            )
            evidence: Evidence = {
                "goal": goal.id,
                "pace": kr.pace,
                "current": kr.current,
                "expected_now": kr.expected_now,
                "behind_by": kr.behind_by,
                "target": kr.target,
                "due_date": kr.due_date,
            }
            if kr.forecast_at_due is not None:  # none before the key result's minimum history
                evidence["forecast_at_due"] = kr.forecast_at_due
            found.append(
                Anomaly(
                    kind="goal_behind" if behind else "goal_at_risk",
                    subject=kr.id,
                    message=f"{where} {state}.",
                    evidence=evidence,
                )
            )
    return found


async def _decisions_waiting(tx: Tx, wait: timedelta) -> list[Anomaly]:
    rows = await tx.all(
        "SELECT d.id, d.kind, d.created_at, d.expires_at, a.name AS agency_name FROM decisions AS d "
        "INDEXED BY decisions_pending LEFT JOIN agencies AS a ON a.id = d.agency_id "
        "WHERE d.status = 'pending' AND d.expires_at > ? "
        f"AND d.created_at < ? ORDER BY d.created_at, d.id LIMIT {MAX_PER_KIND}",
        (tx.now_text, format_ts(tx.now - wait)),
    )
    found = []
    for row in rows:
        hours = int((tx.now - parse_ts(row["created_at"])) // timedelta(hours=1))
        label = ids.format_id("decision", row["id"])
        source = f" from {row['agency_name']}" if row["agency_name"] else ""
        found.append(
            Anomaly(
                kind="decision_waiting",
                subject=label,
                message=f"{label} ({row['kind']}{source}) has waited {hours} hours for a decision; "
                f"it expires at {row['expires_at']}.",
                evidence={"hours_waiting": hours, "expires_at": row["expires_at"], "kind": row["kind"]},
            )
        )
    return found


async def _unsettled_holds(tx: Tx) -> list[Anomaly]:
    """Per agency, the reservations whose hold ran out unsettled: each was spent in full, never refunded.

    Holds last a day, so those that ran out in the window were made in it or the day before: an index
    range on the ledger's creation time.
    """
    since = tx.now - timedelta(days=UNSETTLED_DAYS)
    rows = await tx.all(
        "SELECT a.id, a.name, count(*) AS holds, total(u.amount_cents) AS cents FROM authorizations AS u "
        "INDEXED BY authorizations_by_time JOIN agencies AS a ON a.id = u.agency_id "
        "WHERE u.created_at >= :made AND u.answer = 'allowed' AND u.status = 'expired' AND u.closed_at > :since "
        "GROUP BY a.id ORDER BY a.id",
        {"made": format_ts(since - timedelta(days=1)), "since": format_ts(since)},
    )
    return [
        Anomaly(
            kind="unsettled_holds",
            subject=ids.format_id("agency", row["id"]),
            message=f"{row['name']} never settled or released {row['holds']} reservation(s) in the last "
            f"{UNSETTLED_DAYS} days; they were counted as spent in full ({money(int(row['cents']))}). The agency "
            "should settle what it spent and release what it did not do.",
            evidence={"reservations": int(row["holds"]), "spent_cents": int(row["cents"])},
        )
        for row in rows
    ]
