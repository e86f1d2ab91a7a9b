"""Deciding: the agency's asks and the operator's answers, and the work each answer moves.

`decisions` keeps the record (bound to a request, single-use, expiring). Deciding reaches further:

- asking with a task parks that task (status waiting) on the decision;
- approving reopens the task with how to redeem, and a proposal that carries a ready change has
  it applied as a change set, under the same trust rules as a review (revertable like one);
- denying fails the task or reopens it, as the operator chose, and the "no" stands: the ledger
  answers an identical request from it instead of asking again.
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

from chief_of_staff.core import ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.core.fields import checked_text
from chief_of_staff.domain import agencies, decisions, inbox, trust
from chief_of_staff.domain.decisions import DECISION_TITLE, MAX_DETAILS, MAX_NOTE, MAX_TITLE, DecisionView
from chief_of_staff.domain.review import adjustments, changesets

TaskOnDeny = Literal["reopen", "fail"]
TASK_ON_DENY = ("reopen", "fail")


# --- asking -------------------------------------------------------------------------------------


async def request_decision(
    tx: Tx,
    actor: Actor,
    *,
    agency: str,
    role: str | None,
    kind: Literal["proposal", "question"],
    title: str,
    details: str = "",
    amount_cents: int | None = None,
    task: str | None = None,
    adjustment: dict[str, Any] | None = None,
) -> DecisionView:
    """The agency asks the operator: a proposal (to change limits, goals or roster) or a question.

    A proposal may carry a ready adjustment (the same shape a review takes); approving it applies it.
    Naming a task parks it on the decision until the operator answers.
    """
    if kind not in ("proposal", "question"):
        raise InvalidInput(f"kind: {kind!r} is not one of proposal, question.")
    title_text = checked_text(title, "title", MAX_TITLE, required=True, what=DECISION_TITLE)
    details_text = checked_text(details, "details", MAX_DETAILS, required=False)
    amount = decisions.checked_amount(amount_cents)
    agency_row = await agencies.resolve_agency(tx, agency)
    role_row = await agencies.resolve_role(tx, agency_row["id"], role)
    task_row = None if task is None else await _own_unfinished_task(tx, task, agency_row)
    change, pinned = (None, None) if adjustment is None else await _ready_change(tx, kind, adjustment, agency_row)
    role_id = None if role_row is None else role_row["id"]
    request = {
        "kind": kind,
        "agency_id": agency_row["id"],
        "role_id": role_id,
        "title": title_text,
        "details": details_text,
        "amount_cents": amount,
        "task_id": None if task_row is None else task_row["id"],
        "adjustment": change,
        "pinned": pinned,
    }
    view = await decisions.open_decision(
        tx,
        actor,
        kind=kind,
        title=title_text,
        details=details_text,
        request=request,
        agency_id=agency_row["id"],
        role_id=role_id,
        amount_cents=amount,
        adjustment=change,
    )
    if task_row is None:
        return view
    decision_id = ids.parse_id("decision", view.id)
    await inbox.wait_on_decision(tx, actor, task_row["id"], decision_id, agency_id=agency_row["id"])
    return await decisions.view_of(tx, decision_id)


async def _own_unfinished_task(tx: Tx, task: str, agency: Row) -> Row:
    number = ids.parse_id("task", task, field="task_id")
    row = await tx.one("SELECT id, agency_id, status FROM tasks WHERE id = ?", (number,))
    short = ids.format_id("task", number)
    if row is None:
        raise NotFound(f"task_id: there is no task {short}. Call list_tasks to see open tasks.")
    if row["agency_id"] != agency["id"]:
        raise InvalidInput(f"task_id: {short} is not {agency['name']}'s task; name one of its own tasks.")
    if row["status"] not in ("open", "claimed", "blocked"):
        raise Conflict(
            f"task_id: {short} is {row['status']}, so it cannot wait on this question; "
            "a waiting task comes back when the operator answers the decision it waits on."
        )
    return row


async def _ready_change(
    tx: Tx, kind: str, adjustment: dict[str, Any], agency: Row
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A proposal's change, checked now as a review would check it, and pinned to its subject as it is now.

    The change must touch the asking agency's own grant, goal, role, routine or lesson; approving it
    later applies it only if that subject has not changed since, so the operator approves what was shown.
    """
    if kind != "proposal":
        raise InvalidInput("adjustment: only a proposal carries a ready change; leave it out of a question.")
    if not isinstance(adjustment, dict) or set(adjustment) != {"tool", "arguments"}:
        raise InvalidInput('adjustment: send {"tool": ..., "arguments": {...}} as a review adjustment takes it.')
    tool = adjustment["tool"]
    allowed = get_args(adjustments.AdjustmentTool)
    if tool not in allowed or not isinstance(adjustment["arguments"], dict):
        raise InvalidInput(f"adjustment.tool: send one of {', '.join(allowed)}, with its arguments as an object.")
    parsed = adjustments.parse_arguments(tool, adjustment["arguments"], "adjustment.arguments")
    if await adjustments.agency_of(tx, tool, parsed) != agency["id"]:
        raise InvalidInput(
            f"adjustment: a proposal from {agency['name']} may change only {agency['name']}'s own grants, goals, "
            "roles, routines and lessons."
        )
    change = {"tool": tool, "arguments": parsed.model_dump(exclude_none=True, mode="json")}
    return change, await adjustments.pin(tx, tool, parsed)


async def describe_change(tx: Tx, view: DecisionView) -> str | None:
    """A proposal's ready change as what it would do, read from the store now (None without one)."""
    if view.adjustment is None:
        return None
    tool = view.adjustment["tool"]
    args = adjustments.parse_arguments(tool, view.adjustment["arguments"], "adjustment.arguments")
    return await adjustments.describe(tx, tool, args)


# --- answering ----------------------------------------------------------------------------------


async def decide(
    tx: Tx, actor: Actor, decision: str, *, approve: bool, note: str = "", task_on_deny: str = "reopen"
) -> DecisionView:
    """The operator approves or denies a pending decision, exactly once, before it expires; the work moves."""
    decision_id = ids.parse_id("decision", decision, field="decision_id")
    short = ids.format_id("decision", decision_id)
    verb = "approve" if approve else "deny"
    trust.require_operator(actor, f"Deciding {short}", f"chief-of-staff {verb} {short}", console=True)
    note_text = checked_text(note, "note", MAX_NOTE, required=False)
    if task_on_deny not in TASK_ON_DENY:
        raise InvalidInput(f"task_on_deny: {task_on_deny!r} is not one of {', '.join(TASK_ON_DENY)}.")
    row = await decisions.live_row(tx, decision)
    if approve:
        await _check_chat_approval(tx, actor, row, short)
    await decisions.record_decided(tx, actor, row, approve=approve, note=note_text)
    if approve and row["adjustment"] is not None:
        change = adjustments.Adjustment.model_validate_json(row["adjustment"])
        await _refuse_moved_subject(tx, row, change, short)
        applied = await changesets.record_review(
            tx, actor, adjustments=[change], note=f"Approved {short}: {row['title']}"
        )
        await decisions.record_change_set(tx, decision_id, ids.parse_id("change_set", applied.id))
    view = await decisions.view_of(tx, decision_id)
    await _move_tasks(tx, actor, view, approve=approve, fail=task_on_deny == "fail", note=note_text)
    return await decisions.view_of(tx, decision_id)


async def _refuse_moved_subject(tx: Tx, row: Row, change: adjustments.Adjustment, short: str) -> None:
    pinned = json.loads(row["request"]).get("pinned")
    if pinned and not await adjustments.still_pinned(tx, change.tool, pinned):
        raise Conflict(
            f"decision: {pinned['subject']} has changed since {short} was asked, so its ready change may no longer "
            f"be what you read; nothing was changed. Deny {short} (`chief-of-staff deny {short}`) and let the "
            "agency propose again."
        )


async def _check_chat_approval(tx: Tx, actor: Actor, row: Row, short_id: str) -> None:
    """Chat approves escalations only within its allowance, and never a proposal (it widens authority or goals)."""
    if actor.channel != "chat":
        return
    hint = f"chief-of-staff approve {short_id}"
    if row["kind"] == "proposal":
        raise OperatorActRefused(
            f"Approving {short_id} cannot be done in chat: proposals widen authority or change goals. "
            f"The operator can approve it from a terminal: {hint}, {trust.IN_CONSOLE}. Denying in chat is fine."
        )
    if decisions.past_a_budget(row):
        # Past a budget is past a count or a period's money the operator set: chat never widens those.
        raise OperatorActRefused(
            f"Approving {short_id} cannot be done in chat: it goes past a budget, and chat never widens a budget. "
            f"The operator can approve it from a terminal: {hint}, {trust.IN_CONSOLE}. Denying in chat is fine."
        )
    if row["kind"] == "escalation":
        await trust.draw_chat(
            tx, actor, f"Approving {short_id}", row["amount_cents"] or 0, hint, subject=short_id, console=True
        )


async def _move_tasks(tx: Tx, actor: Actor, view: DecisionView, *, approve: bool, fail: bool, note: str) -> None:
    decision_id = ids.parse_id("decision", view.id)
    said = f' The operator said: "{note}".' if note else ""
    if approve:
        text = f"{view.id} was approved.{said} Next: {decisions.redeem_hint(view)}"
        await inbox.resume_after_decision(tx, actor, decision_id, status="open", note=text)
        return
    text = f"{view.id} was denied.{said} " + (
        "The operator closed this task." if fail else "Do this task another way, without that request."
    )
    await inbox.resume_after_decision(tx, actor, decision_id, status="failed" if fail else "open", note=text)
