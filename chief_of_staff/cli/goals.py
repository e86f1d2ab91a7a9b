"""Goals on the command line, the verified channel: list, show, create and adjust them.

A key result is given as KEY=VALUE words after --kr, the fields of create_goal's and adjust_goal's key
results: `--kr metric="emails sent" baseline=0 target=400 direction=up due_date=2027-03-31`.
"""

from __future__ import annotations

import argparse
from typing import Any

from chief_of_staff.cli.support import Add, add_nested, workspace_command
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import goals

# Fields a terminal gives as text that the models take as numbers.
_NUMBERS = ("baseline", "target")
KR_HELP = (
    "a key result as KEY=VALUE words: metric, baseline, target, direction (up or down), due_date (YYYY-MM-DD), "
    "and optionally unit, start_date, kind (cumulative or level); repeat --kr for each"
)


def key_result_fields(words: list[str], option: str = "--kr") -> dict[str, Any]:
    """`metric=meetings target=12` as {"metric": "meetings", "target": 12.0}; InvalidInput names a bad word."""
    fields: dict[str, Any] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise InvalidInput(f"{option}: {word!r} is not KEY=VALUE; e.g. {option} metric=meetings target=12.")
        if name in _NUMBERS:
            try:
                fields[name] = float(value)
            except ValueError:
                raise InvalidInput(f"{option}: {name}={value!r} is not a number; send e.g. {name}=12.") from None
        else:
            fields[name] = value
    return fields


def goal_lines(view: goals.GoalView) -> list[str]:
    """A goal as a terminal shows it: the goal, then each key result with progress and pace."""
    lines = [f"{view.id} {view.title} ({view.agency}, {view.status})"]
    for kr in view.key_results:
        unit = f" {kr.unit}" if kr.unit else ""
        lines.append(
            f"  {kr.id} {kr.metric}: {kr.current:g}{unit} of {kr.target:g} by {kr.due_date} "
            f"({kr.kind}, {kr.direction}; {kr.pace})"
        )
    return lines


@workspace_command
async def cmd_goal_list(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        found = await goals.list_goals(tx, agency=args.agency, include_closed=args.all)
    if not found:
        print("No goals." + ("" if args.all else " (--all shows achieved and dropped ones too)"))
    for view in found:
        print("\n".join(goal_lines(view)))
    return 0


@workspace_command
async def cmd_goal_show(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        view = await goals.get_goal(tx, args.goal)
    print("\n".join(goal_lines(view)))
    if view.description:
        print(f"  {view.description}")
    return 0


@workspace_command
async def cmd_goal_create(args: argparse.Namespace, store: Store) -> int:
    specs = [
        goals.coerce_input(goals.KeyResultSpec, key_result_fields(words), f"--kr #{n}")
        for n, words in enumerate(args.kr or [], 1)
    ]
    async with store.write() as tx:
        view = await goals.create_goal(
            tx, OPERATOR_CLI, agency=args.agency, title=args.title, description=args.description, key_results=specs
        )
    print("\n".join(goal_lines(view)))
    return 0


@workspace_command
async def cmd_goal_adjust(args: argparse.Namespace, store: Store) -> int:
    changes = (
        [
            goals.coerce_input(goals.KeyResultChange, key_result_fields(words), f"--kr #{n}")
            for n, words in enumerate(args.kr, 1)
        ]
        if args.kr
        else None
    )
    async with store.write() as tx:
        view = await goals.adjust_goal(
            tx,
            OPERATOR_CLI,
            args.goal,
            title=args.title,
            description=args.description,
            status=args.status,
            key_results=changes,
        )
    print("\n".join(goal_lines(view)))
    return 0


def register(add: Add) -> None:
    goal = add("goal", cmd_goal_list, "Goals and their key results: list, show, create, adjust.")
    commands = goal.add_subparsers(
        dest="goal_command", required=True, metavar="ACTION", help="list, show, create or adjust"
    )
    listing = add_nested(commands, "list", cmd_goal_list, "List goals with each key result's progress and pace.")
    listing.add_argument("--agency", help="only this agency's goals, by name or id")
    listing.add_argument("--all", action="store_true", help="include achieved and dropped goals")
    show = add_nested(commands, "show", cmd_goal_show, "One goal with its key results.")
    show.add_argument("goal", help="goal id, e.g. G1")
    create = add_nested(commands, "create", cmd_goal_create, "Set a goal for an agency, with 1 to 10 key results.")
    create.add_argument("--agency", required=True, help="the agency it is for, by name or id")
    create.add_argument("--title", required=True, help="the objective in a line")
    create.add_argument("--description", default="", help="why it matters, for the record")
    create.add_argument("--kr", nargs="+", action="append", metavar="KEY=VALUE", required=True, help=KR_HELP)
    adjust = add_nested(
        commands, "adjust", cmd_goal_adjust, "Retitle, close or reopen a goal; change or add key results."
    )
    adjust.add_argument("goal", help="goal id, e.g. G1")
    adjust.add_argument("--title", help="a new title")
    adjust.add_argument("--description", help="a new description")
    adjust.add_argument("--status", choices=["active", "achieved", "dropped"], help="close or reopen it")
    adjust.add_argument(
        "--kr",
        nargs="+",
        action="append",
        metavar="KEY=VALUE",
        help="key_result=KR3 (or its metric) with the fields to change (target, due_date, unit), or a new key "
        "result's fields; repeat --kr for each",
    )
