"""Decisions on the command line, the verified channel: list them, approve, deny."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from chief_of_staff.cli.support import Add, workspace_command
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import money
from chief_of_staff.domain import decisions
from chief_of_staff.domain.authority import ledger


@workspace_command
async def cmd_decisions(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        await ledger.expire_decisions(tx)
        pending = await decisions.list_decisions(tx, status=args.status, limit=100)
    if not pending:
        print(f"No {args.status} decisions.")
    for item in pending:
        amount = f" {money(item.amount_cents)}" if item.amount_cents else ""
        print(f"{item.id:6} {item.kind:10} {item.status:9}{amount}  {item.title}  (expires {item.expires_at})")
    return 0


def _decide(approve: bool) -> Callable[[argparse.Namespace], int]:
    @workspace_command
    async def command(args: argparse.Namespace, store: Store) -> int:
        async with store.write() as tx:
            view = await decisions.decide(tx, OPERATOR_CLI, args.decision, approve=approve, note=args.note)
        print(f"{view.id} {view.status}: {view.title}")
        return 0

    return command


def register(add: Add) -> None:
    pending = add("decisions", cmd_decisions, "List decisions waiting for you.")
    pending.add_argument(
        "--status",
        default="pending",
        help="which decisions (default pending)",
        choices=["pending", "approved", "denied", "expired", "redeemed", "all"],
    )
    for name, approve in (("approve", True), ("deny", False)):
        sub = add(name, _decide(approve), f"{name.capitalize()} a decision (verified operator channel).")
        sub.add_argument("decision", help="decision id, e.g. D7")
        sub.add_argument("--note", default="", help="why, for the record")
