"""The outcome log on the command line: search it a page at a time, and show one outcome in full."""

from __future__ import annotations

import argparse

from chief_of_staff.cli.support import Add, add_nested, workspace_command
from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import money
from chief_of_staff.domain import outcomes


def outcome_line(view: outcomes.OutcomeView) -> str:
    """One outcome as a terminal shows it."""
    owner = view.agency + (f"/{view.role}" if view.role else "")
    moved = ", ".join(
        f"{m.key_result} {'=' + format(m.value, 'g') if m.value is not None else format(m.delta, '+g')}"
        for m in view.metrics
    )
    extra = "; ".join(
        part
        for part in (view.task_id or "", moved, f"cost {money(view.cost_cents)}" if view.cost_cents else "")
        if part
    )
    return f"{view.id} {view.created_at[:16]} {view.result:7} {owner}: {view.summary}" + (
        f"  ({extra})" if extra else ""
    )


@workspace_command
async def cmd_outcomes_list(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        page = await outcomes.list_outcomes(
            tx,
            agency=args.agency,
            role=args.role,
            key_result=args.key_result,
            result=args.result,
            since=args.since,
            until=args.until,
            text=args.text,
            before=args.before,
            limit=args.limit,
        )
    if not page.outcomes:
        print("No outcomes match.")
    for view in page.outcomes:
        print(outcome_line(view))
    if page.next is not None:
        print(f"More: add --before {page.next}")
    return 0


@workspace_command
async def cmd_outcomes_show(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        view = await outcomes.get_outcome(tx, args.outcome)
    print(outcome_line(view))
    if view.minutes_saved:
        print(f"  minutes saved: {view.minutes_saved}")
    for link in view.evidence:
        print(f"  evidence: {link}")
    if view.lesson:
        print(f"  lesson: {view.lesson}")
    return 0


def register(add: Add) -> None:
    log = add("outcomes", cmd_outcomes_list, "The outcome log: list (search) and show.")
    commands = log.add_subparsers(dest="outcomes_command", required=True, metavar="ACTION", help="list or show")
    listing = add_nested(commands, "list", cmd_outcomes_list, "Outcomes newest first, filtered, a page at a time.")
    listing.add_argument("--agency", help="only this agency's, by name or id")
    listing.add_argument("--role", help="with --agency: only this role's")
    listing.add_argument("--key-result", help="only those that moved this key result (id or metric name)")
    listing.add_argument("--result", choices=["success", "partial", "failure"], help="only this result")
    listing.add_argument("--since", help="from this local day, YYYY-MM-DD")
    listing.add_argument("--until", help="to this local day (inclusive), YYYY-MM-DD")
    listing.add_argument("--text", help="words in the summary or lesson")
    listing.add_argument("--before", help="the page after this outcome (what the last page's 'More:' says)")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20, at most 100)")
    show = add_nested(commands, "show", cmd_outcomes_show, "One outcome in full.")
    show.add_argument("outcome", help="outcome id, e.g. O12")
