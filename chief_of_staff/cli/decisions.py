"""Decisions on the command line, the verified channel: list them, approve, deny."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from chief_of_staff.cli.support import Add, workspace_command
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.db import Store
from chief_of_staff.domain import deciding, decisions
from chief_of_staff.domain.authority import ledger


@workspace_command
async def cmd_decisions(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        await ledger.expire_decisions(tx)
        pending = await decisions.list_decisions(tx, status=args.status, limit=100)
        effects = {view.id: await deciding.describe_change(tx, view) for view in pending if view.status == "pending"}
    if not pending:
        print(f"No {args.status} decisions.")
    for item in pending:
        _print(item, effects.get(item.id))
        print()
    return 0


def _print(view: decisions.DecisionView, effect: str | None = None) -> None:
    """A decision as the operator reads it in a terminal: the ask, the request it is bound to, what next.

    A proposal's ready change is shown as what it would do, read from the store (not only as arguments).
    """
    head, *rest = decisions.describe(view)
    print(f"{head}  (expires {view.expires_at})" if view.status == "pending" else head)
    if effect:
        print(f"    Approving applies: {effect}")
    for line in rest:
        print(f"    {line}")


def _decide(approve: bool) -> Callable[[argparse.Namespace], int]:
    @workspace_command
    async def command(args: argparse.Namespace, store: Store) -> int:
        async with store.write() as tx:
            view = await deciding.decide(
                tx, OPERATOR_CLI, args.decision, approve=approve, note=args.note, task_on_deny=args.task_on_deny
            )
        _print(view)
        return 0

    return command


def register(add: Add) -> None:
    pending = add("decisions", cmd_decisions, "List decisions waiting for you, each with the request it is bound to.")
    pending.add_argument(
        "--status",
        default="pending",
        help="which decisions (default pending)",
        choices=["pending", "approved", "denied", "expired", "redeemed", "all"],
    )
    for name, approve in (("approve", True), ("deny", False)):
        sub = add(name, _decide(approve), f"{name.capitalize()} a decision (verified operator channel).")
        sub.add_argument("decision", help="decision id, e.g. D7")
        sub.add_argument("--note", default="", help="why, for the record (the agency reads it)")
        sub.add_argument(
            "--task-on-deny",
            default="reopen",
            choices=["reopen", "fail"],
            help="denying: reopen the task that waits on it (default) or fail it",
        )
