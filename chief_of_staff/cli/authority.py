"""Grants on the command line, the verified channel: grant, revoke, change (widen or narrow), the letter."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from chief_of_staff.cli.support import Add, workspace_command
from chief_of_staff.core import ids
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain.authority import grants, terms
from chief_of_staff.domain.authority.grants import GrantSpec

_PERIODS = {"day": "calendar day", "week": "ISO week (Monday to Sunday)", "month": "calendar month"}

_GRANT_OPTIONS = {
    "per_action_cap_cents": "--cap-cents",
    "scope_allow": "--allow",
    "scope_deny": "--deny",
    "expires_on": "--expires-on",
}


def _grant_spec(args: argparse.Namespace) -> GrantSpec:
    """The options as a GrantSpec (its validation is the one source of truth); errors name the option."""
    budgets = [
        {"period": p, "max_count": getattr(args, f"{p}_count"), "max_cents": getattr(args, f"{p}_cents")}
        for p in _PERIODS
        if getattr(args, f"{p}_count") is not None or getattr(args, f"{p}_cents") is not None
    ]
    fields = {
        "agency": args.agency,
        "role": args.role,
        "capability": args.capability,
        "mode": args.mode,
        "per_action_cap_cents": args.cap_cents,
        "budgets": budgets,
        "scope_allow": args.allow,
        "scope_deny": args.deny,
        "expires_on": args.expires_on,
        "goal": args.goal,
        "rationale": args.rationale,
        "on_timeout": args.on_timeout,
    }
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
    _grant_spec(args)  # bad options are refused before the workspace is opened (or created)
    return _create_grant(args)


@workspace_command
async def _create_grant(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await grants.create_grant(tx, OPERATOR_CLI, _grant_spec(args))
    print(
        f"{view.id} granted: {_who(view)} may {view.capability} ({view.mode}). "
        "`chief-of-staff grants` prints every grant."
    )
    return 0


@workspace_command
async def cmd_revoke(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await grants.revoke_grant(tx, OPERATOR_CLI, args.grant, reason=args.reason, hand_over=args.hand_over)
    if args.hand_over:
        print(f"{view.id} handed over: broader grants, if any, now cover what it covered for {_who(view)}.")
    else:
        print(
            f"{view.id} revoked: {_who(view)} may no longer {view.capability} under it. Requests it covered now "
            f"come to you as decisions; `{grants.hand_over_command(view.id)}` lets broader grants cover them."
        )
    return 0


@workspace_command
async def cmd_grant_update(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        changes = await _grant_changes(tx, args)
        if args.restore is None:
            view = await grants.update_grant(tx, OPERATOR_CLI, args.grant, **changes)
        elif changes:
            raise InvalidInput("--restore: use it alone; it puts back every bound of that version.")
        else:
            view = await grants.restore_version(tx, OPERATOR_CLI, args.grant, args.restore)
    print(
        f"{view.id} is now version {view.version}: {_who(view)} may {view.capability} ({view.mode}). "
        "`chief-of-staff grants` prints every grant."
    )
    return 0


async def _grant_changes(tx: Tx, args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as update_grant's keywords; budget options change the grant's current budgets."""
    changes = {key: getattr(args, key) for key in ("mode", "on_timeout", "rationale") if getattr(args, key) is not None}
    changes |= {
        key: getattr(args, option)
        for key, option in (("scope_allow", "allow"), ("scope_deny", "deny"))
        if getattr(args, option) is not None
    }
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
        return [
            terms.BudgetSpec(period=period, **limits)
            for period, limits in budgets.items()
            if any(value is not None for value in limits.values())
        ]
    except ValidationError as exc:
        raise InvalidInput(f"budgets: nothing was changed; {exc.errors()[0]['msg']}.") from None


def _number_or_none(option: str, text: str) -> int | None:
    """A whole non-negative number, or None for "none" (no limit)."""
    if text.strip().lower() == "none":
        return None
    if not text.strip().isdigit():
        raise InvalidInput(f"{option}: send a whole non-negative number, or none to remove the limit; not {text!r}.")
    return int(text)


@workspace_command
async def cmd_grants(args: argparse.Namespace, store: Store) -> int:
    async with store.read() as tx:
        print(await grants.authority_letter(tx), end="")
    return 0


def _add_grant_commands(add: Add) -> None:
    grant = add("grant", cmd_grant, "Give an agency (or one role) authority over one capability (verified channel).")
    grant.add_argument("--agency", required=True, help="agency name or id, e.g. Outbound or A1")
    grant.add_argument("--role", help="only this role, e.g. SDR (default: every role of the agency)")
    grant.add_argument("--capability", required=True, help="dotted action kind, e.g. spend.ads; spend.* covers all")
    grant.add_argument(
        "--mode",
        choices=["auto", "notify", "approve"],
        default="auto",
        help="auto: acts alone; notify: acts and tells you; approve: asks you each time (default auto)",
    )
    grant.add_argument(
        "--cap-cents",
        type=int,
        help="most one action may cost, in cents (1250 = 12.50); with no money limit only 0 is allowed",
    )
    for period, words in _PERIODS.items():
        grant.add_argument(f"--{period}-count", type=int, help=f"at most this many actions per {words}")
        grant.add_argument(f"--{period}-cents", type=int, help=f"at most this many cents per {words}")
    grant.add_argument(
        "--allow",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATTERN",
        help="only targets matching these patterns, e.g. acme.com '*@acme.com'",
    )
    grant.add_argument(
        "--deny",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATTERN",
        help="never targets matching these patterns (deny wins over allow)",
    )
    grant.add_argument(
        "--expires-on",
        metavar="YYYY-MM-DD",
        help="last day the grant holds, in the workspace timezone (default: no end)",
    )
    grant.add_argument("--goal", help="the goal it serves, e.g. G1")
    grant.add_argument("--rationale", default="", help="why, for the record and the authority letter")
    grant.add_argument(
        "--on-timeout",
        default="deny",
        choices=["deny", "approve"],
        help="what a decision under this grant you leave unanswered becomes when it expires",
    )
    revoke = add("revoke", cmd_revoke, "Withdraw a grant at once (verified channel).")
    revoke.add_argument("grant", help="grant id, e.g. GR3")
    revoke.add_argument("--reason", default="", help="why, for the record")
    revoke.add_argument(
        "--hand-over",
        action="store_true",
        help="let broader grants cover what this grant covered (also for a grant already revoked or past its end)",
    )
    _add_grant_update(add)
    add("grants", cmd_grants, "Print the authority letter: every active grant in plain words.")


def _add_grant_update(add: Add) -> None:
    update = add(
        "grant-update",
        cmd_grant_update,
        "Change a grant's bounds, or put back an earlier version (verified channel: may widen).",
    )
    update.add_argument("grant", help="grant id, e.g. GR3")
    update.add_argument("--mode", choices=["auto", "notify", "approve"], help="auto, notify or approve")
    update.add_argument("--cap-cents", metavar="N|none", help="most one action may cost, in cents; none removes it")
    for period, words in _PERIODS.items():
        update.add_argument(f"--{period}-count", metavar="N|none", help=f"actions per {words}; none removes it")
        update.add_argument(f"--{period}-cents", metavar="N|none", help=f"cents per {words}; none removes it")
    update.add_argument(
        "--allow", nargs="*", metavar="PATTERN", help="replace the allow list (give no pattern to allow any target)"
    )
    update.add_argument("--deny", nargs="*", metavar="PATTERN", help="replace the deny list")
    update.add_argument("--expires-on", metavar="YYYY-MM-DD|none", help="last day the grant holds; none: no end")
    update.add_argument(
        "--on-timeout",
        choices=["deny", "approve"],
        help="what a decision under this grant you leave unanswered becomes when it expires",
    )
    update.add_argument("--rationale", help="why, for the record and the authority letter")
    update.add_argument(
        "--restore",
        type=int,
        metavar="VERSION",
        help="instead of the options above: put every bound back as it was at this version",
    )


def register(add: Add) -> None:
    _add_grant_commands(add)
