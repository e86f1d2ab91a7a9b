"""The review's proposals: what the operator could adjust, each with its reason, its numbers and a
ready-to-send adjustment.

A proposal is only a proposal: this module reads and writes nothing. The operator accepts the
ones they want in record_review, which applies each adjustment through its own domain function
and trust rules. Every check reads the small roster tables (agencies, roles, goals, key results,
grants, routines) whole and everything else through an index or a rollup, bounded by a LIMIT:
decisions_by_grant, authorizations_by_grant, outcomes_by_task, the routine-day unique index,
tasks_by_status, role_quarter_hours and agency_days.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any, Literal, get_args

from chief_of_staff.core import ids
from chief_of_staff.core.clock import format_ts, local_date
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.fields import Model, money, parse_local_date
from chief_of_staff.domain import goals, workspace
from chief_of_staff.domain.pace import progress_of, way
from chief_of_staff.domain.review.adjustments import Adjustment, AdjustmentTool

# Autonomy follows the record: an "approve" grant whose last 5 answered decisions (newest first,
# within 90 days) were all yes, with no no anywhere in those 90 days, may act and notify instead.
# Unanswered decisions (pending, expired, or approved only by timeout) are neither a yes nor a no.
# The record read is the newest 50 decisions of the window.
AUTONOMY_WINDOW_DAYS, AUTONOMY_STREAK, AUTONOMY_RECORD_LIMIT = 90, 5, 50
# After failures: an "auto" or "notify" grant whose allowed actions of the last 14 days served tasks
# that failed 3+ times, and in at least a third of their outcomes, should ask first again. The
# newest 200 authorizations of the window (any answer) are read and the allowed ones kept: a busy
# grant is judged on its latest work, and the read costs the same at any volume.
NARROW_WINDOW_DAYS, NARROW_MIN_FAILURES, NARROW_AUTHORIZATION_LIMIT = 14, 3, 200
NARROW_FAILURE_SHARE = Fraction(1, 3)
# A key result whose forecast at its due date passes its target, or falls short of it, by a quarter
# of the journey (|target - baseline|) or more is aimed wrong: retarget it at the forecast. A key
# result has no forecast before pace.MIN_HISTORY_DAYS and MIN_DATA_POINTS, so none is retargeted.
GOAL_MARGIN = Fraction(1, 4)
# A routine whose last 4 tasks all ended other than done (failed, cancelled or still unfinished).
ROUTINE_RECENT_RUNS = 4
# A role at least 28 days old with no outcome in the last 28 days and no unfinished task.
ROLE_IDLE_DAYS = 28
# A backlog growing faster than it is worked: 15+ open tasks and at least 3 x the outcomes of the
# last 7 local days (three weeks of work waiting), in an agency no review gave a new role in the last 7 days.
BACKLOG_MIN, BACKLOG_WEEKS, BACKLOG_DAYS = 15, 3, 7

ProposalKind = Literal[
    "grant_widen", "grant_narrow", "goal_target", "routine_add", "routine_drop", "role_add", "role_retire"
]
Evidence = dict[str, float | int | str]
UNFINISHED = "('open', 'claimed', 'blocked', 'waiting')"
_KIND_ORDER: tuple[str, ...] = get_args(ProposalKind)


class Proposal(Model):
    """What the operator could adjust, why (with the numbers) and the adjustment that does it."""

    kind: ProposalKind
    subject: str
    message: str
    evidence: Evidence
    adjustment: Adjustment


async def proposals(tx: Tx, *, today: date | str | None = None) -> list[Proposal]:
    """The review's proposals (see the thresholds above), by kind and then subject id; writes nothing.

    `today` (default: the workspace's local today) anchors the day-based check: the backlog's
    last 7 local days. Decision, authorization and role windows are measured from tx.now, and
    goal pace and forecast use the workspace's today, as goals.list_goals computes them.
    """
    timezone = (await workspace.get(tx)).timezone
    day = local_date(tx.now, timezone) if today is None else parse_local_date(today, "today")
    views = await _active_goal_views(tx)
    found: list[Proposal] = []
    found += await _grants_to_widen(tx)
    found += await _grants_to_narrow(tx)
    found += _goal_targets(views, local_date(tx.now, timezone))
    found += await _routines_to_add(tx, views)
    found += await _routines_to_drop(tx)
    found += await _roles_to_add(tx, day)
    found += await _roles_to_retire(tx)
    return sorted(found, key=lambda p: (_KIND_ORDER.index(p.kind), _number(p.subject)))


def proposal_key(proposal: Proposal) -> str:
    """How the operator names a proposal to accept it: its kind and subject ("grant_widen:GR4").

    Not its position: the list can change between reading it and accepting from it.
    """
    return f"{proposal.kind}:{proposal.subject}"


def proposal_version(proposal: Proposal) -> str:
    """A short digest of the change a proposal would make, so a caller that showed it can tell when the
    proposal under the same key now makes another (a goal's forecast moved, a larger amount was approved)."""
    change = json.dumps(proposal.adjustment.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(change.encode("utf-8")).hexdigest()[:16]


def _number(subject: str) -> int:
    return int("".join(c for c in subject if c.isdigit()) or 0)


def _proposal(
    kind: ProposalKind, subject: str, message: str, evidence: Evidence, tool: AdjustmentTool, arguments: dict[str, Any]
) -> Proposal:
    return Proposal(
        kind=kind,
        subject=subject,
        message=message,
        evidence=evidence,
        adjustment=Adjustment(tool=tool, arguments=arguments),
    )


# --- grants --------------------------------------------------------------------------------------


async def _live_grants(tx: Tx, modes: tuple[str, ...]) -> list[Row]:
    """Active, unexpired grants of active agencies in the given modes (the grants table is small)."""
    marks = ", ".join("?" for _ in modes)
    return await tx.all(
        "SELECT g.id, g.capability, g.per_action_cap_cents, a.name AS agency_name FROM grants AS g "
        "JOIN agencies AS a ON a.id = g.agency_id WHERE g.status = 'active' AND a.status = 'active' "
        f"AND g.mode IN ({marks}) AND (g.expires_at IS NULL OR g.expires_at > ?) ORDER BY g.id",
        (*modes, tx.now_text),
    )


async def _grants_to_widen(tx: Tx) -> list[Proposal]:
    since = format_ts(tx.now - timedelta(days=AUTONOMY_WINDOW_DAYS))
    found = []
    for grant in await _live_grants(tx, ("approve",)):
        record = await tx.all(
            "SELECT status, amount_cents, decided_channel FROM decisions INDEXED BY decisions_by_grant "
            "WHERE grant_id = ? AND created_at >= ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (grant["id"], since, AUTONOMY_RECORD_LIMIT),
        )
        streak, largest, denied = _approved_streak(record)
        if streak < AUTONOMY_STREAK or denied:
            continue
        if len(record) == AUTONOMY_RECORD_LIMIT and await _denied_since(tx, grant["id"], since):
            continue
        found.append(_widen(grant, streak, largest))
    return found


def _approved_streak(record: Iterable[Row]) -> tuple[int, int | None, bool]:
    """Yeses from the newest back to the first no: (count, largest amount among them, whether a no was met)."""
    streak, largest = 0, None
    for row in record:
        if row["status"] == "denied":
            return streak, largest, True
        # A timeout that approved was nobody's answer (decided_channel 'system'), like a pending one.
        if row["status"] in ("approved", "redeemed") and row["decided_channel"] != "system":
            streak += 1
            if row["amount_cents"] is not None:
                largest = max(largest or 0, int(row["amount_cents"]))
    return streak, largest, False


async def _denied_since(tx: Tx, grant_id: int, since: str) -> bool:
    """Whether the grant has a no in the window beyond the newest decisions already read."""
    return (
        await tx.one(
            "SELECT 1 FROM decisions INDEXED BY decisions_by_grant WHERE grant_id = ? AND created_at >= ? "
            "AND status = 'denied' LIMIT 1",
            (grant_id, since),
        )
        is not None
    )


def _widen(grant: Row, streak: int, largest: int | None) -> Proposal:
    label, cap = ids.format_id("grant", grant["id"]), grant["per_action_cap_cents"]
    arguments: dict[str, Any] = {"grant_id": label, "mode": "notify"}
    evidence: Evidence = {"approved_streak": streak, "denied": 0, "window_days": AUTONOMY_WINDOW_DAYS}
    within = ""
    if largest is not None:
        # Notify never lifts the cap above what the operator has actually approved.
        arguments["per_action_cap_cents"] = largest if cap is None else min(largest, cap)
        evidence["largest_approved_cents"] = largest
        within = f", up to {money(arguments['per_action_cap_cents'])} per action"
    message = (
        f"You approved {label} {grant['capability']} ({grant['agency_name']}) the last {streak} times you "
        f"answered and denied none in {AUTONOMY_WINDOW_DAYS} days: let it act and notify you{within}."
    )
    return _proposal("grant_widen", label, message, evidence, "update_grant", arguments)


async def _grants_to_narrow(tx: Tx) -> list[Proposal]:
    since = format_ts(tx.now - timedelta(days=NARROW_WINDOW_DAYS))
    found = []
    for grant in await _live_grants(tx, ("auto", "notify")):
        # Each task served counts its outcomes once, however many actions it took.
        tally = await tx.one(
            "SELECT count(*) AS outcomes, total(o.result = 'failure') AS failures FROM (SELECT DISTINCT task_id "
            "FROM (SELECT task_id, answer FROM authorizations INDEXED BY authorizations_by_grant WHERE grant_id = ? "
            "AND created_at >= ? ORDER BY created_at DESC LIMIT ?) WHERE answer = 'allowed' AND task_id IS NOT NULL) "
            "AS served JOIN outcomes AS o ON o.task_id = served.task_id",
            (grant["id"], since, NARROW_AUTHORIZATION_LIMIT),
        )
        assert tally is not None  # an aggregate always has a row
        outcomes, failures = int(tally["outcomes"]), int(tally["failures"])
        if failures < NARROW_MIN_FAILURES or Fraction(failures, outcomes) < NARROW_FAILURE_SHARE:
            continue
        found.append(_narrow(grant, failures, outcomes))
    return found


def _narrow(grant: Row, failures: int, outcomes: int) -> Proposal:
    label, share = ids.format_id("grant", grant["id"]), round(failures / outcomes, 3)
    message = (
        f"Tasks that {label} {grant['capability']} ({grant['agency_name']}) acted for in the last "
        f"{NARROW_WINDOW_DAYS} days failed {failures} of {outcomes} times ({share:.0%}): have it ask "
        "you first again until the failures are understood."
    )
    return _proposal(
        "grant_narrow",
        label,
        message,
        {"failures": failures, "outcomes": outcomes, "failure_share": share, "window_days": NARROW_WINDOW_DAYS},
        "update_grant",
        {"grant_id": label, "mode": "approve"},
    )


# --- goals ---------------------------------------------------------------------------------------


async def _active_goal_views(tx: Tx) -> list[goals.GoalView]:
    """Active goals of active agencies (a retired agency's goals take no more outcomes)."""
    active = {row["name"] for row in await tx.all("SELECT name FROM agencies WHERE status = 'active'")}
    return [goal for goal in await goals.list_goals(tx) if goal.agency in active]


def _rounded(value: float) -> float:
    """Whole numbers from 10 up, else one decimal; halves away from zero."""
    scale = 1 if abs(value) >= 10 else 10
    return math.copysign(math.floor(abs(value) * scale + 0.5) / scale, value) + 0.0


def _retarget(kr: goals.KeyResultView, today: date) -> float | None:
    """The forecast as the new target when it passes or misses the target by GOAL_MARGIN of the journey;
    never before the key result has a forecast (its minimum history) nor after its due date."""
    forecast = kr.forecast_at_due
    if forecast is None or today > date.fromisoformat(kr.due_date):
        return None
    if forecast <= 0 <= min(kr.baseline, kr.target):
        return None  # held at zero (pace.forecast_of): the rate cannot last, so it says nothing of where it lands
    sign, distance = math.copysign(1.0, kr.target - kr.baseline), abs(kr.target - kr.baseline)
    past = (forecast - kr.target) * sign
    moved = (forecast - kr.baseline) * sign > 0
    if past < GOAL_MARGIN * distance and not (-past >= GOAL_MARGIN * distance and moved):
        return None
    proposed = _rounded(forecast)
    if (proposed - kr.baseline) * sign <= 0 or proposed == kr.target:
        return None
    return proposed


def _goal_targets(views: Iterable[goals.GoalView], today: date) -> list[Proposal]:
    found = []
    for goal in views:
        for kr in goal.key_results:
            target = _retarget(kr, today)
            if target is not None:
                found.append(_goal_target(goal, kr, target))
    return found


def _goal_target(goal: goals.GoalView, kr: goals.KeyResultView, target: float) -> Proposal:
    assert kr.forecast_at_due is not None and kr.rate_per_day is not None  # _retarget needs a forecast
    forecast = kr.forecast_at_due
    gap = abs(forecast - kr.target)
    side = "past" if (forecast - kr.target) * (kr.target - kr.baseline) > 0 else "short of"
    verb = "Raise" if target > kr.target else "Lower"
    # The share is where the forecast stands between baseline and target, not the gap: 1.2 of 12 is 10%.
    message = (
        f"{kr.id} {kr.metric} of {goal.id} ({goal.agency}) is on course for {forecast:g} by "
        f"{kr.due_date} at {kr.rate_per_day:g}/day, {round(gap, 2):g} {side} its target of {kr.target:g} "
        f"({way(progress_of(kr.baseline, kr.target, forecast))} from its baseline {kr.baseline:g}). "
        f"{verb} the target to {target:g}."
    )
    return _proposal(
        "goal_target",
        kr.id,
        message,
        {
            "current": kr.current,
            "target": kr.target,
            "forecast_at_due": kr.forecast_at_due,
            "rate_per_day": kr.rate_per_day,
            "due_date": kr.due_date,
        },
        "adjust_goal",
        {"goal_id": goal.id, "key_results": [{"key_result": kr.id, "target": target}]},
    )


# --- routines ------------------------------------------------------------------------------------


async def _routines_to_add(tx: Tx, views: Iterable[goals.GoalView]) -> list[Proposal]:
    covered = {
        row["key_result_id"]
        for row in await tx.all("SELECT key_result_id FROM routines WHERE active = 1 AND key_result_id IS NOT NULL")
    }
    found = []
    for goal in views:
        for kr in goal.key_results:
            # at_risk is pace.standing_of's verdict: behind, overdue, or forecast to miss.
            if kr.at_risk and ids.parse_id("key_result", kr.id) not in covered:
                found.append(_routine_add(goal, kr))
    return found


def _routine_add(goal: goals.GoalView, kr: goals.KeyResultView) -> Proposal:
    title = f"Move {kr.metric} toward {kr.target:g} {kr.unit}".strip()
    state = "is at risk" if kr.pace == "at_risk" else f"is {kr.pace}"
    evidence: Evidence = {"pace": kr.pace, "behind_by": kr.behind_by}
    if kr.forecast_at_due is None:
        outlook = "no forecast yet"
    else:
        outlook = f"forecast {kr.forecast_at_due:g} of {kr.target:g}"
        evidence["forecast_at_due"] = kr.forecast_at_due
    message = (
        f"{kr.id} {kr.metric} of {goal.id} ({goal.agency}) {state} (behind by {kr.behind_by:g}, {outlook}) "
        "and no active routine works on it: add a weekday routine."
    )
    return _proposal(
        "routine_add",
        kr.id,
        message,
        evidence,
        "add_routine",
        {
            "agency": goal.agency,
            "title": title,
            "priority": "P1",
            "schedule": "weekdays",
            "goal_id": goal.id,
            "key_result_id": kr.id,
        },
    )


async def _routines_to_drop(tx: Tx) -> list[Proposal]:
    found = []
    for routine in await tx.all(
        "SELECT r.id, a.name AS agency_name FROM routines AS r "
        "JOIN agencies AS a ON a.id = r.agency_id WHERE r.active = 1 ORDER BY r.id"
    ):
        runs = [
            row["status"]
            for row in await tx.all(
                "SELECT status FROM tasks WHERE routine_id = ? ORDER BY routine_on DESC LIMIT ?",
                (routine["id"], ROUTINE_RECENT_RUNS),
            )
        ]
        if len(runs) == ROUTINE_RECENT_RUNS and "done" not in runs:
            found.append(_routine_drop(routine, runs))
    return found


def _routine_drop(routine: Row, runs: list[str]) -> Proposal:
    label = ids.format_id("routine", routine["id"])
    message = (
        f"None of the last {len(runs)} tasks of routine {label} ({routine['agency_name']}) ended done "
        f"(newest first: {', '.join(runs)}): pause it, or rework it so it can succeed."
    )
    return _proposal(
        "routine_drop",
        label,
        message,
        {"runs": len(runs), "done": 0, "statuses": ",".join(runs)},
        "set_routine",
        {"routine_id": label, "active": False},
    )


# --- roles ---------------------------------------------------------------------------------------


def _slot(instant: datetime) -> str:
    """The role_quarter_hours key of an instant: its UTC quarter hour, 2026-11-23T08:15."""
    text = format_ts(instant)
    return f"{text[:14]}{int(text[14:16]) // 15 * 15:02d}"


async def _roles_to_retire(tx: Tx) -> list[Proposal]:
    idle_since = tx.now - timedelta(days=ROLE_IDLE_DAYS)
    rows = await tx.all(
        "SELECT r.id, r.name, a.name AS agency_name FROM roles AS r JOIN agencies AS a ON a.id = r.agency_id "
        "WHERE r.status = 'active' AND a.status = 'active' AND r.created_at <= :since "
        "AND NOT EXISTS (SELECT 1 FROM role_quarter_hours AS q WHERE q.role_id = r.id AND q.slot >= :slot) "
        f"AND NOT EXISTS (SELECT 1 FROM tasks AS t WHERE t.status IN {UNFINISHED} "
        "AND t.agency_id = r.agency_id AND t.role_id = r.id) ORDER BY r.id",
        {"since": format_ts(idle_since), "slot": _slot(idle_since)},
    )
    return [_role_retire(row) for row in rows]


def _role_retire(row: Row) -> Proposal:
    label = ids.format_id("role", row["id"])
    message = (
        f"Role {row['name']} ({label}) of {row['agency_name']} logged no outcome in the last "
        f"{ROLE_IDLE_DAYS} days and holds no unfinished task: retire it."
    )
    return _proposal(
        "role_retire",
        label,
        message,
        {"idle_days": ROLE_IDLE_DAYS, "unfinished_tasks": 0, "outcomes": 0},
        "set_role",
        {"agency": row["agency_name"], "name": row["name"], "status": "retired"},
    )


async def _roles_to_add(tx: Tx, today: date) -> list[Proposal]:
    first = today - timedelta(days=BACKLOG_DAYS - 1)
    rows = await tx.all(
        "SELECT a.id, a.name, (SELECT count(*) FROM tasks AS t WHERE t.status = 'open' AND t.agency_id = a.id) "
        "AS open_tasks, (SELECT total(d.outcomes) FROM agency_days AS d WHERE d.agency_id = a.id "
        "AND d.day BETWEEN ? AND ?) AS outcomes FROM agencies AS a WHERE a.status = 'active' "
        # A role a review added this last week has not had its chance at the backlog yet: no second on top.
        # The few change sets of the week first (CROSS JOIN keeps that order), then each one's items by key.
        "AND NOT EXISTS (SELECT 1 FROM change_sets AS c CROSS JOIN change_set_items AS i ON i.change_set_id = c.id "
        "WHERE c.created_at >= ? AND c.reverted_by IS NULL AND i.tool = 'set_role' AND i.before = 'null' "
        "AND json_extract(i.arguments, '$.agency') = a.name COLLATE NOCASE) ORDER BY a.id",
        (first.isoformat(), today.isoformat(), format_ts(tx.now - timedelta(days=BACKLOG_DAYS))),
    )
    found = []
    for row in rows:
        backlog, worked = int(row["open_tasks"]), int(row["outcomes"])
        if backlog >= BACKLOG_MIN and backlog >= BACKLOG_WEEKS * worked:
            found.append(_role_add(row, backlog, worked, await _free_role_name(tx, row["id"])))
    return found


async def _free_role_name(tx: Tx, agency_id: int) -> str:
    """ "Backlog", or "Backlog 2", "Backlog 3"... when taken (role names are unique in any case)."""
    taken = {row["name"].casefold() for row in await tx.all("SELECT name FROM roles WHERE agency_id = ?", (agency_id,))}
    name, number = "Backlog", 1
    while name.casefold() in taken:
        number += 1
        name = f"Backlog {number}"
    return name


def _role_add(row: Row, backlog: int, worked: int, name: str) -> Proposal:
    agency = row["name"]
    message = (
        f"{agency} has {backlog} open tasks waiting and logged {worked} outcomes in the last {BACKLOG_DAYS} "
        f"days: add a role ({name}) to work through the backlog."
    )
    charter = (
        f"Work through {agency}'s open backlog, oldest and most urgent first, so the inbox stops "
        "growing faster than it is worked."
    )
    return _proposal(
        "role_add",
        ids.format_id("agency", row["id"]),
        message,
        {"open_tasks": backlog, "outcomes_7d": worked},
        "set_role",
        {"agency": agency, "name": name, "charter": charter},
    )
