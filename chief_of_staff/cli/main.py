"""The command line: a thin shell over the library.

`serve` is what Claude Desktop runs; its stdout belongs to the protocol, so every
command logs to stderr. The other commands are the operator's verified channel:
they run on the operator's own machine, outside the model's reach.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

import anyio
from pydantic import ValidationError

from chief_of_staff import __version__
from chief_of_staff.cli import access, install, notify, review
from chief_of_staff.cli.support import Add, with_store
from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import ChiefOfStaffError, InvalidInput
from chief_of_staff.domain import brief, decisions, doctor, workspace
from chief_of_staff.domain.authority import grants, terms
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.blueprints import loader

log = logging.getLogger("chief_of_staff")


def cmd_serve(args: argparse.Namespace) -> int:
    from chief_of_staff.mcp.server import build_server

    if args.http:
        from chief_of_staff.cli.access import cmd_serve_http

        return cmd_serve_http(args)
    if args.workspace:
        raise InvalidInput("--workspace serves several workspaces over HTTP; add --http, or use --db for stdio.")
    settings = Settings.load(args.db)
    log.info("serving %s over stdio", settings.db_path)
    build_server(settings).run("stdio")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from chief_of_staff.cli.demo import run_demo

    return anyio.run(run_demo, args.keep)


def cmd_init(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        async with store.write() as tx:
            ws = await workspace.ensure(tx, OPERATOR_CLI, name=args.name, timezone=args.timezone,
                                        currency=args.currency)
            print(f"Workspace {ws.name!r} at {store.path} ({ws.timezone}, {ws.currency}).")
            if args.blueprint:
                plan = await loader.apply_blueprint(tx, OPERATOR_CLI, args.blueprint,
                                                        agency_name=args.agency_name)
                print(f"Applied blueprint {plan.blueprint!r}: agency {plan.agency}.")
                for line in plan.creates:
                    print(f"  + {line}")
        return 0

    return anyio.run(with_store, args, work)


def cmd_brief(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        async with store.write() as tx:
            await brief.housekeeping(tx, audit.SYSTEM)
            view = await brief.build_brief(tx, args.viewer, mark_seen=not args.peek)
        print(brief.render_brief(view), end="")
        return 0

    return anyio.run(with_store, args, work)


def cmd_blueprints(args: argparse.Namespace) -> int:
    for summary in loader.list_blueprints():
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

    return anyio.run(with_store, args, work)


def _decide(approve: bool) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        async def work(store: Store) -> int:
            async with store.write() as tx:
                view = await decisions.decide(tx, OPERATOR_CLI, args.decision, approve=approve, note=args.note)
            print(f"{view.id} {view.status}: {view.title}")
            return 0

        return anyio.run(with_store, args, work)

    return command


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from chief_of_staff.core import anchor

    config = anchor.locate(Settings.load(args.db))
    exporting = args.action == "anchor" or args.update_anchor

    async def work(store: Store) -> int:
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
            print(f"Audit anchor FAILS: {result.problem}", file=sys.stderr)
        if exporting:
            print(f"No anchor written; to accept the log as it is now, move {config.path} aside.", file=sys.stderr)
        return 1

    return anyio.run(with_store, args, work)


_PERIODS = {"day": "calendar day", "week": "ISO week (Monday to Sunday)", "month": "calendar month"}
_GRANT_OPTIONS = {"per_action_cap_cents": "--cap-cents", "scope_allow": "--allow", "scope_deny": "--deny",
                  "expires_on": "--expires-on"}


def _grant_spec(args: argparse.Namespace) -> GrantSpec:
    """The options as a GrantSpec (its validation is the one source of truth); errors name the option."""
    budgets = [{"period": p, "max_count": getattr(args, f"{p}_count"), "max_cents": getattr(args, f"{p}_cents")}
               for p in _PERIODS if getattr(args, f"{p}_count") is not None or getattr(args, f"{p}_cents") is not None]
    fields = {"agency": args.agency, "role": args.role, "capability": args.capability, "mode": args.mode,
              "per_action_cap_cents": args.cap_cents, "budgets": budgets, "scope_allow": args.allow,
              "scope_deny": args.deny, "expires_on": args.expires_on, "goal": args.goal, "rationale": args.rationale,
              "on_timeout": args.on_timeout}
    try:
        return GrantSpec.model_validate(fields)
    except ValidationError as exc:
        problems = [f"{_option(e['loc'], budgets)}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise InvalidInput("grant: nothing was changed.\n- " + "\n- ".join(problems)) from None


def _option(loc: tuple[int | str, ...], budgets: list[dict[str, Any]]) -> str:
    """The command-line option behind a GrantSpec field, e.g. budgets.0.max_cents -> --day-cents."""
    if not loc:
        return "grant"
    if loc[0] == "budgets" and len(loc) > 2 and isinstance(loc[1], int):
        return f"--{budgets[loc[1]]['period']}-{'count' if loc[2] == 'max_count' else 'cents'}"
    return _GRANT_OPTIONS.get(str(loc[0]), f"--{loc[0]}")


def _who(view: grants.GrantView) -> str:
    return view.agency + (f"/{view.role}" if view.role else "")


def cmd_grant(args: argparse.Namespace) -> int:
    spec = _grant_spec(args)

    async def work(store: Store) -> int:
        async with store.write() as tx:
            view = await grants.create_grant(tx, OPERATOR_CLI, spec)
        print(f"{view.id} granted: {_who(view)} may {view.capability} ({view.mode}). "
              "`chief-of-staff grants` prints every grant.")
        return 0

    return anyio.run(with_store, args, work)


def cmd_revoke(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        async with store.write() as tx:
            view = await grants.revoke_grant(tx, OPERATOR_CLI, args.grant, reason=args.reason)
        print(f"{view.id} revoked: {_who(view)} may no longer {view.capability} under it.")
        return 0

    return anyio.run(with_store, args, work)


def cmd_grant_update(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        async with store.write() as tx:
            changes = await _grant_changes(tx, args)
            if args.restore is None:
                view = await grants.update_grant(tx, OPERATOR_CLI, args.grant, **changes)
            elif changes:
                raise InvalidInput("--restore: use it alone; it puts back every bound of that version.")
            else:
                view = await grants.restore_version(tx, OPERATOR_CLI, args.grant, args.restore)
        print(f"{view.id} is now version {view.version}: {_who(view)} may {view.capability} ({view.mode}). "
              "`chief-of-staff grants` prints every grant.")
        return 0

    return anyio.run(with_store, args, work)


async def _grant_changes(tx: Tx, args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as update_grant's keywords; budget options change the grant's current budgets."""
    changes = {key: getattr(args, key) for key in ("mode", "on_timeout", "rationale") if getattr(args, key) is not None}
    changes |= {key: getattr(args, option) for key, option in (("scope_allow", "allow"), ("scope_deny", "deny"))
                if getattr(args, option) is not None}
    if args.cap_cents is not None:
        changes["per_action_cap_cents"] = _number_or_none("--cap-cents", args.cap_cents)
    if args.expires_on is not None:
        changes["expires_on"] = None if args.expires_on.strip().lower() == "none" else args.expires_on
    if any(getattr(args, f"{p}_{kind}") is not None for p in _PERIODS for kind in ("count", "cents")):
        changes["budgets"] = await _budgets_after(tx, args)
    return changes


async def _budgets_after(tx: Tx, args: argparse.Namespace) -> list[terms.BudgetSpec]:
    rows = await grants.budget_rows(tx, ids.parse_id("grant", args.grant, field="grant"))
    budgets = {r["period"]: {"max_count": r["max_count"], "max_cents": r["max_cents"]} for r in rows}
    for period in _PERIODS:
        for kind in ("count", "cents"):
            if (text := getattr(args, f"{period}_{kind}")) is not None:
                budgets.setdefault(period, {})[f"max_{kind}"] = _number_or_none(f"--{period}-{kind}", text)
    try:
        return [terms.BudgetSpec(period=period, **limits) for period, limits in budgets.items()
                if any(value is not None for value in limits.values())]
    except ValidationError as exc:
        raise InvalidInput(f"budgets: nothing was changed; {exc.errors()[0]['msg']}.") from None


def _number_or_none(option: str, text: str) -> int | None:
    """A whole non-negative number, or None for "none" (no limit)."""
    if text.strip().lower() == "none":
        return None
    if not text.strip().isdigit():
        raise InvalidInput(f"{option}: send a whole non-negative number, or none to remove the limit; not {text!r}.")
    return int(text)


def cmd_grants(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        async with store.read() as tx:
            print(await grants.authority_letter(tx), end="")
        return 0

    return anyio.run(with_store, args, work)


def cmd_doctor(args: argparse.Namespace) -> int:
    path = Settings.load(args.db).db_path
    if not path.exists():  # report without creating a workspace as a side effect
        print(doctor.render(doctor.DoctorReport(doctor.versions(), path)), end="")
        return 0

    async def work(store: Store) -> int:
        print(doctor.render(await doctor.examine(store)), end="")
        return 0  # warnings are advice, not failure

    return anyio.run(with_store, args, work)


def _add_grant_commands(add: Add) -> None:
    grant = add("grant", cmd_grant, "Give an agency (or one role) authority over one capability (verified channel).")
    grant.add_argument("--agency", required=True, help="agency name or id, e.g. Outbound or A1")
    grant.add_argument("--role", help="only this role, e.g. SDR (default: every role of the agency)")
    grant.add_argument("--capability", required=True, help="dotted action kind, e.g. spend.ads; spend.* covers all")
    grant.add_argument("--mode", choices=["auto", "notify", "approve"], default="auto",
                       help="auto: acts alone; notify: acts and tells you; approve: asks you each time (default auto)")
    grant.add_argument("--cap-cents", type=int,
                       help="most one action may cost, in cents (1250 = 12.50); with no money limit only 0 is allowed")
    for period, words in _PERIODS.items():
        grant.add_argument(f"--{period}-count", type=int, help=f"at most this many actions per {words}")
        grant.add_argument(f"--{period}-cents", type=int, help=f"at most this many cents per {words}")
    grant.add_argument("--allow", nargs="+", action="extend", default=[], metavar="PATTERN",
                       help="only targets matching these patterns, e.g. acme.com '*@acme.com'")
    grant.add_argument("--deny", nargs="+", action="extend", default=[], metavar="PATTERN",
                       help="never targets matching these patterns (deny wins over allow)")
    grant.add_argument("--expires-on", metavar="YYYY-MM-DD",
                       help="last day the grant holds, in the workspace timezone (default: no end)")
    grant.add_argument("--goal", help="the goal it serves, e.g. G1")
    grant.add_argument("--rationale", default="", help="why, for the record and the authority letter")
    grant.add_argument("--on-timeout", default="deny", choices=["deny", "approve"],
                       help="what a decision under this grant you leave unanswered becomes when it expires")
    revoke = add("revoke", cmd_revoke, "Withdraw a grant at once (verified channel).")
    revoke.add_argument("grant", help="grant id, e.g. GR3")
    revoke.add_argument("--reason", default="", help="why, for the record")
    _add_grant_update(add)
    add("grants", cmd_grants, "Print the authority letter: every active grant in plain words.")


def _add_grant_update(add: Add) -> None:
    update = add("grant-update", cmd_grant_update,
                 "Change a grant's bounds, or put back an earlier version (verified channel: may widen).")
    update.add_argument("grant", help="grant id, e.g. GR3")
    update.add_argument("--mode", choices=["auto", "notify", "approve"], help="auto, notify or approve")
    update.add_argument("--cap-cents", metavar="N|none", help="most one action may cost, in cents; none removes it")
    for period, words in _PERIODS.items():
        update.add_argument(f"--{period}-count", metavar="N|none", help=f"actions per {words}; none removes it")
        update.add_argument(f"--{period}-cents", metavar="N|none", help=f"cents per {words}; none removes it")
    update.add_argument("--allow", nargs="*", metavar="PATTERN",
                        help="replace the allow list (give no pattern to allow any target)")
    update.add_argument("--deny", nargs="*", metavar="PATTERN", help="replace the deny list")
    update.add_argument("--expires-on", metavar="YYYY-MM-DD|none", help="last day the grant holds; none: no end")
    update.add_argument("--on-timeout", choices=["deny", "approve"],
                        help="what a decision under this grant you leave unanswered becomes when it expires")
    update.add_argument("--rationale", help="why, for the record and the authority letter")
    update.add_argument("--restore", type=int, metavar="VERSION",
                        help="instead of the options above: put every bound back as it was at this version")


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

    serve = add("serve", cmd_serve, "Serve the workspace over stdio (what Claude Desktop runs), or --http.")
    access.add_http_options(serve)
    access.register(add)
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
    pending.add_argument("--status", default="pending", help="which decisions (default pending)",
                         choices=["pending", "approved", "denied", "expired", "redeemed", "all"])
    for name, approve in (("approve", True), ("deny", False)):
        sub = add(name, _decide(approve), f"{name.capitalize()} a decision (verified operator channel).")
        sub.add_argument("decision", help="decision id, e.g. D7")
        sub.add_argument("--note", default="", help="why, for the record")
    _add_grant_commands(add)
    review.register(add)
    install.register(add)
    notify.register(add)
    add("doctor", cmd_doctor, "Print versions and workspace health; warn about risky setups (always exits 0).")
    audit_cmd = add("audit", cmd_audit_verify, "Check the audit log's hash chain and its exported anchor.")
    audit_cmd.add_argument("action", choices=["verify", "anchor"],
                           help="verify: recompute the chain, name the first bad row, compare the head with the "
                                "anchor; anchor: verify, then export the head to the anchor file")
    audit_cmd.add_argument("--update-anchor", action="store_true",
                           help="with verify: export a fresh anchor when everything verifies")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    # httpx logs each request's full URL at INFO; a Slack webhook's path is its secret.
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
