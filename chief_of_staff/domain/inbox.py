"""The task inbox: work items with priorities, due dates, dependencies and leases.

A claim is one conditional UPDATE over the `tasks_ready` partial index, so two sessions never
hold the same task and claiming stays flat however many tasks are done. A lease that runs out
makes the task claimable again. Routines (recurring tasks, see `routines`) turn into tasks when
someone next claims work; their functions are part of this module's surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, Literal, get_args

from chief_of_staff.core import audit, clock, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import Model, Priority, checked_text
from chief_of_staff.domain import agencies, outcomes, trust, workspace
from chief_of_staff.domain import task_fields as fields
from chief_of_staff.domain.outcomes import MetricDelta, OutcomeView
from chief_of_staff.domain.routines import materialize_routines

TaskStatus = Literal["open", "claimed", "blocked", "waiting", "done", "failed", "cancelled"]
TaskSource = Literal["operator", "agency", "routine", "blueprint"]
UNFINISHED = ("open", "claimed", "blocked", "waiting")
CLOSED = ("done", "failed", "cancelled")
SETTABLE = ("open", "blocked", "cancelled")
RESULT_STATUS = {"success": "done", "partial": "done", "failure": "failed"}
MAX_NOTE, MAX_DEPENDENCIES, MAX_LEASE_MINUTES, MAX_LIST = 2000, 20, 1440, 100
NEXT_UP = 5


class TaskView(Model):
    id: str
    title: str
    details: str
    status: TaskStatus
    priority: Priority
    due_on: date | None
    agency: str | None
    role: str | None
    goal: str | None
    key_result: str | None
    depends_on: list[str]
    blocked_by: list[str]
    source: TaskSource
    lease_owner: str | None
    lease_expires_at: str | None
    note: str
    outcome: str | None
    waiting_on: str | None
    created_at: str


class InboxSummary(Model):
    open: int
    claimed: int
    blocked: int
    waiting: int
    overdue: int
    done_today: int
    failed_today: int
    next_up: list[TaskView]


# --- reading tasks ---------------------------------------------------------------------------------


_VIEW_FIELDS = (
    "id",
    "title",
    "details",
    "status",
    "priority",
    "due_on",
    "goal_id",
    "key_result_id",
    "source",
    "lease_owner",
    "lease_expires_at",
    "note",
    "outcome_id",
    "decision_id",
    "created_at",
)


def _view_columns(t: str) -> str:
    """The columns of a TaskView for the task row named `t`, names and dependencies included, so one
    statement (a SELECT, or the claim's RETURNING) reads a whole view. Dependencies come as
    "id:status,id:status" (neither holds ':' or ','); _view sorts them, as group_concat promises no order."""
    return (
        ", ".join(f"{t}.{field} AS {field}" for field in _VIEW_FIELDS) + ", "
        f"(SELECT agencies.name FROM agencies WHERE agencies.id = {t}.agency_id) AS agency_name, "
        f"(SELECT roles.name FROM roles WHERE roles.id = {t}.role_id) AS role_name, "
        "(SELECT group_concat(d.depends_on || ':' || dep.status) FROM task_dependencies AS d "
        f"JOIN tasks AS dep ON dep.id = d.depends_on WHERE d.task_id = {t}.id) AS dependencies"
    )


def _view_select(index: str = "") -> str:
    """SELECT of TaskView columns over tasks AS t; `index` pins the index the task rows are read through."""
    return f"SELECT {_view_columns('t')} FROM tasks AS t {f'INDEXED BY {index} ' if index else ''}"


# A task is ready when it is open (or its lease ran out), its agency is not paused, and every task it
# depends on is done. The paused agencies are one small list the planner reads once per statement.
# INDEXED BY pins the claim order to tasks_ready: without statistics the planner would rather
# read tasks_by_status and sort, and the statement fails loudly if the index ever goes missing.
# The ORDER BY repeats the index's expressions exactly ('9999-12-31' stands for "no due date").
_READY_WHERE = (
    "WHERE t.status IN ('open', 'claimed') AND (t.status = 'open' OR t.lease_expires_at <= :now) "
    "AND (:agency IS NULL OR t.agency_id = :agency) "
    "AND (:role IS NULL OR t.role_id IS NULL OR t.role_id = :role) "
    "AND (t.agency_id IS NULL OR t.agency_id NOT IN (SELECT id FROM agencies WHERE paused_at IS NOT NULL)) "
    "AND NOT EXISTS (SELECT 1 FROM task_dependencies AS d JOIN tasks AS dep ON dep.id = d.depends_on "
    "WHERE d.task_id = t.id AND dep.status != 'done') "
    "ORDER BY t.priority, coalesce(t.due_on, '9999-12-31'), t.id "
)
_READY_FROM = "FROM tasks AS t INDEXED BY tasks_ready " + _READY_WHERE

# One statement picks, claims and returns the claimed task's view. The pick is materialised before
# the update so the previous lease owner of a reclaimed task can be returned (RETURNING only sees
# the new values).
_CLAIM = (
    "WITH pick AS MATERIALIZED (SELECT t.id, t.lease_owner " + _READY_FROM + "LIMIT 1) "
    "UPDATE tasks SET status = 'claimed', lease_owner = :who, lease_expires_at = :until, "
    "lease_count = lease_count + 1, updated_at = :now "
    "WHERE id = (SELECT id FROM pick) "
    f"RETURNING {_view_columns('tasks')}, (SELECT lease_owner FROM pick) AS previous_owner"
)


def _task_label(number: int) -> str:
    return ids.format_id("task", number)


def _optional_id(kind: str, number: int | None) -> str | None:
    return None if number is None else ids.format_id(kind, number)


async def _dependencies(tx: Tx, task_ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
    """Each task's dependencies with their status, in one indexed query."""
    found: dict[int, list[tuple[int, str]]] = {number: [] for number in task_ids}
    if not task_ids:
        return found
    marks = ", ".join("?" * len(task_ids))
    rows = await tx.all(
        "SELECT d.task_id, d.depends_on, dep.status FROM task_dependencies AS d "
        f"JOIN tasks AS dep ON dep.id = d.depends_on WHERE d.task_id IN ({marks}) ORDER BY d.depends_on",
        tuple(task_ids),
    )
    for row in rows:
        found[row["task_id"]].append((row["depends_on"], row["status"]))
    return found


def _parsed_dependencies(text: str | None) -> list[tuple[int, str]]:
    pairs = [item.split(":", 1) for item in text.split(",")] if text else []
    return sorted((int(number), status) for number, status in pairs)


def _view(row: Row) -> TaskView:
    deps = _parsed_dependencies(row["dependencies"])
    return TaskView(
        id=_task_label(row["id"]),
        title=row["title"],
        details=row["details"],
        status=row["status"],
        priority=fields.label(row["priority"]),
        due_on=fields.iso_date(row["due_on"]),
        agency=row["agency_name"],
        role=row["role_name"],
        goal=_optional_id("goal", row["goal_id"]),
        key_result=_optional_id("key_result", row["key_result_id"]),
        depends_on=[_task_label(d) for d, _ in deps],
        blocked_by=[_task_label(d) for d, status in deps if status != "done"],
        source=row["source"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        note=row["note"],
        outcome=_optional_id("outcome", row["outcome_id"]),
        waiting_on=_optional_id("decision", row["decision_id"]) if row["status"] == "waiting" else None,
        created_at=row["created_at"],
    )


def _views(rows: list[Row]) -> list[TaskView]:
    """Views of rows read through _view_select."""
    return [_view(row) for row in rows]


async def _view_by_id(tx: Tx, task_id: int) -> TaskView:
    """The view of an existing task."""
    row = await tx.one(_view_select() + "WHERE t.id = ?", (task_id,))
    assert row is not None  # read or written earlier in this transaction
    return _view(row)


async def _task_row(tx: Tx, ref: str, field: str = "task_id") -> Row:
    number = ids.parse_id("task", ref, field=field)
    row = await tx.one("SELECT * FROM tasks WHERE id = ?", (number,))
    if row is None:
        raise NotFound(f"{field}: there is no task {_task_label(number)}. Call list_tasks to see open tasks.")
    return row


async def get_task(tx: Tx, task: str) -> TaskView:
    """One task by id ("T42")."""
    row = await _task_row(tx, task)
    return await _view_by_id(tx, row["id"])


# --- adding and claiming -----------------------------------------------------------------------------


def _source(value: object) -> str:
    if value not in get_args(TaskSource):
        raise InvalidInput(f"source: {value!r} is not a task source; send one of {', '.join(get_args(TaskSource))}.")
    return str(value)


async def _dependency_ids(tx: Tx, depends_on: Sequence[str]) -> list[int]:
    if isinstance(depends_on, str) or len(depends_on) > MAX_DEPENDENCIES:
        raise InvalidInput(f'depends_on: send a list of at most {MAX_DEPENDENCIES} task ids, e.g. ["T3", "T7"].')
    numbers = sorted({ids.parse_id("task", ref, field="depends_on") for ref in depends_on})
    for number in numbers:
        status = await tx.scalar("SELECT status FROM tasks WHERE id = ?", (number,))
        if status is None:
            raise NotFound(f"depends_on: there is no task {_task_label(number)}. Call list_tasks to see tasks.")
        if status in ("failed", "cancelled"):
            raise InvalidInput(
                f"depends_on: {_task_label(number)} is {status} and will never be done, so a task "
                "waiting on it could never start; leave it out or add a new task to depend on."
            )
    return numbers


async def add_task(
    tx: Tx,
    actor: Actor,
    *,
    title: str,
    details: str = "",
    agency: str | None = None,
    role: str | None = None,
    goal: str | None = None,
    key_result: str | None = None,
    priority: str = "P2",
    due_on: date | str | None = None,
    depends_on: Sequence[str] = (),
    source: TaskSource = "agency",
) -> TaskView:
    """Put a task in the inbox; it waits until every task it depends on is done."""
    values = {
        "title": checked_text(title, "title", fields.MAX_TITLE, required=True),
        "details": checked_text(details, "details", fields.MAX_DETAILS),
        "priority": fields.priority_rank(priority),
        "due_on": fields.due_text(due_on),
        "source": _source(source),
    }
    links = await fields.resolve_links(tx, agency, role, goal, key_result)
    dependencies = await _dependency_ids(tx, depends_on)
    task_id = await tx.run(
        "INSERT INTO tasks (title, details, agency_id, role_id, goal_id, key_result_id, priority, due_on, "
        "source, created_at, updated_at) VALUES (:title, :details, :agency_id, :role_id, :goal_id, "
        ":key_result_id, :priority, :due_on, :source, :now, :now)",
        {**values, **links.__dict__, "now": tx.now_text},
    )
    await tx.run_many(
        "INSERT INTO task_dependencies (task_id, depends_on) VALUES (?, ?)",
        [(task_id, number) for number in dependencies],
    )
    view = await _view_by_id(tx, task_id)
    await audit.append(tx, actor, "task.add", view.id, _add_detail(view))
    return view


def _add_detail(view: TaskView) -> dict[str, Any]:
    detail = {
        "title": view.title,
        "priority": view.priority,
        "source": view.source,
        "agency": view.agency,
        "role": view.role,
        "goal": view.goal,
        "key_result": view.key_result,
        "due_on": view.due_on,
        "depends_on": view.depends_on,
    }
    return {key: value for key, value in detail.items() if value not in (None, [])}


async def claim_next_task(
    tx: Tx, actor: Actor, *, agency: str | None = None, role: str | None = None, lease_minutes: int = 60
) -> TaskView | None:
    """Lease the most urgent ready task to the actor (priority, then due date, then age); None if none is ready.

    `role` matches tasks for that role and tasks for no role in particular; it needs `agency`.
    """
    minutes = fields.whole_number(lease_minutes, "lease_minutes", 1, MAX_LEASE_MINUTES, "minutes")
    filters = await fields.resolve_links(tx, agency, role, None, None, new_work=False)
    await materialize_routines(tx, actor)
    until = clock.format_ts(tx.now + timedelta(minutes=minutes))
    row = await tx.one(
        _CLAIM,
        {"who": actor.name, "until": until, "now": tx.now_text, "agency": filters.agency_id, "role": filters.role_id},
    )
    if row is None:
        if filters.agency_id is not None:
            await _refuse_paused(tx, filters.agency_id)  # read only when nothing came: the claim's cost stays
        return None
    detail: dict[str, Any] = {"lease_until": until}
    if row["previous_owner"] is not None:
        detail["reclaimed_from"] = row["previous_owner"]
    await audit.append(tx, actor, "task.claim", _task_label(row["id"]), detail)
    return _view(row)


async def _refuse_paused(tx: Tx, agency_id: int) -> None:
    """A claim for a paused agency says so, and who may resume it, instead of "nothing is ready"."""
    row = await tx.one("SELECT * FROM agencies WHERE id = ?", (agency_id,))
    reason = None if row is None else agencies.paused_reason(row, "claimed")
    if reason is not None:
        raise Conflict(f"agency: {reason}")


# --- changing and completing ---------------------------------------------------------------------------


def _refuse_closed(row: Row) -> None:
    if row["status"] in CLOSED:
        raise Conflict(
            f"task_id: {_task_label(row['id'])} is {row['status']}, and closed tasks do not change. "
            "Add a new task with add_task instead."
        )


def _status(value: object) -> str:
    if value in ("done", "failed"):
        raise InvalidInput(
            f"status: a task becomes {value} only through complete_task, which also logs the "
            "outcome; call complete_task instead."
        )
    if value == "claimed":
        raise InvalidInput("status: tasks are claimed with claim_next_task, which leases them; call that instead.")
    if value == "waiting":
        # A task waits on the operator only through a decision the operator can see and answer; deciding
        # moves it on. A bare "waiting" would sit in the inbox with nothing for the operator to decide.
        raise InvalidInput(
            "status: a task waits on the operator through a decision: call request_decision with its task_id "
            "(or authorize with task_id), and it comes back when the operator answers."
        )
    if value not in SETTABLE:
        raise InvalidInput(f"status: {value!r} is not a status you can set; send one of {', '.join(SETTABLE)}.")
    return str(value)


def _requested_changes(
    status: str | None,
    priority: str | None,
    due_on: date | str | None,
    note: str | None,
    title: str | None,
    details: str | None,
) -> dict[str, Any]:
    asked = {
        "status": None if status is None else _status(status),
        "priority": None if priority is None else fields.priority_rank(priority),
        "due_on": fields.due_text(due_on),
        "note": None if note is None else checked_text(note, "note", MAX_NOTE),
        "title": None if title is None else checked_text(title, "title", fields.MAX_TITLE, required=True),
        "details": None if details is None else checked_text(details, "details", fields.MAX_DETAILS),
    }
    return {column: value for column, value in asked.items() if value is not None}


def _status_columns(new_status: str, now: str) -> dict[str, Any]:
    """Leaving 'claimed' ends the lease; cancelling closes the task."""
    columns: dict[str, Any] = {"status": new_status, "lease_owner": None, "lease_expires_at": None}
    if new_status == "cancelled":
        columns["closed_at"] = now
    return columns


def _renewal(row: Row, changes: dict[str, Any], minutes: int | None, tx: Tx) -> dict[str, Any]:
    if minutes is None:
        return {}
    minutes = fields.whole_number(minutes, "renew_lease_minutes", 1, MAX_LEASE_MINUTES, "minutes")
    if changes.get("status", row["status"]) != "claimed":
        raise Conflict(
            f"renew_lease_minutes: {_task_label(row['id'])} is "
            f"{changes.get('status', row['status'])}, not claimed, so it has no lease to renew. "
            "Claim it with claim_next_task first."
        )
    return {"lease_expires_at": clock.format_ts(tx.now + timedelta(minutes=minutes))}


async def update_task(
    tx: Tx,
    actor: Actor,
    task: str,
    *,
    status: str | None = None,
    priority: str | None = None,
    due_on: date | str | None = None,
    note: str | None = None,
    title: str | None = None,
    details: str | None = None,
    renew_lease_minutes: int | None = None,
    agency: fields.LinkChange = fields.KEEP,
    role: fields.LinkChange = fields.KEEP,
    goal: fields.LinkChange = fields.KEEP,
    key_result: fields.LinkChange = fields.KEEP,
    depends_on: Sequence[str] | None = None,
) -> TaskView:
    """Change an unfinished task: reopen (unclaim), block, wait on the operator, cancel, re-prioritise, renew a
    lease, move it to another goal, key result, role or agency, or replace its dependencies.

    Fields left out stay as they are (KEEP for the links; None clears a link); sending a field's current
    value changes nothing. Moving a task to another agency or role is an operator act: requests that name
    the task are judged as its role, so the move changes whose authority applies to it.
    """
    asked = _requested_changes(status, priority, due_on, note, title, details)
    relinking = any(link is not fields.KEEP for link in (agency, role, goal, key_result))
    if not asked and renew_lease_minutes is None and not relinking and depends_on is None:
        raise InvalidInput(
            "Nothing to change: send status, priority, due_on, note, title, details, renew_lease_minutes, "
            "agency, role, goal_id, key_result_id or depends_on."
        )
    row = await _task_row(tx, task)
    _refuse_closed(row)
    changes = {column: value for column, value in asked.items() if row[column] != value}
    _refuse_leaving_a_wait(row, changes.get("status"))
    changes.update(_renewal(row, changes, renew_lease_minutes, tx))
    if relinking:
        changes.update(await _moved(tx, actor, row, agency=agency, role=role, goal=goal, key_result=key_result))
    dependencies = None if depends_on is None else await _replaced_dependencies(tx, row, depends_on)
    if not changes and dependencies is None:
        return await _view_by_id(tx, row["id"])
    columns = {**changes, **(_status_columns(changes["status"], tx.now_text) if "status" in changes else {})}
    assignments = "".join(f"{column} = :{column}, " for column in columns)
    await tx.run(
        f"UPDATE tasks SET {assignments}updated_at = :now WHERE id = :id",
        {**columns, "now": tx.now_text, "id": row["id"]},
    )
    detail = _update_detail(changes)
    if dependencies is not None:
        await tx.run("DELETE FROM task_dependencies WHERE task_id = ?", (row["id"],))
        await tx.run_many(
            "INSERT INTO task_dependencies (task_id, depends_on) VALUES (?, ?)",
            [(row["id"], number) for number in dependencies],
        )
        detail["depends_on"] = [_task_label(number) for number in dependencies]
    await audit.append(tx, actor, "task.update", _task_label(row["id"]), detail)
    return await _view_by_id(tx, row["id"])


def _refuse_leaving_a_wait(row: Row, status: str | None) -> None:
    """A task waiting on a decision leaves it only when the operator answers (or by being cancelled), so the
    operator's "deny and fail" always reaches the task it was asked about."""
    if row["status"] == "waiting" and status is not None and status != "cancelled":
        decision = _optional_id("decision", row["decision_id"]) or "a decision"
        raise Conflict(
            f"status: {_task_label(row['id'])} waits on {decision}; it comes back when the operator answers. "
            "Claim other work meanwhile, or cancel it if it is no longer needed."
        )


_LINK_KINDS = {"agency_id": "agency", "role_id": "role", "goal_id": "goal", "key_result_id": "key_result"}


def _update_detail(changes: dict[str, Any]) -> dict[str, Any]:
    """The audit row's detail: priorities as labels, links as short ids."""
    detail = dict(changes)
    if "priority" in detail:
        detail["priority"] = fields.label(detail["priority"])
    for column, kind in _LINK_KINDS.items():
        if column in detail:
            detail[column] = _optional_id(kind, detail[column])
    return detail


async def _moved(
    tx: Tx,
    actor: Actor,
    row: Row,
    *,
    agency: fields.LinkChange,
    role: fields.LinkChange,
    goal: fields.LinkChange,
    key_result: fields.LinkChange,
) -> dict[str, Any]:
    """The link columns that change; moving to another agency or role must come from the operator."""
    label = _task_label(row["id"])
    links = await fields.relink(tx, row, label, agency=agency, role=role, goal=goal, key_result=key_result)
    changed = {column: value for column, value in links.__dict__.items() if row[column] != value}
    if "agency_id" in changed or "role_id" in changed:
        trust.require_operator(
            actor,
            f"Moving {label} to another agency or role (requests that name a task are judged as its role, so "
            "this changes whose authority applies to it)",
            f"chief-of-staff task update {label} --agency NAME --role NAME",
        )
    return changed


async def _replaced_dependencies(tx: Tx, row: Row, depends_on: Sequence[str]) -> list[int] | None:
    """The new dependency list when it differs from the current one; refuses one that would make a cycle."""
    numbers = await _dependency_ids(tx, depends_on)
    current = sorted(number for number, _ in (await _dependencies(tx, [row["id"]]))[row["id"]])
    if numbers == current:
        return None
    label = _task_label(row["id"])
    if row["id"] in numbers:
        raise InvalidInput(f"depends_on: {label} cannot depend on itself; leave it out of the list.")
    cycle = await _first_waiting_on(tx, row["id"], numbers)
    if cycle is not None:
        raise InvalidInput(
            f"depends_on: {_task_label(cycle)} already waits on {label} (directly or through other tasks), so "
            f"{label} depending on it would make both wait forever; leave {_task_label(cycle)} out."
        )
    return numbers


async def _first_waiting_on(tx: Tx, task_id: int, candidates: list[int]) -> int | None:
    """The first of `candidates` that waits on the task, directly or through others (walked by the reverse index)."""
    if not candidates:
        return None
    marks = ", ".join("?" * len(candidates))
    found = await tx.scalar(
        "WITH RECURSIVE after(id) AS (SELECT task_id FROM task_dependencies WHERE depends_on = ? "
        "UNION SELECT d.task_id FROM task_dependencies AS d JOIN after ON d.depends_on = after.id) "
        f"SELECT min(id) FROM after WHERE id IN ({marks})",
        (task_id, *candidates),
    )
    return None if found is None else int(found)


async def complete_task(
    tx: Tx,
    actor: Actor,
    task: str,
    *,
    result: str,
    summary: str,
    metrics: Sequence[MetricDelta] = (),
    cost_cents: int = 0,
    minutes_saved: int = 0,
    evidence: Sequence[str] = (),
    lesson: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[TaskView, OutcomeView]:
    """Close a task and log its outcome in the same transaction: success or partial -> done, failure -> failed.

    With an idempotency key already used for the same completion, return the task and its first outcome
    and write nothing: a retried call never closes twice or counts a key result twice.
    """
    row = await _task_row(tx, task)
    label = _task_label(row["id"])
    if result not in RESULT_STATUS:
        raise InvalidInput(f"result: {result!r} is not a result; send success, partial or failure.")
    if row["agency_id"] is None:
        raise InvalidInput(
            f"task_id: {label} belongs to no agency, and every outcome is logged for an agency. "
            "Log the work with log_outcome (naming the agency), then close this task with "
            "update_task status=cancelled; give future tasks an agency when you add them."
        )
    request = await outcomes.read_request(
        tx,
        operation="complete_task",
        agency=ids.format_id("agency", row["agency_id"]),
        role=_optional_id("role", row["role_id"]),
        task_id=row["id"],
        summary=summary,
        result=result,
        metrics=list(metrics),
        cost_cents=cost_cents,
        minutes_saved=minutes_saved,
        evidence=list(evidence),
        lesson=lesson,
        idempotency_key=idempotency_key,
    )
    # Before the closed check: the retry of a completion that went through finds its task closed.
    first = await outcomes.replayed(tx, request)
    if first is not None:
        return await _view_by_id(tx, row["id"]), first
    _refuse_closed(row)
    await _refuse_unfinished_dependencies(tx, row)
    outcome = await outcomes.record(tx, actor, request)
    status = RESULT_STATUS[result]
    await tx.run(
        "UPDATE tasks SET status = ?, outcome_id = ?, closed_at = ?, lease_owner = NULL, "
        "lease_expires_at = NULL, updated_at = ? WHERE id = ?",
        (status, ids.parse_id("outcome", outcome.id), tx.now_text, tx.now_text, row["id"]),
    )
    await audit.append(tx, actor, "task.complete", label, {"status": status, "result": result, "outcome": outcome.id})
    return await _view_by_id(tx, row["id"]), outcome


async def _refuse_unfinished_dependencies(tx: Tx, row: Row) -> None:
    waiting_on = [d for d, status in (await _dependencies(tx, [row["id"]]))[row["id"]] if status != "done"]
    if waiting_on:
        names = ", ".join(_task_label(d) for d in waiting_on)
        raise Conflict(
            f"task_id: {_task_label(row['id'])} depends on tasks that are not done yet ({names}). "
            "Complete those first, or cancel this task with update_task."
        )


# --- listing and the summary ---------------------------------------------------------------------------


def _statuses(status: str | None) -> tuple[str, ...]:
    if status is None or status == "unfinished":
        return UNFINISHED
    if status not in get_args(TaskStatus):
        raise InvalidInput(
            f"status: {status!r} is not a task status; send unfinished (the default) or one of "
            f"{', '.join(get_args(TaskStatus))}."
        )
    return (status,)


async def list_tasks(
    tx: Tx, *, status: str | None = None, agency: str | None = None, limit: int = 20
) -> list[TaskView]:
    """Tasks with one status (default: every unfinished one), in claim order; closed ones newest first."""
    wanted = _statuses(status)
    count = fields.whole_number(limit, "limit", 1, MAX_LIST, "tasks")
    agency_id = None if agency is None else int((await agencies.resolve_agency(tx, agency))["id"])
    marks = ", ".join("?" * len(wanted))
    if wanted[0] in CLOSED:
        # The closed_at index walks newest first and stops at the limit.
        select = _view_select("tasks_closed") + "WHERE t.closed_at IS NOT NULL AND "
        order = "ORDER BY t.closed_at DESC, t.id DESC"
    else:
        select = _view_select() + "WHERE "
        order = "ORDER BY t.priority, coalesce(t.due_on, '9999-12-31'), t.id"
    sql = f"{select}t.status IN ({marks}) AND (? IS NULL OR t.agency_id = ?) {order} LIMIT ?"
    return _views(await tx.all(sql, (*wanted, agency_id, agency_id, count)))


async def inbox_summary(tx: Tx, *, agency_id: int | None = None) -> InboxSummary:
    """Counts for the brief and the next few ready tasks, read from indexes only; one agency's if named."""
    zone = (await workspace.get(tx)).timezone
    today = clock.local_date(tx.now, zone)
    midnight = clock.format_ts(clock.local_midnight_utc(today, zone))
    counts = await tx.all(_SUMMARY_COUNTS, {"today": today.isoformat(), "midnight": midnight, "agency": agency_id})
    by_status = {row[1]: int(row[2]) for row in counts if row[0] == "unfinished"}
    closed = {row[1]: int(row[2]) for row in counts if row[0] == "closed"}
    overdue = sum(int(row[2]) for row in counts if row[0] == "overdue")
    return InboxSummary(
        open=by_status.get("open", 0),
        claimed=by_status.get("claimed", 0),
        blocked=by_status.get("blocked", 0),
        waiting=by_status.get("waiting", 0),
        overdue=overdue,
        done_today=closed.get("done", 0),
        failed_today=closed.get("failed", 0),
        next_up=await _ready(tx, NEXT_UP, agency_id),
    )


# The summary's three counts in one statement, each part through its own index as it would alone:
# unfinished tasks by status, unfinished ones overdue (due before local today), closed since local midnight.
_SUMMARY_COUNTS = (
    "SELECT 'unfinished', status, count(*) FROM tasks WHERE status IN ('open', 'claimed', 'blocked', 'waiting') "
    "AND (:agency IS NULL OR agency_id = :agency) GROUP BY status "
    "UNION ALL SELECT 'overdue', NULL, count(*) FROM tasks INDEXED BY tasks_overdue "
    "WHERE due_on IS NOT NULL AND status IN ('open', 'claimed', 'blocked', 'waiting') AND due_on < :today "
    "AND (:agency IS NULL OR agency_id = :agency) "
    "UNION ALL SELECT 'closed', status, count(*) FROM tasks INDEXED BY tasks_closed "
    "WHERE closed_at IS NOT NULL AND closed_at >= :midnight AND (:agency IS NULL OR agency_id = :agency) "
    "GROUP BY status"
)


async def _ready(tx: Tx, limit: int, agency_id: int | None = None) -> list[TaskView]:
    """The next `limit` ready tasks in claim order, read through tasks_ready in one statement."""
    rows = await tx.all(
        f"{_view_select('tasks_ready')}{_READY_WHERE}LIMIT :limit",
        {"now": tx.now_text, "agency": agency_id, "role": None, "limit": limit},
    )
    return _views(rows)


# --- waiting on the operator -------------------------------------------------------------------------


async def wait_on_decision(tx: Tx, actor: Actor, task_id: int, decision_id: int, *, agency_id: int) -> bool:
    """Park the agency's own unfinished task on the decision its request opened: status waiting, lease ended.

    Deciding (or the decision running out) moves it on; see `resume_after_decision`. A task that already
    waits on a decision stays with that one, so the operator's answer to it still reaches it. True when
    it moved.
    """
    moved = await tx.run(
        "UPDATE tasks SET status = 'waiting', decision_id = :decision, lease_owner = NULL, lease_expires_at = NULL, "
        "updated_at = :now WHERE id = :task AND agency_id = :agency AND status IN ('open', 'claimed', 'blocked')",
        {"decision": decision_id, "task": task_id, "agency": agency_id, "now": tx.now_text},
    )
    if moved:
        detail = {"status": "waiting", "decision": ids.format_id("decision", decision_id)}
        await audit.append(tx, actor, "task.wait", _task_label(task_id), detail)
    return bool(moved)


async def resume_after_decision(
    tx: Tx, actor: Actor, decision_id: int, *, status: Literal["open", "failed"], note: str
) -> list[str]:
    """Move every task waiting on a closed decision: reopened (claimable again) or failed; their ids.

    The note is appended to the task's own, so the session that claims it next reads what the operator
    decided and what to do with it.
    """
    rows = await tx.all("SELECT id, note FROM tasks WHERE decision_id = ? AND status = 'waiting'", (decision_id,))
    for row in rows:
        text = note if not row["note"] else f"{row['note']}\n{note}"
        await tx.run(
            "UPDATE tasks SET status = ?, note = ?, closed_at = ?, updated_at = ? WHERE id = ? AND status = 'waiting'",
            (status, text[-MAX_NOTE:], tx.now_text if status == "failed" else None, tx.now_text, row["id"]),
        )
        detail = {"status": status, "decision": ids.format_id("decision", decision_id)}
        await audit.append(tx, actor, "task.resume", _task_label(row["id"]), detail)
    return [_task_label(row["id"]) for row in rows]
