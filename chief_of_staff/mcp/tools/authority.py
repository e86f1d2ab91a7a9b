"""Authority: the operator grants, changes and revokes grants; the agency checks, authorizes,
settles and releases against them.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import Cents, IdempotencyKey, Model, NameOrId, ShortText, Text, View
from chief_of_staff.core.ids import parse_id
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.review import adjustments
from chief_of_staff.domain.review.adjustments import UpdateGrantArgs
from chief_of_staff.mcp.caller import AuthorizationRef, Caller, GrantRef, TaskRef
from chief_of_staff.mcp.subscriptions import AUTHORITY_LETTER, BRIEF, DECISIONS, INBOX
from chief_of_staff.mcp.toolkit import CONFIRM, ToolSpec

_ASKING = (BRIEF, DECISIONS, INBOX)  # an escalation parks the task it names
_GRANTS = (BRIEF, AUTHORITY_LETTER)


class CheckIn(Model):
    agency: NameOrId
    role: NameOrId | None = None
    capability: ShortText = Field(..., description="Dotted action kind, e.g. email.send")
    amount_cents: Cents = 0
    target: ShortText | None = Field(None, description="Who or what the action touches, e.g. jane@acme.com")
    task_id: TaskRef | None = None


async def _check(store: Store, caller: Caller, args: CheckIn) -> ledger.CheckView:
    task_id = parse_id("task", args.task_id, field="task_id") if args.task_id else None
    # A write unit because check runs authorize's own steps and undoes them (see authority.check);
    # a trial one, rolled back whole, so not even the pages those steps touched reach the file.
    async with store.trial() as tx:
        return await ledger.check(
            tx,
            caller.actor,
            agency=args.agency,
            role=args.role,
            capability=args.capability,
            amount_cents=args.amount_cents,
            target=args.target,
            task_id=task_id,
        )


class AuthorizeIn(CheckIn):
    idempotency_key: IdempotencyKey | None = None


async def _authorize(store: Store, caller: Caller, args: AuthorizeIn) -> ledger.AuthorizationView:
    task_id = parse_id("task", args.task_id, field="task_id") if args.task_id else None
    async with store.write() as tx:
        return await ledger.authorize(
            tx,
            caller.actor,
            agency=args.agency,
            role=args.role,
            capability=args.capability,
            amount_cents=args.amount_cents,
            target=args.target,
            task_id=task_id,
            idempotency_key=args.idempotency_key,
        )


class SettleIn(Model):
    authorization_id: AuthorizationRef
    actual_cents: Cents


async def _settle(store: Store, caller: Caller, args: SettleIn) -> ledger.AuthorizationView:
    async with store.write() as tx:
        return await ledger.settle(tx, caller.actor, args.authorization_id, actual_cents=args.actual_cents)


class ReleaseIn(Model):
    authorization_id: AuthorizationRef


async def _release(store: Store, caller: Caller, args: ReleaseIn) -> ledger.AuthorizationView:
    async with store.write() as tx:
        return await ledger.release(tx, caller.actor, args.authorization_id)


class GrantIn(grants.GrantSpec):
    confirm: bool = CONFIRM


async def _grant(store: Store, caller: Caller, args: GrantIn) -> grants.GrantView:
    spec = grants.GrantSpec.model_validate(args.model_dump(exclude={"confirm"}))
    async with store.write() as tx:
        return await grants.create_grant(tx, caller.actor, spec)


class RevokeIn(Model):
    grant_id: GrantRef
    reason: Text = Field("", description="Why, for the record")


async def _revoke(store: Store, caller: Caller, args: RevokeIn) -> grants.GrantView:
    async with store.write() as tx:
        return await grants.revoke_grant(tx, caller.actor, args.grant_id, reason=args.reason)


class UpdateGrantIn(UpdateGrantArgs):
    grant_id: GrantRef
    confirm: bool = CONFIRM


async def _grant_change_terms(store: Store, args: UpdateGrantIn) -> str:
    async with store.read() as tx:
        return await adjustments.describe_grant_change(tx, args)


async def _update_grant(store: Store, caller: Caller, args: UpdateGrantIn) -> grants.GrantView:
    # Narrowing needs nobody's approval, so the operator's prompt (asks_operator) comes only with confirm=true.
    async with store.write() as tx:
        return await adjustments.change_grant(tx, caller.actor, args)


class ListGrantsIn(Model):
    agency: NameOrId | None = None
    include_revoked: bool = Field(False, description="Also revoked ones")
    letter: bool = Field(False, description="Also return the grants as a delegation-of-authority letter")


class GrantList(View):
    grants: list[grants.GrantView]
    letter: str | None = None


async def _list_grants(store: Store, caller: Caller, args: ListGrantsIn) -> GrantList:
    async with store.read() as tx:
        found = await grants.list_grants(tx, agency=args.agency, include_revoked=args.include_revoked)
        letter = await grants.authority_letter(tx, agency=args.agency) if args.letter else None
    return GrantList(grants=found, letter=letter)


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "grant",
        "Grant authority",
        "Operator act. Let an agency or role perform one capability within bounds: per-action cap, "
        "day/week/month count and amount budgets, target allow/deny globs (deny wins), expiry, mode "
        "auto (act), notify (act and tell) or approve (ask each time).",
        GrantIn,
        grants.GrantView,
        _grant,
        operator_act=True,
        changes=_GRANTS,
    ),
    ToolSpec(
        "update_grant",
        "Change grant",
        "Change a grant's bounds; omitted fields stay. Narrowing needs no confirm; widening is an operator "
        "act. restore_version reverts to an earlier version.",
        UpdateGrantIn,
        grants.GrantView,
        _update_grant,
        destructive=True,
        idempotent=True,
        operator_act=True,
        asks_operator=lambda args: args.confirm,
        acts=lambda _: True,  # a narrowing needs no confirm and still changes the grant: tell subscribers
        terms=_grant_change_terms,
        changes=_GRANTS,
    ),
    ToolSpec(
        "revoke",
        "Revoke grant",
        "Withdraw a grant at once. Nothing more is allowed under it.",
        RevokeIn,
        grants.GrantView,
        _revoke,
        destructive=True,
        idempotent=True,
        changes=_GRANTS,
    ),
    ToolSpec(
        "list_grants",
        "List grants",
        "Grants with budgets used in the current period; optionally as a delegation-of-authority letter.",
        ListGrantsIn,
        GrantList,
        _list_grants,
        read_only=True,
        idempotent=True,
    ),
    ToolSpec(
        "check",
        "Check",
        "Can I? What authorize would answer now; reserves, opens and writes nothing.",
        CheckIn,
        ledger.CheckView,
        _check,
        read_only=True,
        idempotent=True,
    ),
    ToolSpec(
        "authorize",
        "Authorize",
        "Ask before acting. Answers allowed (a reservation is held: act, then settle or release), "
        "needs_approval (a decision is opened; the task waits on it) or denied (with the grant and limit hit, "
        "or the operator's standing no). Actions no grant covers are never allowed silently. Whole cents.",
        AuthorizeIn,
        ledger.AuthorizationView,
        _authorize,
        changes=_ASKING,
    ),
    ToolSpec(
        "settle",
        "Settle",
        "After acting: record the actual amount (at most the reserved amount).",
        SettleIn,
        ledger.AuthorizationView,
        _settle,
        idempotent=True,
        changes=(BRIEF,),
    ),
    ToolSpec(
        "release",
        "Release",
        "Nothing happened: return an allowed reservation to the budget.",
        ReleaseIn,
        ledger.AuthorizationView,
        _release,
        idempotent=True,
        changes=(BRIEF,),
    ),
]
