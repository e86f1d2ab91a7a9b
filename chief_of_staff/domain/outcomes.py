"""The outcome log: what happened, appended and never edited.

Logging an outcome touches a fixed handful of rows whatever the size of the log: the outcome
and its metric rows, each key result's `current` rollup and its row for the local day in
`key_result_days` (the recent rate pace forecasts read), the agency's row for the local day
in `agency_days`, and a playbook lesson when one is given. Reads go newest first by index.

A cumulative key result is sent a delta; a level one is sent its value now, and the log records the
change that observation made as its delta (so `current` is the latest observation). An outcome sent
with an idempotency key is logged once: the same key and request again returns the first outcome
and writes nothing, as authorize does.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal, get_args

from pydantic import Field

from chief_of_staff.core import audit, clock, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import MAX_CENTS, Model, checked_text, parse_local_date
from chief_of_staff.domain import agencies, goals, workspace

Result = Literal["success", "partial", "failure"]

MAX_SUMMARY = 2000
MAX_EVIDENCE_ITEMS = 10
MAX_EVIDENCE_CHARS = 500
MAX_METRICS = 10
MAX_MINUTES = 1_000_000
MAX_PAGE = 100
MAX_IDEMPOTENCY_KEY = 200


# An outcome with the names its view shows, in the one statement that reads it.
_VIEW_SELECT = (
    "SELECT o.*, a.name AS agency_name, r.name AS role_name FROM outcomes AS o "
    "LEFT JOIN agencies AS a ON a.id = o.agency_id LEFT JOIN roles AS r ON r.id = o.role_id "
)


class MetricDelta(Model):
    """One key result this outcome moved: send delta for a cumulative key result, value for a level one."""

    key_result: goals.KeyResultRef
    delta: goals.FiniteNumber | None = Field(None, description="Cumulative: change, e.g. 3 or -1")
    value: goals.FiniteNumber | None = Field(None, description="Level: value now, e.g. 180")


class MetricMoved(Model):
    """A move as the log holds it (unbounded, so rows written before the bound still read): the change,
    and for a level key result the value observed."""

    key_result: str
    delta: float
    value: float | None = None


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


@dataclass(frozen=True)
class _Sent:
    """One metric item as sent: its key result's row, and the delta or the value (exactly one)."""

    kr: Row
    delta: float | None
    value: float | None


async def _metrics(tx: Tx, items: Sequence[MetricDelta], agency_id: int) -> list[_Sent]:
    """Each item resolved (by id or by name within the agency) and checked against its key result's kind."""
    if len(items) > MAX_METRICS:
        raise InvalidInput(f"metrics: send at most {MAX_METRICS} key-result items per outcome.")
    sent: dict[int, _Sent] = {}
    for index, item in enumerate(items):
        field = f"metrics[{index}]"
        metric: MetricDelta = goals.coerce_input(MetricDelta, item, field)
        kr = await goals.resolve_key_result(tx, metric.key_result, agency_id=agency_id, field=f"{field}.key_result")
        _check_kr_ours(kr, agency_id, f"{field}.key_result")
        if kr["id"] in sent:
            raise InvalidInput(
                f"{field}.key_result: {ids.format_id('key_result', kr['id'])} appears twice; "
                "send one item per key result (add deltas up; send a level's latest value)."
            )
        sent[kr["id"]] = _checked_kind(kr, metric, field)
    return list(sent.values())


def _checked_kind(kr: Row, metric: MetricDelta, field: str) -> _Sent:
    """A cumulative key result takes a delta and a level one a value: a model that sends 180 for
    "subscribers are now 180" to a delta field would count them again, so the wrong field is refused."""
    name = f"{ids.format_id('key_result', kr['id'])} ({kr['metric']})"
    if kr["kind"] == "level":
        if metric.delta is not None:
            raise InvalidInput(
                f"{field}.delta: {name} is a level key result; send value, its value now "
                f"(e.g. value: 180), not a change. Nothing was logged."
            )
        if metric.value is None:
            raise InvalidInput(f"{field}.value: {name} is a level key result; send value, its value now.")
        return _Sent(kr, None, goals.check_finite(metric.value, f"{field}.value"))
    if metric.value is not None:
        raise InvalidInput(
            f"{field}.value: {name} is a cumulative key result; send delta, how much this outcome moved it "
            f"(e.g. delta: 3), not a total. Nothing was logged."
        )
    if metric.delta is None:
        raise InvalidInput(f"{field}.delta: {name} is a cumulative key result; send delta, how much it moved.")
    return _Sent(kr, goals.check_finite(metric.delta, f"{field}.delta"), None)


def _moves(sent: Sequence[_Sent]) -> list[_Move]:
    """(key result id, delta, value) per item, in key-result order; a level value moves by its change."""
    moves = [
        (item.kr["id"], item.value - item.kr["current"], item.value)
        if item.value is not None
        else (item.kr["id"], float(item.delta or 0.0), None)
        for item in sent
    ]
    return sorted(moves, key=lambda move: move[0])


_Move = tuple[int, float, float | None]


def _check_kr_ours(kr: Row, agency_id: int, field: str) -> None:
    if kr["agency_id"] != agency_id:
        short, goal = ids.format_id("key_result", kr["id"]), ids.format_id("goal", kr["goal_id"])
        raise InvalidInput(
            f"{field}: {short} belongs to another agency's goal {goal}; send a key result of "
            "this agency's goals (list_goals shows them)."
        )


def _check_kr_open(kr: Row, field: str) -> None:
    short, goal = ids.format_id("key_result", kr["id"]), ids.format_id("goal", kr["goal_id"])
    if kr["goal_status"] != "active":
        raise InvalidInput(
            f"{field}: {short} belongs to goal {goal}, which is {kr['goal_status']}; "
            "it takes no more deltas. Send a key result of an active goal, or none."
        )


# --- writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeRequest:
    """An outcome as asked for, every field checked and resolved, before anything is written."""

    operation: str
    agency: Row
    role: Row | None
    task: int | None
    summary: str
    result: Result
    cost: int
    minutes: int
    evidence: list[str]
    lesson: str | None
    metrics: list[_Sent]
    idempotency_key: str | None

    def digest(self) -> str:
        """sha256 of the request as resolved: "emails sent" and "KR3" for the same key result are one request."""
        metrics = sorted(
            (m.kr["id"], "value" if m.value is not None else "delta", m.value if m.value is not None else m.delta)
            for m in self.metrics
        )
        request = {
            "operation": self.operation,
            "agency": self.agency["id"],
            "role": None if self.role is None else self.role["id"],
            "task": self.task,
            "summary": self.summary,
            "result": self.result,
            "cost_cents": self.cost,
            "minutes_saved": self.minutes,
            "evidence": self.evidence,
            "lesson": self.lesson,
            "metrics": metrics,
        }
        text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _idempotency_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip()) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(f"idempotency_key: send text of at most {MAX_IDEMPOTENCY_KEY} characters, or leave it out.")
    return value.strip() or None


async def read_request(
    tx: Tx,
    *,
    operation: str,
    agency: str,
    role: str | None,
    task_id: int | None,
    summary: str,
    result: str,
    metrics: Sequence[MetricDelta],
    cost_cents: int,
    minutes_saved: int,
    evidence: Sequence[str],
    lesson: str | None,
    idempotency_key: str | None,
) -> OutcomeRequest:
    """Check and resolve an outcome's fields; what depends on the moment (a retired agency, a closed
    goal) is checked by `record`, after a retry has had the chance to be answered by `replayed`."""
    agency_row = await agencies.resolve_agency(tx, agency)
    role_row = await agencies.resolve_role(tx, agency_row["id"], role)
    text, outcome_result = _summary(summary), _result(result)
    cost = _whole(cost_cents, "cost_cents", MAX_CENTS, "the cost in cents (1250 = 12.50)")
    minutes = _whole(minutes_saved, "minutes_saved", MAX_MINUTES, "the minutes saved")
    links, lesson_text = _evidence(list(evidence)), _lesson(lesson)
    key = _idempotency_key(idempotency_key)
    task = await _task(tx, task_id, agency_row["id"])
    sent = await _metrics(tx, list(metrics), agency_row["id"])
    return OutcomeRequest(
        operation, agency_row, role_row, task, text, outcome_result, cost, minutes, links, lesson_text, sent, key
    )


async def replayed(tx: Tx, request: OutcomeRequest) -> OutcomeView | None:
    """The outcome first logged under the request's idempotency key, or None when the key is new (or
    absent). The key reused for a different request is refused, naming the outcome it was used for."""
    if request.idempotency_key is None:
        return None
    rows = await tx.all(
        f"{_VIEW_SELECT}WHERE o.agency_id = ? AND o.idempotency_key = ?",
        (request.agency["id"], request.idempotency_key),
    )
    if not rows:
        return None
    if rows[0]["request_hash"] != request.digest():
        raise InvalidInput(
            f"idempotency_key: {request.idempotency_key!r} was already used for a different outcome "
            f"({ids.format_id('outcome', rows[0]['id'])}). Send a new idempotency_key for this one; "
            "nothing was logged."
        )
    return (await _views(tx, rows))[0]


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
    idempotency_key: str | None = None,
) -> OutcomeView:
    """Append an outcome, move its key results, roll it into the agency's day and keep its lesson.

    With an idempotency key already used for the same request, return that first outcome and write nothing.
    """
    request = await read_request(
        tx,
        operation="log_outcome",
        agency=agency,
        role=role,
        task_id=task_id,
        summary=summary,
        result=result,
        metrics=metrics,
        cost_cents=cost_cents,
        minutes_saved=minutes_saved,
        evidence=evidence,
        lesson=lesson,
        idempotency_key=idempotency_key,
    )
    first = await replayed(tx, request)
    return first if first is not None else await record(tx, actor, request)


async def record(tx: Tx, actor: Actor, request: OutcomeRequest) -> OutcomeView:
    """Write a checked request: the outcome, its key results' moves and rollups, its lesson and audit row."""
    agency_row = request.agency
    if agency_row["status"] != "active":
        raise Conflict(f"agency: {agency_row['name']} is retired; outcomes are logged for active agencies.")
    for index, item in enumerate(request.metrics):
        _check_kr_open(item.kr, f"metrics[{index}].key_result")
    moves = _moves(request.metrics)
    key = request.idempotency_key
    outcome_id = await tx.run(
        "INSERT INTO outcomes (task_id, agency_id, role_id, summary, result, cost_cents, minutes_saved, "
        "evidence, lesson, idempotency_key, request_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            request.task,
            agency_row["id"],
            None if request.role is None else request.role["id"],
            request.summary,
            request.result,
            request.cost,
            request.minutes,
            json.dumps(request.evidence, ensure_ascii=False),
            request.lesson,
            key,
            None if key is None else request.digest(),
            tx.now_text,
        ),
    )
    await _apply_moves(tx, outcome_id, moves)
    await _roll_up_day(tx, agency_row["id"], request.result, request.cost, request.minutes)
    lesson_id = await _keep_lesson(tx, agency_row["id"], outcome_id, request.result, request.lesson)
    await audit.append(
        tx,
        actor,
        "outcome.log",
        ids.format_id("outcome", outcome_id),
        _audit_detail(agency_row["id"], request, moves, lesson_id),
    )
    # Built from what was just written rather than read back: the same view, without the statements.
    return OutcomeView(
        id=ids.format_id("outcome", outcome_id),
        agency=agency_row["name"],
        role=None if request.role is None else request.role["name"],
        task_id=_task_label(request.task),
        summary=request.summary,
        result=request.result,
        cost_cents=request.cost,
        minutes_saved=request.minutes,
        evidence=request.evidence,
        lesson=request.lesson,
        metrics=_metric_moves(moves),
        created_at=tx.now_text,
    )


async def _apply_moves(tx: Tx, outcome_id: int, moves: list[_Move]) -> None:
    """The metric rows, each key result's `current`, and its local day in `key_result_days`."""
    if not moves:
        return
    await tx.run_many(
        "INSERT INTO outcome_metrics (outcome_id, key_result_id, delta, value) VALUES (?, ?, ?, ?)",
        [(outcome_id, kr_id, delta, value) for kr_id, delta, value in moves],
    )
    # A level key result takes the observed value itself, not current + (value - current), which
    # floating point could leave a hair off what was reported.
    await tx.run_many(
        "UPDATE key_results SET current = coalesce(?, current + ?), updated_at = ? WHERE id = ?",
        [(value, delta, tx.now_text, kr_id) for kr_id, delta, value in moves],
    )
    # One statement for every delta of the outcome: the statement count is log_outcome's latency.
    day = await _local_day(tx)
    rows = ", ".join("(?, ?, ?, 1)" for _ in moves)
    await tx.run(
        f"INSERT INTO key_result_days (key_result_id, day, delta_sum, outcomes) VALUES {rows} "
        "ON CONFLICT (key_result_id, day) DO UPDATE SET delta_sum = delta_sum + excluded.delta_sum, "
        "outcomes = outcomes + 1",
        [param for kr_id, delta, _ in moves for param in (kr_id, day, delta)],
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


def _audit_detail(agency_id: int, request: OutcomeRequest, moves: list[_Move], lesson_id: int | None) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "agency": ids.format_id("agency", agency_id),
        "result": request.result,
        "cost_cents": request.cost,
    }
    if request.task is not None:
        detail["task"] = ids.format_id("task", request.task)
    if moves:
        detail["metrics"] = {ids.format_id("key_result", kr_id): delta for kr_id, delta, _ in moves}
    observed = {ids.format_id("key_result", kr_id): value for kr_id, _, value in moves if value is not None}
    if observed:
        detail["observed"] = observed
    if request.idempotency_key is not None:
        detail["idempotency_key"] = request.idempotency_key
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


def _metric_moves(moves: Sequence[_Move]) -> list[MetricMoved]:
    return [
        MetricMoved(key_result=ids.format_id("key_result", kr_id), delta=delta, value=value)
        for kr_id, delta, value in moves
    ]


async def _metrics_of(tx: Tx, outcome_ids: list[int]) -> dict[int, list[_Move]]:
    """Each outcome's moves in key-result order (the primary key's), in one statement."""
    if not outcome_ids:
        return {}
    marks = ", ".join("?" * len(outcome_ids))
    rows = await tx.all(
        "SELECT outcome_id, key_result_id, delta, value FROM outcome_metrics "
        f"WHERE outcome_id IN ({marks}) ORDER BY outcome_id, key_result_id",
        outcome_ids,
    )
    found: dict[int, list[_Move]] = {}
    for row in rows:
        found.setdefault(row["outcome_id"], []).append((row["key_result_id"], row["delta"], row["value"]))
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
            metrics=_metric_moves(metrics.get(row["id"], [])),
            created_at=row["created_at"],
        )
        for row in rows
    ]


# --- searching the log ---------------------------------------------------------------------------
#
# A page is read newest first and stops at its limit: each filter that narrows by an index keeps that
# order (outcomes_by_agency, outcomes_by_role, outcomes_by_time), so a page costs the same on a log of ten
# outcomes or a million. A key result's outcomes are read through outcome_metrics_by_kr, in the order they
# were logged (the id order, which is the time order of an append-only log on one clock). Paging is by
# keyset: `before` is the last outcome of the previous page, so a deep page costs what the first does and
# outcomes logged meanwhile never shift it. The WHERE clause holds only the filters sent: a
# "(:x IS NULL OR ...)" form would keep SQLite off the index.

# A key result's outcomes, driven from its index (CROSS JOIN keeps outcome_metrics the outer loop).
_BY_KEY_RESULT = (
    "SELECT o.*, a.name AS agency_name, r.name AS role_name FROM outcome_metrics AS m "
    "INDEXED BY outcome_metrics_by_kr CROSS JOIN outcomes AS o ON o.id = m.outcome_id "
    "LEFT JOIN agencies AS a ON a.id = o.agency_id LEFT JOIN roles AS r ON r.id = o.role_id "
)
MAX_SEARCH_TEXT = 200


class OutcomePage(Model):
    outcomes: list[OutcomeView]
    # Send as `before` for the next page; None when this page is the last.
    next: str | None


async def list_outcomes(
    tx: Tx,
    *,
    agency: str | None = None,
    role: str | None = None,
    key_result: str | None = None,
    result: str | None = None,
    since: date | str | None = None,
    until: date | str | None = None,
    text: str | None = None,
    before: str | None = None,
    limit: int = 20,
) -> OutcomePage:
    """Outcomes newest first, filtered by agency, role, key result (id or metric name), result, local dates
    (since and until, inclusive, in the workspace timezone) and text in the summary or lesson; a page at a time.
    """
    count = _whole(limit, "limit", MAX_PAGE, "how many outcomes a page holds")
    if count == 0:
        raise InvalidInput(f"limit: send a whole number from 1 to {MAX_PAGE}.")
    where: list[str] = []
    params: dict[str, Any] = {"limit": count + 1}
    agency_id = await _filter_agency(tx, agency, role, where, params)
    kr_id = None if key_result is None else await _filter_key_result(tx, key_result, agency_id)
    if result is not None:
        where.append("o.result = :result")
        params["result"] = _result(result)
    await _filter_dates(tx, since, until, where, params)
    if text is not None:
        words = checked_text(text, "text", MAX_SEARCH_TEXT, required=True, what="words to look for")
        where.append("(o.summary LIKE :text ESCAPE '\\' OR o.lesson LIKE :text ESCAPE '\\')")
        params["text"] = "%" + re.sub(r"([\\%_])", r"\\\1", words) + "%"
    if kr_id is not None:
        select, order = _BY_KEY_RESULT, "m.outcome_id DESC"
        where.insert(0, "m.key_result_id = :kr")
        params["kr"] = kr_id
        if before is not None:
            where.append("m.outcome_id < :before")
    else:
        select, order = _VIEW_SELECT, "o.created_at DESC, o.id DESC"
        if before is not None:
            where.append("(o.created_at, o.id) < (SELECT created_at, id FROM outcomes WHERE id = :before)")
    if before is not None:
        params["before"] = await _outcome_number(tx, before)
    condition = f"WHERE {' AND '.join(where)} " if where else ""
    rows = await tx.all(f"{select}{condition}ORDER BY {order} LIMIT :limit", params)
    page = await _views(tx, rows[:count])
    return OutcomePage(outcomes=page, next=page[-1].id if len(rows) > count else None)


async def _filter_key_result(tx: Tx, ref: str, agency_id: int | None) -> int:
    kr = await goals.resolve_key_result(tx, ref, agency_id=agency_id, field="key_result")
    if agency_id is not None and kr["agency_id"] != agency_id:
        raise InvalidInput(
            f"key_result: {ids.format_id('key_result', kr['id'])} serves another agency's goal, so no outcome "
            "of this agency moved it; leave agency out, or send a key result of its goals."
        )
    return int(kr["id"])


async def _filter_agency(
    tx: Tx, agency: str | None, role: str | None, where: list[str], params: dict[str, Any]
) -> int | None:
    if agency is None:
        if role is not None:
            raise InvalidInput('role: a role belongs to an agency; send the agency too, e.g. agency="Outbound".')
        return None
    row = await agencies.resolve_agency(tx, agency)
    role_row = await agencies.resolve_role(tx, row["id"], role)
    if role_row is not None:
        where.append("o.role_id = :role")
        params["role"] = role_row["id"]
    else:
        where.append("o.agency_id = :agency")
    params["agency"] = row["id"]
    return int(row["id"])


async def _filter_dates(
    tx: Tx, since: date | str | None, until: date | str | None, where: list[str], params: dict[str, Any]
) -> None:
    """since and until are local calendar days, both inclusive: from since's midnight to the one after until."""
    if since is None and until is None:
        return
    zone = (await workspace.get(tx)).timezone
    first = None if since is None else parse_local_date(since, "since")
    last = None if until is None else parse_local_date(until, "until")
    if first is not None and last is not None and last < first:
        raise InvalidInput(f"until: {last} is before since ({first}); send until on or after since.")
    if first is not None:
        where.append("o.created_at >= :since")
        params["since"] = clock.format_ts(clock.local_midnight_utc(first, zone))
    if last is not None:
        where.append("o.created_at < :until")
        params["until"] = clock.format_ts(clock.local_midnight_utc(last + timedelta(days=1), zone))


async def _outcome_number(tx: Tx, ref: str) -> int:
    number = ids.parse_id("outcome", ref, field="before")
    if await tx.scalar("SELECT 1 FROM outcomes WHERE id = ?", (number,)) is None:
        raise NotFound(
            f"before: there is no outcome {ids.format_id('outcome', number)}; send the `next` of the previous "
            "page, or leave before out for the newest."
        )
    return number


async def get_outcome(tx: Tx, outcome: str) -> OutcomeView:
    """One outcome by id ("O12")."""
    number = ids.parse_id("outcome", outcome, field="outcome")
    rows = await tx.all(f"{_VIEW_SELECT}WHERE o.id = ?", (number,))
    if not rows:
        raise NotFound(f"outcome: there is no outcome {ids.format_id('outcome', number)}; list_outcomes finds them.")
    return (await _views(tx, rows))[0]
