"""The command line: a thin shell over the library.

`serve` is what Claude Desktop runs; its stdout belongs to the protocol, so every
command logs to stderr. The other commands are the operator's verified channel:
they run on the operator's own machine, outside the model's reach.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from chief_of_staff import __version__, audit, blueprints, brief, decisions, workspace
from chief_of_staff.audit import OPERATOR_CLI
from chief_of_staff.config import Settings
from chief_of_staff.db import Store
from chief_of_staff.errors import ChiefOfStaffError

__all__ = ["build_parser", "main"]

log = logging.getLogger("chief_of_staff")


async def _with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[int]]) -> int:
    settings = Settings.load(args.db)
    store = await Store.open(settings.db_path, settings.clock)
    try:
        return await work(store)
    finally:
        await store.close()


def cmd_serve(args: argparse.Namespace) -> int:
    from chief_of_staff.server import build_server

    settings = Settings.load(args.db)
    log.info("serving %s over stdio", settings.db_path)
    build_server(settings).run("stdio")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from chief_of_staff.demo import run_demo

    return anyio.run(run_demo, args.keep)


def cmd_init(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        async with store.write() as tx:
            ws = await workspace.ensure(tx, OPERATOR_CLI, name=args.name, timezone=args.timezone,
                                        currency=args.currency)
            print(f"Workspace {ws.name!r} at {store.path} ({ws.timezone}, {ws.currency}).")
            if args.blueprint:
                plan = await blueprints.apply_blueprint(tx, OPERATOR_CLI, args.blueprint,
                                                        agency_name=args.agency_name)
                print(f"Applied blueprint {plan.blueprint!r}: agency {plan.agency}.")
                for line in plan.creates:
                    print(f"  + {line}")
        return 0

    return anyio.run(_with_store, args, work)


def cmd_brief(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        async with store.write() as tx:
            await brief.housekeeping(tx, audit.SYSTEM)
            view = await brief.build_brief(tx, args.viewer, mark_seen=not args.peek)
        print(brief.render_brief(view), end="")
        return 0

    return anyio.run(_with_store, args, work)


def cmd_blueprints(args: argparse.Namespace) -> int:
    for summary in blueprints.list_blueprints():
        print(f"{summary.name:14} {summary.title}: {summary.summary}")
    return 0


def cmd_decisions(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        async with store.write() as tx:
            await decisions.expire_due(tx)
            pending = await decisions.list_decisions(tx, status=args.status, limit=100)
        if not pending:
            print(f"No {args.status} decisions.")
        for item in pending:
            amount = f" {item.amount_cents / 100:,.2f}" if item.amount_cents else ""
            print(f"{item.id:6} {item.kind:10} {item.status:9}{amount}  {item.title}  (expires {item.expires_at})")
        return 0

    return anyio.run(_with_store, args, work)


def _decide(approve: bool) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        async def work(store: Store) -> int:
            async with store.write() as tx:
                view = await decisions.decide(tx, OPERATOR_CLI, args.decision, approve=approve, note=args.note)
            print(f"{view.id} {view.status}: {view.title}")
            return 0

        return anyio.run(_with_store, args, work)

    return command


def cmd_audit_verify(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        async with store.read() as tx:
            report = await audit.verify_chain(tx)
        if report.ok:
            print(f"Audit chain verifies: {report.rows} rows, head {report.head_hash[:16]}…")
            return 0
        print(f"Audit chain BROKEN at row {report.first_bad_id}: {report.problem}", file=sys.stderr)
        return 1

    return anyio.run(_with_store, args, work)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="workspace database file (default: $CHIEF_OF_STAFF_DB or the per-user data path)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chief-of-staff",
        description="The operating system of your AI agency, served to your AI client over MCP.",
    )
    parser.add_argument("--version", action="version", version=f"chief-of-staff {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        _add_db(sub)
        return sub

    add("serve", cmd_serve, "Serve the workspace over stdio (what Claude Desktop runs).")
    demo = add("demo", cmd_demo, "Run a throwaway Outbound agency end to end over stdio and print the brief.")
    demo.add_argument("--keep", action="store_true", help="keep the demo workspace and print where it is")
    init = add("init", cmd_init, "Create the workspace, optionally standing up an agency from a blueprint.")
    init.add_argument("--blueprint", help="blueprint name, e.g. outbound (see `chief-of-staff blueprints`)")
    init.add_argument("--agency-name", help="name the blueprint's agency differently")
    init.add_argument("--name", default="My workspace", help="workspace name")
    init.add_argument("--timezone", help="IANA time zone, e.g. Europe/Berlin (default: this machine's)")
    init.add_argument("--currency", default="USD", help="currency code (default USD)")
    view = add("brief", cmd_brief, "Print the operator's brief: changes, decisions, goals, inbox, authority.")
    view.add_argument("--viewer", default="operator", help="whose brief (default operator)")
    view.add_argument("--peek", action="store_true", help="do not move the 'since you last looked' mark")
    add("blueprints", cmd_blueprints, "List the starter blueprints.")
    pending = add("decisions", cmd_decisions, "List decisions waiting for you.")
    pending.add_argument("--status", default="pending",
                         choices=["pending", "approved", "denied", "expired", "redeemed", "all"])
    for name, approve in (("approve", True), ("deny", False)):
        sub = add(name, _decide(approve), f"{name.capitalize()} a decision (verified operator channel).")
        sub.add_argument("decision", help="decision id, e.g. D7")
        sub.add_argument("--note", default="", help="why, for the record")
    audit_cmd = add("audit", cmd_audit_verify, "Check the audit log's hash chain from the first row.")
    audit_cmd.add_argument("action", choices=["verify"], help="verify: recompute the chain and name the first bad row")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        result: Any = args.handler(args)
    except ChiefOfStaffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
