"""The workspace on the command line: set it up, read the brief, check its health and its audit log, and
repair a workspace that refuses writes."""

from __future__ import annotations

import argparse
import sys

from chief_of_staff.cli.support import Add, workspace_command
from chief_of_staff.core import anchor, audit
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.domain import brief, doctor, workspace
from chief_of_staff.domain.blueprints import loader


@workspace_command
async def cmd_init(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        ws = await workspace.ensure(tx, OPERATOR_CLI, name=args.name, timezone=args.timezone, currency=args.currency)
        print(f"Workspace {ws.name!r} at {store.path} ({ws.timezone}, {ws.currency}).")
        if args.blueprint:
            plan = await loader.apply_blueprint(tx, OPERATOR_CLI, args.blueprint, agency_name=args.agency_name)
            print(f"Applied blueprint {plan.blueprint!r}: agency {plan.agency}.")
            for line in plan.creates:
                print(f"  + {line}")
    return 0


@workspace_command
async def cmd_brief(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        await brief.housekeeping(tx, audit.SYSTEM)
        view = await brief.build_brief(tx, args.viewer, mark_seen=not args.peek)
    print(brief.render_brief(view), end="")
    return 0


def cmd_blueprints(args: argparse.Namespace) -> int:
    for summary in loader.list_blueprints():
        print(f"{summary.name:14} {summary.title}: {summary.summary}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    path = Settings.load(args.db).db_path
    if not path.exists():  # report without creating a workspace as a side effect
        print(doctor.render(doctor.DoctorReport(doctor.versions(), path)), end="")
        return 0

    return _examine(args)


@workspace_command
async def _examine(args: argparse.Namespace, store: Store) -> int:
    print(doctor.render(await doctor.examine(store)), end="")
    return 0  # warnings are advice, not failure


@workspace_command
async def cmd_audit_verify(args: argparse.Namespace, store: Store) -> int:
    if args.action == "repair":
        return await _repair(store)
    config = store.anchor
    exporting = args.action == "anchor" or args.update_anchor
    if exporting:
        result = await anchor.export(store, config)
    else:
        async with store.read() as tx:
            result = await anchor.check(tx, config)
    chain = result.chain
    if result.ok:
        print(f"Audit chain verifies: {chain.rows} rows, head {chain.head_hash[:16]}…")
        print(f"Anchor: {result.note}")
        return 0
    if not chain.ok:
        print(f"Audit chain BROKEN at row {chain.first_bad_id}: {chain.problem}", file=sys.stderr)
    if result.problem is not None:
        print(f"Audit anchor FAILS: {result.problem} (anchor file: {config.path})", file=sys.stderr)
    if exporting:
        print(
            f"No anchor written; to accept the log as it is now, run `{doctor.REPAIR_HINT}`.",
            file=sys.stderr,
        )
    return 1


async def _repair(store: Store) -> int:
    done = await doctor.repair(store, OPERATOR_CLI)
    if done.found:
        print("Found: " + "; ".join(done.found) + ".")
    else:
        print("Found nothing wrong.")
    if done.restored:
        print(f"Recreated the append-only triggers {', '.join(done.restored)}.")
    print(
        f"Anchored the log on row {done.anchored_row} (this repair, recorded as audit.repair) in {store.anchor.path}. "
        "Changes are accepted again."
    )
    return 0


def register(add: Add) -> None:
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
    add("doctor", cmd_doctor, "Print versions and workspace health; warn about risky setups (always exits 0).")
    audit_cmd = add("audit", cmd_audit_verify, "Check the audit log's hash chain and its exported anchor.")
    audit_cmd.add_argument(
        "action",
        choices=["verify", "anchor", "repair"],
        help="verify: recompute the chain, name the first bad row, compare the head with the "
        "anchor; anchor: verify, then export the head to the anchor file; repair: after a refusal, "
        "recreate missing append-only triggers, anchor the log on its head, record what was found",
    )
    audit_cmd.add_argument(
        "--update-anchor", action="store_true", help="with verify: export a fresh anchor when everything verifies"
    )
