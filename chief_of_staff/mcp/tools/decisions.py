"""Decisions: the agency asks; the operator lists and decides.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import Cents, Model, Name, ShortText, Text, View
from chief_of_staff.domain import decisions
from chief_of_staff.mcp.caller import Caller, DecisionRef
from chief_of_staff.mcp.subscriptions import BRIEF, DECISIONS
from chief_of_staff.mcp.toolkit import CONFIRM, ToolSpec

_ASKING = (BRIEF, DECISIONS)


class ListDecisionsIn(Model):
    status: Literal["pending", "approved", "denied", "expired", "redeemed", "all"] = "pending"
    limit: int = Field(20, ge=1, le=100)


class DecisionList(View):
    decisions: list[decisions.DecisionView]


async def _list_decisions(store: Store, caller: Caller, args: ListDecisionsIn) -> DecisionList:
    async with store.read() as tx:
        return DecisionList(decisions=await decisions.list_decisions(tx, status=args.status, limit=args.limit))


class DecideIn(Model):
    decision_id: DecisionRef
    approve: bool
    note: Text = ""
    confirm: bool = CONFIRM


async def _decision_terms(store: Store, args: DecideIn) -> str:
    async with store.read() as tx:
        return await decisions.terms_for_approval(tx, args.decision_id)


async def _decide(store: Store, caller: Caller, args: DecideIn) -> decisions.DecisionView:
    async with store.write() as tx:
        return await decisions.decide(tx, caller.actor, args.decision_id, approve=args.approve, note=args.note)


class RequestDecisionIn(Model):
    agency: Name
    role: Name | None = None
    kind: Literal["proposal", "question"]
    title: ShortText
    details: Text = ""
    amount_cents: Cents | None = None


async def _request_decision(store: Store, caller: Caller, args: RequestDecisionIn) -> decisions.DecisionView:
    async with store.write() as tx:
        return await decisions.request_decision(
            tx,
            caller.actor,
            agency=args.agency,
            role=args.role,
            kind=args.kind,
            title=args.title,
            details=args.details,
            amount_cents=args.amount_cents,
        )


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "list_decisions",
        "List decisions",
        "Decisions waiting for the operator (or past ones by status).",
        ListDecisionsIn,
        DecisionList,
        _list_decisions,
        read_only=True,
        idempotent=True,
    ),
    ToolSpec(
        "decide",
        "Decide",
        "Operator act. Approve or deny a decision, once. An approved escalation is used by the next "
        "matching authorize.",
        DecideIn,
        decisions.DecisionView,
        _decide,
        operator_act=True,
        terms=_decision_terms,
        changes=(BRIEF, DECISIONS),
    ),
    ToolSpec(
        "request_decision",
        "Request decision",
        "Ask the operator: a proposal (raise a limit, change a goal, add a role) or a question.",
        RequestDecisionIn,
        decisions.DecisionView,
        _request_decision,
        changes=_ASKING,
    ),
]
