"""The workspace on the command line: set it up, show and change its settings, read the brief, check its
health and its audit log, and repair a workspace that refuses writes."""

from __future__ import annotations

import argparse
import sys

from chief_of_staff.cli.support import Add, add_nested, workspace_command
from chief_of_staff.core import anchor, audit
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import money
from chief_of_staff.domain import brief, doctor, workspace
from chief_of_staff.domain.blueprints import loader


@workspace_command
async def cmd_init(args: argparse.Namespace, store: Store) -> int:
    given = {"name": args.name, "timezone": args.timezone, "currency": args.currency}
    async with store.write() as tx:
        before = await workspace.find(tx)
        ws = await workspace.ensure(tx, OPERATOR_CLI, **{k: v for k, v in given.items() if v is not None})
        print(f"Workspace {ws.name!r} at {store.path} ({ws.timezone}, {ws.currency}).")
        ignored = [] if before is None else workspace.ignored(before, **given)
        if ignored:
            print(
                f"It already existed, so init ignored {', '.join(ignored)}. "
                f"Change settings with `{workspace.SET_HINT}`."
            )
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


def _settings_lines(ws: workspace.Workspace, path: object) -> list[str]:
    return [
        f"{'name':15} {ws.name}",
        f"{'time zone':15} {ws.timezone}",
        f"{'currency':15} {ws.currency}",
        f"{'chat allowance':15} {money(ws.chat_allowance_cents, ws.currency)} per {ws.chat_window_days} days "
        "(the money exposure chat approvals may add in any such window)",
        f"{'daily brief at':15} {ws.daily_brief_at}",
        f"{'file':15} {path}",
    ]


@workspace_command
async def cmd_workspace_show(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        ws = await workspace.get(tx)
    print("\n".join(_settings_lines(ws, store.path)))
    return 0


@workspace_command
async def cmd_workspace_set(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        change = await workspace.update_settings(
            tx,
            OPERATOR_CLI,
            name=args.name,
            timezone=args.timezone,
            currency=args.currency,
            chat_allowance_cents=args.chat_allowance_cents,
            chat_window_days=args.chat_window_days,
        )
    if not change.changed:
        print("Nothing changed.")
    for key, (old, new) in change.changed.items():
        print(f"{key.replace('_', ' ')}: {old} -> {new}")
    for note in change.notes:
        print(note)
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
    init.add_argument("--name", help="workspace name (default 'My workspace'); ignored if it exists")
    init.add_argument("--timezone", help="IANA time zone, e.g. Europe/Berlin (default: this machine's)")
    init.add_argument("--currency", help="currency code (default USD)")
    _register_settings(add)
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


def _register_settings(add: Add) -> None:
    space = add("workspace", cmd_workspace_show, "Show or change the workspace's settings: show, set.")
    commands = space.add_subparsers(dest="workspace_command", required=True, metavar="ACTION", help="show or set")
    add_nested(commands, "show", cmd_workspace_show, "Show the name, time zone, currency and chat allowance.")
    change = add_nested(
        commands,
        "set",
        cmd_workspace_set,
        "Change settings. Anything may be changed here; in chat only a rename or a stricter allowance.",
    )
    change.add_argument("--name", help="workspace name")
    change.add_argument("--timezone", help="IANA time zone; budget periods follow it from now on")
    change.add_argument("--currency", help="three-letter currency code, e.g. EUR")
    change.add_argument(
        "--chat-allowance-cents", type=int, metavar="N", help="money exposure chat approvals may add per window"
    )
    change.add_argument("--chat-window-days", type=int, metavar="N", help="the allowance's rolling window (1-90)")
