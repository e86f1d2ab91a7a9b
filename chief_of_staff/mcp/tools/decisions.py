"""Decisions: the agency asks; the operator lists and decides.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import Cents, Details, Model, Name, NameOrId, Text, Title, View
from chief_of_staff.domain import agencies, deciding, decisions
from chief_of_staff.domain.review.adjustments import Adjustment
from chief_of_staff.mcp.caller import Caller, DecisionRef, TaskRef
from chief_of_staff.mcp.subscriptions import BRIEF, DECISIONS, INBOX
from chief_of_staff.mcp.toolkit import CONFIRM, ToolSpec

_ASKING = (BRIEF, DECISIONS, INBOX)


class ListDecisionsIn(Model):
    status: Literal["pending", "approved", "denied", "expired", "redeemed", "all"] = Field(
        "pending", description="Which ones"
    )
    limit: int = Field(20, ge=1, le=100, description="At most this many")
    agency: Name | None = Field(None, description="Only this agency's (an agency token: always its own)")


class DecisionList(View):
    decisions: list[decisions.DecisionView]


async def _list_decisions(store: Store, caller: Caller, args: ListDecisionsIn) -> DecisionList:
    async with store.read() as tx:
        agency_id = None if args.agency is None else int((await agencies.resolve_agency(tx, args.agency))["id"])
        found = await decisions.list_decisions(tx, status=args.status, limit=args.limit, agency_id=agency_id)
        return DecisionList(decisions=found)


class DecideIn(Model):
    decision_id: DecisionRef
    approve: bool = Field(description="true approves, false denies")
    note: Text = Field("", description="Why, for the record; the agency reads it")
    task_on_deny: Literal["reopen", "fail"] = Field("reopen", description="Denied: the waiting task's fate")
    confirm: bool = CONFIRM


async def _decision_terms(store: Store, args: DecideIn) -> str:
    async with store.read() as tx:
        return await decisions.terms_for_approval(tx, args.decision_id)


async def _decide(store: Store, caller: Caller, args: DecideIn) -> decisions.DecisionView:
    async with store.write() as tx:
        return await deciding.decide(
            tx, caller.actor, args.decision_id, approve=args.approve, note=args.note, task_on_deny=args.task_on_deny
        )


class RequestDecisionIn(Model):
    agency: NameOrId
    role: NameOrId | None = None
    kind: Literal["proposal", "question"] = Field(description="proposal: a change to approve")
    title: Title
    details: Details = ""
    amount_cents: Cents | None = None
    task_id: TaskRef | None = Field(None, description="The task that waits on the answer")
    adjustment: Adjustment | None = Field(None, description="Proposal: the ready change, as record_review takes it")


async def _request_decision(store: Store, caller: Caller, args: RequestDecisionIn) -> decisions.DecisionView:
    async with store.write() as tx:
        return await deciding.request_decision(
            tx,
            caller.actor,
            agency=args.agency,
            role=args.role,
            kind=args.kind,
            title=args.title,
            details=args.details,
            amount_cents=args.amount_cents,
            task=args.task_id,
            adjustment=None if args.adjustment is None else args.adjustment.model_dump(mode="json"),
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
        "Operator act. Approve or deny a decision, once: the waiting task reopens (or fails), an approved "
        "escalation admits its one request, an approved proposal applies its ready change.",
        DecideIn,
        decisions.DecisionView,
        _decide,
        operator_act=True,
        terms=_decision_terms,
        changes=(BRIEF, DECISIONS, INBOX),
    ),
    ToolSpec(
        "request_decision",
        "Request decision",
        "Ask the operator: a proposal (raise a limit, change a goal, add a role; attach the ready change) or "
        "a question. A named task waits on the answer.",
        RequestDecisionIn,
        decisions.DecisionView,
        _request_decision,
        changes=_ASKING,
    ),
]
