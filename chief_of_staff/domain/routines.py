"""Routines: recurring tasks ("every weekday: research 20 leads").

There is no heartbeat, so a routine's task for a day is made lazily, by the first claim or
brief of that local day. At most one task per routine and day (UNIQUE(routine_id, routine_on)),
and a day nobody looked at is not made up later: yesterday's routine work is not today's.
Callers use these through `chief_of_staff.domain.inbox`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from chief_of_staff.core import audit, clock, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import InvalidInput, NotFound
from chief_of_staff.core.fields import Model, Priority, checked_text
from chief_of_staff.domain import agencies, trust, workspace
from chief_of_staff.domain import task_fields as fields

MAX_LIST = 100
# The schedules there are, as an input field's description says them.
SCHEDULE_FORMS = '"daily", "weekdays", "weekly:mon,thu" or "monthly:1"'
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HELP = (
    'send "daily", "weekdays", "weekly:mon,thu" (three-letter day names, comma-separated) '
    'or "monthly:1" (a day of the month from 1 to 28)'
)


class RoutineView(Model):
    id: str
    agency: str
    role: str | None
    title: str
    details: str
    schedule: str
    priority: Priority
    goal: str | None
    key_result: str | None
    active: bool
    last_run_on: date | None


def parse_schedule(text: object) -> str:
    """The schedule in its normal form ("weekly:mon,thu"); InvalidInput lists the forms there are."""
    if not isinstance(text, str):
        raise InvalidInput(f"schedule: {_HELP}.")
    value = re.sub(r"\s+", "", text.lower())
    kind, _, rest = value.partition(":")
    if value in ("daily", "weekdays"):
        return value
    if kind == "weekly" and rest:
        return "weekly:" + ",".join(_day_names(rest.split(",")))
    if kind == "monthly" and re.fullmatch(r"[0-9]{1,2}", rest):
        if 1 <= int(rest) <= 28:
            return f"monthly:{int(rest)}"
        raise InvalidInput(
            'schedule: a monthly routine runs on a day from 1 to 28, so that every month has it; e.g. "monthly:1".'
        )
    raise InvalidInput(f"schedule: {text!r} is not a schedule; {_HELP}.")


def _day_names(days: list[str]) -> list[str]:
    for day in days:
        if day not in DAY_NAMES:
            raise InvalidInput(
                f'schedule: {day!r} is not a day name; use mon, tue, wed, thu, fri, sat or sun, e.g. "weekly:mon,thu".'
            )
    return [day for day in DAY_NAMES if day in days]


def runs_on(schedule: str, day: date) -> bool:
    """Whether a schedule in normal form includes a local calendar day."""
    kind, _, rest = schedule.partition(":")
    if kind == "daily":
        return True
    if kind == "weekdays":
        return day.weekday() < 5
    if kind == "weekly":
        return DAY_NAMES[day.weekday()] in rest.split(",")
    return kind == "monthly" and day.day == int(rest)


async def add_routine(
    tx: Tx,
    actor: Actor,
    *,
    agency: str,
    role: str | None = None,
    title: str,
    details: str = "",
    priority: str = "P2",
    schedule: str,
    goal: str | None = None,
    key_result: str | None = None,
) -> RoutineView:
    """A recurring task for an agency: one task on each scheduled local day, starting with the next claim."""
    values = {
        "title": checked_text(title, "title", fields.MAX_TITLE, required=True),
        "details": checked_text(details, "details", fields.MAX_DETAILS),
        "priority": fields.priority_rank(priority),
        "schedule": parse_schedule(schedule),
    }
    if agency is None:
        raise InvalidInput('agency: a routine belongs to an agency; send its name or id, e.g. "Outbound".')
    links = await fields.resolve_links(tx, agency, role, goal, key_result)
    routine_id = await tx.run(
        "INSERT INTO routines (agency_id, role_id, title, details, priority, schedule, goal_id, "
        "key_result_id, created_at, updated_at) VALUES (:agency_id, :role_id, :title, :details, "
        ":priority, :schedule, :goal_id, :key_result_id, :now, :now)",
        {**values, **links.__dict__, "now": tx.now_text},
    )
    view = await _view(tx, routine_id)
    await audit.append(
        tx,
        actor,
        "routine.add",
        view.id,
        {"title": view.title, "schedule": view.schedule, "agency": view.agency, "priority": view.priority},
    )
    return view


async def set_active(tx: Tx, actor: Actor, routine: str, *, active: bool) -> RoutineView:
    """Pause a routine (no more tasks from it) or resume it; tasks it already made stay in the inbox."""
    row = await _row(tx, routine)
    routine_id = int(row["id"])
    if bool(row["active"]) != active:
        await tx.run(
            "UPDATE routines SET active = ?, updated_at = ? WHERE id = ?", (int(active), tx.now_text, routine_id)
        )
        await audit.append(
            tx, actor, "routine.resume" if active else "routine.pause", ids.format_id("routine", routine_id)
        )
    return await _view(tx, routine_id)


# A routine with the names its view shows.
_VIEW_SELECT = (
    "SELECT r.*, a.name AS agency_name, ro.name AS role_name FROM routines AS r "
    "JOIN agencies AS a ON a.id = r.agency_id LEFT JOIN roles AS ro ON ro.id = r.role_id "
)


async def list_routines(
    tx: Tx, *, agency: str | None = None, active: bool | None = None, limit: int = MAX_LIST
) -> list[RoutineView]:
    """Routines, oldest first: one agency's or all, active or paused ones or both."""
    count = fields.whole_number(limit, "limit", 1, MAX_LIST, "routines")
    agency_id = None if agency is None else int((await agencies.resolve_agency(tx, agency))["id"])
    rows = await tx.all(
        f"{_VIEW_SELECT}WHERE (:agency IS NULL OR r.agency_id = :agency) AND (:active IS NULL OR r.active = :active) "
        "ORDER BY r.id LIMIT :limit",
        {"agency": agency_id, "active": None if active is None else int(active), "limit": count},
    )
    return [_row_view(row) for row in rows]


async def edit_routine(
    tx: Tx,
    actor: Actor,
    routine: str,
    *,
    title: str | None = None,
    details: str | None = None,
    priority: str | None = None,
    schedule: str | None = None,
    agency: fields.LinkChange = fields.KEEP,
    role: fields.LinkChange = fields.KEEP,
    goal: fields.LinkChange = fields.KEEP,
    key_result: fields.LinkChange = fields.KEEP,
) -> RoutineView:
    """Change a routine outside a review: its title, details, priority, schedule, goal or key result, its role or
    agency (an operator act, as moving a task is). Tasks it already made stay as they are.

    Fields left out stay as they are (KEEP for the links; None clears one); the current value changes nothing.
    """
    asked = {
        "title": None if title is None else checked_text(title, "title", fields.MAX_TITLE, required=True),
        "details": None if details is None else checked_text(details, "details", fields.MAX_DETAILS),
        "priority": None if priority is None else fields.priority_rank(priority),
        "schedule": None if schedule is None else parse_schedule(schedule),
    }
    changes: dict[str, Any] = {column: value for column, value in asked.items() if value is not None}
    links = (agency, role, goal, key_result)
    if not changes and all(link is fields.KEEP for link in links):
        raise InvalidInput(
            "Nothing to change: send title, details, priority, schedule, agency, role, goal_id or key_result_id."
        )
    if agency is None:
        raise InvalidInput('agency: a routine belongs to an agency; send its name or id, e.g. "Outbound".')
    row = await _row(tx, routine)
    short = ids.format_id("routine", row["id"])
    changes = {column: value for column, value in changes.items() if row[column] != value}
    if any(link is not fields.KEEP for link in links):
        moved = await fields.relink(tx, row, short, agency=agency, role=role, goal=goal, key_result=key_result)
        changes.update({column: value for column, value in moved.__dict__.items() if row[column] != value})
    if "agency_id" in changes or "role_id" in changes:
        trust.require_operator(
            actor,
            f"Moving {short} to another agency or role (its tasks are judged as their role, so this changes "
            "whose authority applies to them)",
            f"chief-of-staff routine edit {short} --agency NAME --role NAME",
        )
    if changes:
        assignments = "".join(f"{column} = :{column}, " for column in changes)
        await tx.run(
            f"UPDATE routines SET {assignments}updated_at = :now WHERE id = :id",
            {**changes, "now": tx.now_text, "id": row["id"]},
        )
        await audit.append(tx, actor, "routine.edit", short, _edit_detail(changes))
    return await _view(tx, row["id"])


def _edit_detail(changes: dict[str, Any]) -> dict[str, Any]:
    detail = dict(changes)
    if "priority" in detail:
        detail["priority"] = fields.label(detail["priority"])
    for column, kind in (
        ("agency_id", "agency"),
        ("role_id", "role"),
        ("goal_id", "goal"),
        ("key_result_id", "key_result"),
    ):
        if column in detail:
            detail[column] = None if detail[column] is None else ids.format_id(kind, detail[column])
    return detail


async def _row(tx: Tx, routine: str) -> Row:
    routine_id = ids.parse_id("routine", routine, field="routine_id")
    row = await tx.one("SELECT * FROM routines WHERE id = ?", (routine_id,))
    if row is None:
        raise NotFound(
            f"routine_id: there is no routine {ids.format_id('routine', routine_id)}. "
            'Call routines with action "list" to see them.'
        )
    return row


async def _view(tx: Tx, routine_id: int) -> RoutineView:
    row = await tx.one(f"{_VIEW_SELECT}WHERE r.id = ?", (routine_id,))
    assert row is not None
    return _row_view(row)


def _row_view(row: Row) -> RoutineView:
    return RoutineView(
        id=ids.format_id("routine", row["id"]),
        agency=row["agency_name"],
        role=row["role_name"],
        title=row["title"],
        details=row["details"],
        schedule=row["schedule"],
        priority=fields.label(row["priority"]),
        goal=None if row["goal_id"] is None else ids.format_id("goal", row["goal_id"]),
        key_result=None if row["key_result_id"] is None else ids.format_id("key_result", row["key_result_id"]),
        active=bool(row["active"]),
        last_run_on=fields.iso_date(row["last_run_on"]),
    )


# The routines not yet run on local day :today; materialize_routines has work only when this holds.
# A paused agency's routines make nothing: its days pass unmade, as a day nobody looked at does.
_PENDING_WHERE = (
    "FROM routines AS r JOIN agencies AS a ON a.id = r.agency_id "
    "WHERE r.active = 1 AND a.status = 'active' AND a.paused_at IS NULL "
    "AND (r.last_run_on IS NULL OR r.last_run_on < :today)"
)
# A probe a caller can fold into one statement with others (params :today, the local date).
DUE_EXISTS = f"EXISTS (SELECT 1 {_PENDING_WHERE})"


async def materialize_routines(tx: Tx, actor: Actor) -> int:
    """Create today's task for each active routine scheduled today; returns how many were created.

    Idempotent within a local day; days that passed without a claim are not backfilled.
    """
    today = clock.local_date(tx.now, (await workspace.get(tx)).timezone)
    # The routines table holds a few dozen rows; the ones already run today drop out here.
    pending = await tx.all(f"SELECT r.*, a.name AS agency_name {_PENDING_WHERE}", {"today": today.isoformat()})
    created = 0
    for routine in pending:
        if runs_on(routine["schedule"], today):
            created += await _make_task(tx, actor, routine, today.isoformat())
    return created


async def _make_task(tx: Tx, actor: Actor, routine: Row, today: str) -> int:
    row = await tx.one(
        "INSERT INTO tasks (title, details, agency_id, role_id, goal_id, key_result_id, priority, due_on, "
        "source, routine_id, routine_on, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'routine', ?, ?, ?, ?) "
        "ON CONFLICT (routine_id, routine_on) DO NOTHING RETURNING id",
        (
            routine["title"],
            routine["details"],
            routine["agency_id"],
            routine["role_id"],
            routine["goal_id"],
            routine["key_result_id"],
            routine["priority"],
            today,
            routine["id"],
            today,
            tx.now_text,
            tx.now_text,
        ),
    )
    await tx.run("UPDATE routines SET last_run_on = ? WHERE id = ?", (today, routine["id"]))
    if row is None:
        return 0
    await audit.append(
        tx,
        actor,
        "task.add",
        ids.format_id("task", row["id"]),
        {
            "title": routine["title"],
            "priority": fields.label(routine["priority"]),
            "source": "routine",
            "agency": routine["agency_name"],
            "due_on": today,
            "routine": ids.format_id("routine", routine["id"]),
        },
    )
    return 1
