"""The inbox on the command line, the verified channel: tasks (list, show, add, update) and routines (list,
add, edit, pause, resume). Moving work to another agency or role is an operator act; here it is made."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from chief_of_staff.cli.support import Add, add_nested, workspace_command
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.db import Store
from chief_of_staff.domain import inbox, routines
from chief_of_staff.domain import task_fields as fields

_STATUSES = ["unfinished", "open", "claimed", "blocked", "waiting", "done", "failed", "cancelled"]


def task_line(view: inbox.TaskView) -> str:
    """One task as a terminal shows it."""
    owner = (view.agency or "no agency") + (f"/{view.role}" if view.role else "")
    links = ", ".join(
        part
        for part in (
            view.key_result or view.goal,
            f"due {view.due_on}" if view.due_on else "",
            f"after {', '.join(view.blocked_by)}" if view.blocked_by else "",
            f"waiting on {view.waiting_on}" if view.waiting_on else "",
        )
        if part
    )
    return f"{view.id} {view.priority} [{view.status}] {view.title}  ({owner}{'; ' + links if links else ''})"


def routine_line(view: routines.RoutineView) -> str:
    owner = view.agency + (f"/{view.role}" if view.role else "")
    state = "" if view.active else " [paused]"
    return f"{view.id} {view.priority} {view.schedule}{state} {view.title}  ({owner}; last made {view.last_run_on})"


def _link(args: argparse.Namespace, name: str) -> fields.LinkChange:
    """An option as a link change: --no-NAME clears it, the option sets it, neither keeps it."""
    if getattr(args, f"no_{name}", False):
        return None
    value: str | None = getattr(args, name)
    return fields.KEEP if value is None else value


@workspace_command
async def cmd_task_list(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        found = await inbox.list_tasks(tx, status=args.status, agency=args.agency, limit=args.limit)
    if not found:
        print(f"No {args.status} tasks.")
    for view in found:
        print(task_line(view))
    return 0


@workspace_command
async def cmd_task_show(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        view = await inbox.get_task(tx, args.task)
    print(task_line(view))
    for label, text in (("details", view.details), ("note", view.note)):
        if text:
            print(f"  {label}: {text}")
    if view.lease_owner:
        print(f"  leased to {view.lease_owner} until {view.lease_expires_at}")
    if view.outcome:
        print(f"  outcome {view.outcome}")
    return 0


@workspace_command
async def cmd_task_add(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await inbox.add_task(
            tx,
            OPERATOR_CLI,
            title=args.title,
            details=args.details,
            agency=args.agency,
            role=args.role,
            goal=args.goal,
            key_result=args.key_result,
            priority=args.priority,
            due_on=args.due_on,
            depends_on=args.depends_on or [],
            source="operator",
        )
    print(task_line(view))
    return 0


@workspace_command
async def cmd_task_update(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await inbox.update_task(
            tx,
            OPERATOR_CLI,
            args.task,
            status=args.status,
            priority=args.priority,
            due_on=args.due_on,
            note=args.note,
            title=args.title,
            details=args.details,
            agency=fields.KEEP if args.agency is None else args.agency,
            role=_link(args, "role"),
            goal=_link(args, "goal"),
            key_result=_link(args, "key_result"),
            depends_on=args.depends_on,
        )
    print(task_line(view))
    return 0


@workspace_command
async def cmd_routine_list(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        found = await routines.list_routines(tx, agency=args.agency)
    if not found:
        print("No routines.")
    for view in found:
        print(routine_line(view))
    return 0


@workspace_command
async def cmd_routine_add(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await routines.add_routine(
            tx,
            OPERATOR_CLI,
            agency=args.agency,
            role=args.role,
            title=args.title,
            details=args.details,
            priority=args.priority,
            schedule=args.schedule,
            goal=args.goal,
            key_result=args.key_result,
        )
    print(routine_line(view))
    return 0


@workspace_command
async def cmd_routine_edit(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await routines.edit_routine(
            tx,
            OPERATOR_CLI,
            args.routine,
            title=args.title,
            details=args.details,
            priority=args.priority,
            schedule=args.schedule,
            agency=fields.KEEP if args.agency is None else args.agency,
            role=_link(args, "role"),
            goal=_link(args, "goal"),
            key_result=_link(args, "key_result"),
        )
    print(routine_line(view))
    return 0


def _set_active(active: bool) -> Callable[[argparse.Namespace], int]:
    @workspace_command
    async def command(args: argparse.Namespace, store: Store) -> int:
        async with store.write() as tx:
            view = await routines.set_active(tx, OPERATOR_CLI, args.routine, active=active)
        print(routine_line(view))
        return 0

    return command


def _links(parser: argparse.ArgumentParser, *, clearing: bool) -> None:
    parser.add_argument("--agency", help="agency name or id" + (" (moves it: an operator act)" if clearing else ""))
    parser.add_argument("--role", help="role name or id in that agency")
    parser.add_argument("--goal", help="goal id, e.g. G1")
    parser.add_argument("--key-result", help="key result id or metric name, e.g. KR3 or 'emails sent'")
    if clearing:
        for name in ("role", "goal", "key-result"):
            parser.add_argument(f"--no-{name}", action="store_true", help=f"clear its {name.replace('-', ' ')}")


def _work(parser: argparse.ArgumentParser, *, new: bool) -> None:
    parser.add_argument("--details", default="" if new else None, help="what to do, in full")
    parser.add_argument(
        "--priority", choices=["P0", "P1", "P2", "P3"], default="P2" if new else None, help="P0 urgent to P3 someday"
    )


def register(add: Add) -> None:
    task = add("task", cmd_task_list, "Tasks in the inbox: list, show, add, update.")
    commands = task.add_subparsers(
        dest="task_command", required=True, metavar="ACTION", help="list, show, add or update"
    )
    listing = add_nested(commands, "list", cmd_task_list, "List tasks by status, in claim order.")
    listing.add_argument("--status", choices=_STATUSES, default="unfinished", help="which (default unfinished)")
    listing.add_argument("--agency", help="only this agency's tasks")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50, at most 100)")
    show = add_nested(commands, "show", cmd_task_show, "One task in full.")
    show.add_argument("task", help="task id, e.g. T42")
    adding = add_nested(commands, "add", cmd_task_add, "Add a task to the inbox.")
    adding.add_argument("title", help="what to do, in a line")
    _work(adding, new=True)
    _links(adding, clearing=False)
    adding.add_argument("--due-on", help="local due date, YYYY-MM-DD")
    adding.add_argument("--depends-on", nargs="+", metavar="TASK", help="tasks that must be done first")
    update = add_nested(
        commands, "update", cmd_task_update, "Change a task: status, priority, dates, links, dependencies."
    )
    update.add_argument("task", help="task id, e.g. T42")
    update.add_argument("--status", choices=list(inbox.SETTABLE), help="reopen, block, wait or cancel it")
    update.add_argument("--title", help="a new title")
    _work(update, new=False)
    update.add_argument("--due-on", help="local due date, YYYY-MM-DD")
    update.add_argument("--note", help="a note the agency reads")
    _links(update, clearing=True)
    update.add_argument(
        "--depends-on", nargs="*", metavar="TASK", help="replace its dependencies (none given: it depends on nothing)"
    )

    routine = add("routine", cmd_routine_list, "Routines (recurring tasks): list, add, edit, pause, resume.")
    routine_commands = routine.add_subparsers(
        dest="routine_command", required=True, metavar="ACTION", help="list, add, edit, pause or resume"
    )
    routine_list = add_nested(routine_commands, "list", cmd_routine_list, "List routines, active and paused.")
    routine_list.add_argument("--agency", help="only this agency's routines")
    routine_add = add_nested(routine_commands, "add", cmd_routine_add, "Add a routine: one task each scheduled day.")
    routine_add.add_argument("title", help="what to do each time, in a line")
    routine_add.add_argument("--schedule", required=True, help=routines.SCHEDULE_FORMS)
    _work(routine_add, new=True)
    _links(routine_add, clearing=False)
    edit = add_nested(routine_commands, "edit", cmd_routine_edit, "Change a routine; tasks it made stay as they are.")
    edit.add_argument("routine", help="routine id, e.g. RT2")
    edit.add_argument("--title", help="a new title")
    edit.add_argument("--schedule", help=routines.SCHEDULE_FORMS)
    _work(edit, new=False)
    _links(edit, clearing=True)
    for name, active in (("pause", False), ("resume", True)):
        sub = add_nested(
            routine_commands, name, _set_active(active), f"{name.capitalize()} a routine (it makes no tasks paused)."
        )
        sub.add_argument("routine", help="routine id, e.g. RT2")
