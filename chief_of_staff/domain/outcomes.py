"""The outcome log: what happened, appended and never edited.

Logging an outcome touches a fixed handful of rows whatever the size of the log: the outcome
and its metric rows, each key result's `current` rollup and its row for the local day in
`key_result_days` (the recent rate pace forecasts read), the agency's row for the local day
in `agency_days`, and a playbook lesson when one is given. Reads go newest first by index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, get_args

from chief_of_staff.core import audit, clock, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import MAX_CENTS, Model, ShortText
from chief_of_staff.domain import agencies, goals, workspace

Result = Literal["success", "partial", "failure"]

MAX_SUMMARY = 2000
MAX_EVIDENCE_ITEMS = 10
MAX_EVIDENCE_CHARS = 500
MAX_METRICS = 10
MAX_MINUTES = 1_000_000
MAX_PAGE = 100


# An outcome with the names its view shows, in the one statement that reads it.
_VIEW_SELECT = (
    "SELECT o.*, a.name AS agency_name, r.name AS role_name FROM outcomes AS o "
    "LEFT JOIN agencies AS a ON a.id = o.agency_id LEFT JOIN roles AS r ON r.id = o.role_id "
)


class MetricDelta(Model):
    """How much one outcome moved one key result, in the key result's unit (negative to move it down)."""

    key_result: ShortText
    delta: goals.FiniteNumber


class MetricMoved(Model):
    """A delta as the log holds it: unbounded, since a row written before the bound must still read."""

    key_result: str
    delta: float


class OutcomeView(Model):
    id: str
    agency: str
    role: str | None
    task_id: str | None
    summary: str
    result: Result
    cost_cents: int
    minutes_saved: int
    evidence: list[str]
    lesson: str | None
    metrics: list[MetricMoved]
    created_at: str


# --- validation: everything is checked before the first write ----------------------------------


def _summary(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("summary: send what happened in a sentence or two.")
    if len(value.strip()) > MAX_SUMMARY:
        raise InvalidInput(
            f"summary: is {len(value.strip())} characters; keep it to {MAX_SUMMARY} or fewer and put links in evidence."
        )
    return value.strip()


def _result(value: object) -> Result:
    if value not in get_args(Result):
        raise InvalidInput(f"result: {value!r} is not a result; send 'success', 'partial' or 'failure'.")
    return value  # type: ignore[return-value]


def _whole(value: object, field: str, limit: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise InvalidInput(f"{field}: send {what} as a whole number from 0 to {limit:,}.")
    return value


def _evidence(items: object) -> list[str]:
    if not isinstance(items, list | tuple) or len(items) > MAX_EVIDENCE_ITEMS:
        raise InvalidInput(f"evidence: send a list of at most {MAX_EVIDENCE_ITEMS} links or short notes.")
    cleaned = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item.strip() or len(item.strip()) > MAX_EVIDENCE_CHARS:
            raise InvalidInput(
                f"evidence[{index}]: send a non-empty link or note of at most {MAX_EVIDENCE_CHARS} characters."
            )
        cleaned.append(item.strip())
    return cleaned


def _lesson(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > agencies.MAX_LESSON:
        raise InvalidInput(f"lesson: send the lesson as text of at most {agencies.MAX_LESSON} characters.")
    return value.strip()


async def _task(tx: Tx, task_id: object, agency_id: int) -> int | None:
    if task_id is None:
        return None
    number = ids.parse_id("task", task_id, field="task_id")  # type: ignore[arg-type]
    row = await tx.one("SELECT agency_id FROM tasks WHERE id = ?", (number,))
    if row is None:
        raise NotFound(f"task_id: there is no task {ids.format_id('task', number)}. Call list_tasks to see tasks.")
    if row["agency_id"] is not None and row["agency_id"] != agency_id:
        raise InvalidInput(
            f"task_id: {ids.format_id('task', number)} belongs to another agency; log the "
            "outcome for that agency or leave task_id out."
        )
    return number


async def _metrics(tx: Tx, items: Sequence[MetricDelta], agency_id: int) -> list[tuple[int, float]]:
    """Each delta as (key result id, delta); the key result must serve an active goal of this agency."""
    if len(items) > MAX_METRICS:
        raise InvalidInput(f"metrics: send at most {MAX_METRICS} key-result deltas per outcome.")
    moved: dict[int, float] = {}
    for index, item in enumerate(items):
        field = f"metrics[{index}]"
        metric: MetricDelta = goals.coerce_input(MetricDelta, item, field)
        delta = goals.check_finite(metric.delta, f"{field}.delta")
        kr = await goals.resolve_key_result(tx, metric.key_result, field=f"{field}.key_result")
        _check_kr_open(kr, agency_id, f"{field}.key_result")
        if kr["id"] in moved:
            raise InvalidInput(
                f"{field}.key_result: {ids.format_id('key_result', kr['id'])} appears twice; "
                "send one delta per key result (add them up)."
            )
        moved[kr["id"]] = delta
    return list(moved.items())


def _check_kr_open(kr: Row, agency_id: int, field: str) -> None:
    short, goal = ids.format_id("key_result", kr["id"]), ids.format_id("goal", kr["goal_id"])
    if kr["agency_id"] != agency_id:
        raise InvalidInput(
            f"{field}: {short} belongs to another agency's goal {goal}; send a key result of "
            "this agency's goals (list_goals shows them)."
        )
    if kr["goal_status"] != "active":
        raise InvalidInput(
            f"{field}: {short} belongs to goal {goal}, which is {kr['goal_status']}; "
            "it takes no more deltas. Send a key result of an active goal, or none."
        )


# --- writing -------------------------------------------------------------------------------------


async def log_outcome(
    tx: Tx,
    actor: Actor,
    *,
    agency: str,
    role: str | None = None,
    task_id: int | None = None,
    summary: str,
    result: str,
    metrics: Sequence[MetricDelta] = (),
    cost_cents: int = 0,
    minutes_saved: int = 0,
    evidence: Sequence[str] = (),
    lesson: str | None = None,
) -> OutcomeView:
    """Append an outcome, move its key results, roll it into the agency's day and keep its lesson."""
    agency_row = await agencies.resolve_agency(tx, agency)
    if agency_row["status"] != "active":
        raise Conflict(f"agency: {agency_row['name']} is retired; outcomes are logged for active agencies.")
    role_row = await agencies.resolve_role(tx, agency_row["id"], role)
    text, outcome_result = _summary(summary), _result(result)
    cost = _whole(cost_cents, "cost_cents", MAX_CENTS, "the cost in cents (1250 = 12.50)")
    minutes = _whole(minutes_saved, "minutes_saved", MAX_MINUTES, "the minutes saved")
    links, lesson_text = _evidence(list(evidence)), _lesson(lesson)
    task = await _task(tx, task_id, agency_row["id"])
    moves = await _metrics(tx, list(metrics), agency_row["id"])
    outcome_id = await tx.run(
        "INSERT INTO outcomes (task_id, agency_id, role_id, summary, result, cost_cents, minutes_saved, "
        "evidence, lesson, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            task,
            agency_row["id"],
            None if role_row is None else role_row["id"],
            text,
            outcome_result,
            cost,
            minutes,
            json.dumps(links, ensure_ascii=False),
            lesson_text,
            tx.now_text,
        ),
    )
    await _apply_moves(tx, outcome_id, moves)
    await _roll_up_day(tx, agency_row["id"], outcome_result, cost, minutes)
    lesson_id = await _keep_lesson(tx, agency_row["id"], outcome_id, outcome_result, lesson_text)
    await audit.append(
        tx,
        actor,
        "outcome.log",
        ids.format_id("outcome", outcome_id),
        _audit_detail(agency_row["id"], task, outcome_result, cost, moves, lesson_id),
    )
    # Built from what was just written rather than read back: the same view, without the statements.
    return OutcomeView(
        id=ids.format_id("outcome", outcome_id),
        agency=agency_row["name"],
        role=None if role_row is None else role_row["name"],
        task_id=_task_label(task),
        summary=text,
        result=outcome_result,
        cost_cents=cost,
        minutes_saved=minutes,
        evidence=links,
        lesson=lesson_text,
        metrics=_metric_deltas(sorted(moves)),
        created_at=tx.now_text,
    )


async def _apply_moves(tx: Tx, outcome_id: int, moves: list[tuple[int, float]]) -> None:
    """The metric rows, each key result's `current`, and its local day in `key_result_days`."""
    if not moves:
        return
    await tx.run_many(
        "INSERT INTO outcome_metrics (outcome_id, key_result_id, delta) VALUES (?, ?, ?)",
        [(outcome_id, kr_id, delta) for kr_id, delta in moves],
    )
    await tx.run_many(
        "UPDATE key_results SET current = current + ?, updated_at = ? WHERE id = ?",
        [(delta, tx.now_text, kr_id) for kr_id, delta in moves],
    )
    # One statement for every delta of the outcome: the statement count is log_outcome's latency.
    day = await _local_day(tx)
    rows = ", ".join("(?, ?, ?, 1)" for _ in moves)
    await tx.run(
        f"INSERT INTO key_result_days (key_result_id, day, delta_sum, outcomes) VALUES {rows} "
        "ON CONFLICT (key_result_id, day) DO UPDATE SET delta_sum = delta_sum + excluded.delta_sum, "
        "outcomes = outcomes + 1",
        [value for kr_id, delta in moves for value in (kr_id, day, delta)],
    )


async def _local_day(tx: Tx) -> str:
    return clock.local_date(tx.now, (await workspace.get(tx)).timezone).isoformat()


async def _roll_up_day(tx: Tx, agency_id: int, result: Result, cost: int, minutes: int) -> None:
    day = await _local_day(tx)
    await tx.run(
        "INSERT INTO agency_days (agency_id, day, outcomes, successes, partials, failures, cost_cents, "
        "minutes_saved) VALUES (?, ?, 1, ?, ?, ?, ?, ?) "
        "ON CONFLICT (agency_id, day) DO UPDATE SET outcomes = outcomes + 1, "
        "successes = successes + excluded.successes, partials = partials + excluded.partials, "
        "failures = failures + excluded.failures, cost_cents = cost_cents + excluded.cost_cents, "
        "minutes_saved = minutes_saved + excluded.minutes_saved",
        (agency_id, day, int(result == "success"), int(result == "partial"), int(result == "failure"), cost, minutes),
    )


async def _keep_lesson(tx: Tx, agency_id: int, outcome_id: int, result: Result, text: str | None) -> int | None:
    # The outcome's own audit row records the lesson, so it is written without one of its own.
    if text is None:
        return None
    kind = "works" if result == "success" else "breaks"
    return await agencies.insert_lesson(
        tx, agency_id=agency_id, kind=kind, text=text, source="outcome", outcome_id=outcome_id
    )


def _audit_detail(
    agency_id: int, task: int | None, result: Result, cost: int, moves: list[tuple[int, float]], lesson_id: int | None
) -> dict[str, Any]:
    detail: dict[str, Any] = {"agency": ids.format_id("agency", agency_id), "result": result, "cost_cents": cost}
    if task is not None:
        detail["task"] = ids.format_id("task", task)
    if moves:
        detail["metrics"] = {ids.format_id("key_result", kr_id): delta for kr_id, delta in moves}
    if lesson_id is not None:
        detail["lesson"] = ids.format_id("lesson", lesson_id)
    return detail


# --- reading -------------------------------------------------------------------------------------


async def recent_outcomes(tx: Tx, *, agency: str | None = None, limit: int = 10) -> list[OutcomeView]:
    """The latest outcomes, newest first, for one agency or all."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit: send a whole number from 1 to {MAX_PAGE}.")
    if agency is None:
        rows = await tx.all(f"{_VIEW_SELECT}ORDER BY o.id DESC LIMIT ?", (limit,))
    else:
        agency_id = (await agencies.resolve_agency(tx, agency))["id"]
        rows = await tx.all(
            f"{_VIEW_SELECT}WHERE o.agency_id = ? ORDER BY o.created_at DESC, o.id DESC LIMIT ?", (agency_id, limit)
        )
    return await _views(tx, rows)


def _task_label(task_id: int | None) -> str | None:
    return None if task_id is None else ids.format_id("task", task_id)


def _metric_deltas(moves: Sequence[tuple[int, float]]) -> list[MetricMoved]:
    return [MetricMoved(key_result=ids.format_id("key_result", kr_id), delta=delta) for kr_id, delta in moves]


async def _metrics_of(tx: Tx, outcome_ids: list[int]) -> dict[int, list[tuple[int, float]]]:
    """Each outcome's deltas in key-result order (the primary key's), in one statement."""
    if not outcome_ids:
        return {}
    marks = ", ".join("?" * len(outcome_ids))
    rows = await tx.all(
        "SELECT outcome_id, key_result_id, delta FROM outcome_metrics "
        f"WHERE outcome_id IN ({marks}) ORDER BY outcome_id, key_result_id",
        outcome_ids,
    )
    found: dict[int, list[tuple[int, float]]] = {}
    for row in rows:
        found.setdefault(row["outcome_id"], []).append((row["key_result_id"], row["delta"]))
    return found


async def _views(tx: Tx, rows: list[Row]) -> list[OutcomeView]:
    """Views of rows read through _VIEW_SELECT (which carries the agency and role names)."""
    metrics = await _metrics_of(tx, [row["id"] for row in rows])
    return [
        OutcomeView(
            id=ids.format_id("outcome", row["id"]),
            agency=row["agency_name"] if row["agency_name"] is not None else ids.format_id("agency", row["agency_id"]),
            role=None
            if row["role_id"] is None
            else (row["role_name"] if row["role_name"] is not None else ids.format_id("role", row["role_id"])),
            task_id=_task_label(row["task_id"]),
            summary=row["summary"],
            result=row["result"],
            cost_cents=row["cost_cents"],
            minutes_saved=row["minutes_saved"],
            evidence=json.loads(row["evidence"]),
            lesson=row["lesson"],
            metrics=_metric_deltas(metrics.get(row["id"], [])),
            created_at=row["created_at"],
        )
        for row in rows
    ]
