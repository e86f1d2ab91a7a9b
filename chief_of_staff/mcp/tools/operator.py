"""MCP tools of the operator's side: goals, roster, grants, decisions, reviews, blueprints.

Operator-only acts take `confirm`. Without it the call runs as the agency and the
domain refuses it with a message that tells the model to ask the operator. With
it, the act comes through the chat channel and must stay under the workspace's
chat ceiling; above it, the domain names the terminal command instead.
"""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from chief_of_staff.core.audit import SYSTEM
from chief_of_staff.core.errors import InvalidInput, NotFound
from chief_of_staff.core.fields import LongText, Model, Name, ShortText, Text, View
from chief_of_staff.domain import agencies, brief, decisions, goals
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.domain.review import adjustments, changesets, packet
from chief_of_staff.domain.review.adjustments import AdjustGoalArgs, Adjustment, SetRoleArgs, UpdateGrantArgs
from chief_of_staff.mcp.subscriptions import AUTHORITY_LETTER, BRIEF, DECISIONS, EVERYTHING, GOALS
from chief_of_staff.mcp.toolkit import Ref, ToolSpec, caller, require_own, store_of
from chief_of_staff.notify import endpoints
from chief_of_staff.notify.endpoints import EndpointView

CONFIRM = Field(False, description="true only once the operator said yes to this exact change here")


class CreateGoalIn(Model):
    agency: Name
    title: ShortText
    description: Text = ""
    key_results: list[goals.KeyResultSpec] = Field(..., min_length=1, max_length=10)
    confirm: bool = CONFIRM


async def _create_goal(ctx: Context[Any, Any], args: CreateGoalIn) -> goals.GoalView:
    async with store_of(ctx).write() as tx:
        return await goals.create_goal(
            tx, caller(args.confirm), agency=args.agency, title=args.title, description=args.description,
            key_results=args.key_results,
        )


class AdjustGoalIn(AdjustGoalArgs):
    confirm: bool = CONFIRM


async def _adjust_goal(ctx: Context[Any, Any], args: AdjustGoalIn) -> goals.GoalView:
    async with store_of(ctx).write() as tx:
        return await goals.adjust_goal(
            tx, caller(args.confirm), args.goal_id, title=args.title, description=args.description,
            status=args.status, key_results=args.key_results,
        )


class SetAgencyIn(Model):
    name: Name
    purpose: Text | None = Field(None, description="Required when creating")
    operating_spec: LongText | None = None
    status: Literal["active", "retired"] | None = None
    confirm: bool = CONFIRM


async def _set_agency(ctx: Context[Any, Any], args: SetAgencyIn) -> agencies.AgencyView:
    actor = caller(args.confirm)
    async with store_of(ctx).write() as tx:
        try:
            await agencies.resolve_agency(tx, args.name, field="name")
        except NotFound:
            return await agencies.create_agency(
                tx, actor, name=args.name, purpose=args.purpose or "", operating_spec=args.operating_spec or "",
            )
        return await agencies.update_agency(
            tx, actor, args.name, purpose=args.purpose, operating_spec=args.operating_spec, status=args.status,
        )


class SetRoleIn(SetRoleArgs):
    confirm: bool = CONFIRM


async def _set_role(ctx: Context[Any, Any], args: SetRoleIn) -> agencies.RoleView:
    async with store_of(ctx).write() as tx:
        return await agencies.set_role(
            tx, caller(args.confirm), agency=args.agency, name=args.name, charter=args.charter, status=args.status,
        )


class GrantIn(grants.GrantSpec):
    confirm: bool = CONFIRM


async def _grant(ctx: Context[Any, Any], args: GrantIn) -> grants.GrantView:
    spec = grants.GrantSpec.model_validate(args.model_dump(exclude={"confirm"}))
    async with store_of(ctx).write() as tx:
        return await grants.create_grant(tx, caller(args.confirm), spec)


class RevokeIn(Model):
    grant_id: Ref
    reason: Text = ""


async def _revoke(ctx: Context[Any, Any], args: RevokeIn) -> grants.GrantView:
    async with store_of(ctx).write() as tx:
        await require_own(tx, "grant", args.grant_id, field="grant_id")
        # Narrowing needs no operator; caller(False) still records an operator token as the operator.
        return await grants.revoke_grant(tx, caller(False), args.grant_id, reason=args.reason)


class UpdateGrantIn(UpdateGrantArgs):
    confirm: bool = CONFIRM


async def _update_grant(ctx: Context[Any, Any], args: UpdateGrantIn) -> grants.GrantView:
    # Narrowing needs nobody's approval, so the operator's prompt (asks_operator) comes only with confirm=true.
    async with store_of(ctx).write() as tx:
        await require_own(tx, "grant", args.grant_id, field="grant_id")
        return await adjustments.change_grant(tx, caller(args.confirm), args)


class ListGrantsIn(Model):
    agency: Name | None = None
    include_revoked: bool = False
    letter: bool = Field(False, description="Also return the grants as a delegation-of-authority letter")


class GrantList(View):
    grants: list[grants.GrantView]
    letter: str | None = None


async def _list_grants(ctx: Context[Any, Any], args: ListGrantsIn) -> GrantList:
    async with store_of(ctx).read() as tx:
        found = await grants.list_grants(tx, agency=args.agency, include_revoked=args.include_revoked)
        letter = await grants.authority_letter(tx) if args.letter else None
    return GrantList(grants=found, letter=letter)


class ListDecisionsIn(Model):
    status: Literal["pending", "approved", "denied", "expired", "redeemed", "all"] = "pending"
    limit: int = Field(20, ge=1, le=100)


class DecisionList(View):
    decisions: list[decisions.DecisionView]


async def _list_decisions(ctx: Context[Any, Any], args: ListDecisionsIn) -> DecisionList:
    async with store_of(ctx).read() as tx:
        return DecisionList(decisions=await decisions.list_decisions(tx, status=args.status, limit=args.limit))


class DecideIn(Model):
    decision_id: Ref
    approve: bool
    note: Text = ""
    confirm: bool = CONFIRM


async def _decide(ctx: Context[Any, Any], args: DecideIn) -> decisions.DecisionView:
    async with store_of(ctx).write() as tx:
        return await decisions.decide(tx, caller(args.confirm), args.decision_id, approve=args.approve, note=args.note)


class NoArguments(Model):
    pass


class BlueprintList(View):
    blueprints: list[loader.BlueprintSummary]


async def _list_blueprints(ctx: Context[Any, Any], args: NoArguments) -> BlueprintList:
    return BlueprintList(blueprints=loader.list_blueprints())


class ApplyBlueprintIn(Model):
    name: Name = Field(..., description='A blueprint name from list_blueprints, e.g. "outbound"')
    agency_name: Name | None = Field(None, description="Name the new agency differently")
    dry_run: bool = Field(True, description="Show what would be created without creating it")
    confirm: bool = CONFIRM


async def _apply_blueprint(ctx: Context[Any, Any], args: ApplyBlueprintIn) -> loader.BlueprintPlan:
    if args.dry_run:
        async with store_of(ctx).read() as tx:
            return await loader.plan_blueprint(tx, args.name, agency_name=args.agency_name)
    async with store_of(ctx).write() as tx:
        return await loader.apply_blueprint(tx, caller(args.confirm), args.name, agency_name=args.agency_name)


class ReviewIn(Model):
    viewer: Name = "operator"
    days: int = Field(7, ge=1, le=92, description="The period: this many local days up to today")
    mark_seen: bool = Field(True, description="Move this viewer's 'since you last looked' mark to now")


async def _review(ctx: Context[Any, Any], args: ReviewIn) -> packet.Packet:
    async with store_of(ctx).write() as tx:
        await brief.housekeeping(tx, SYSTEM)  # the server's chores, whoever happens to look
        return await packet.build_packet(tx, viewer=args.viewer, days=args.days, mark_seen=args.mark_seen)


class RecordReviewIn(Model):
    adjustments: list[Adjustment] = Field(
        [], max_length=changesets.MAX_ADJUSTMENTS, description="Accepted proposals' adjustments, or your own")
    note: Text = ""
    revert: Ref | None = Field(None, description='Instead: undo change set "CS3"')
    confirm: bool = CONFIRM


async def _record_review(ctx: Context[Any, Any], args: RecordReviewIn) -> changesets.ChangeSetView:
    async with store_of(ctx).write() as tx:
        if args.revert is None:
            return await changesets.record_review(tx, caller(args.confirm), adjustments=args.adjustments,
                                                  note=args.note)
        if args.adjustments:
            raise InvalidInput("revert: send it without adjustments; a revert undoes exactly what the set did.")
        return await changesets.revert_change_set(tx, caller(args.confirm), args.revert, note=args.note)


class NotifyIn(Model):
    action: Literal["list", "add", "test", "remove"] = "list"
    url: ShortText | None = Field(None, description="add: https URL to POST signed events to")
    events: list[Literal["decision.opened", "decision.expiring", "brief.daily", "anomaly.found",
                         "grant.changed"]] = Field([], max_length=5, description="add: what to send")
    format: Literal["standard", "slack"] = "standard"
    endpoint_id: Ref | None = Field(None, description='test/remove: "NE1"')
    confirm: bool = CONFIRM


class NotifyOut(View):
    endpoints: list[EndpointView]
    message: str


async def _notify(ctx: Context[Any, Any], args: NotifyIn) -> NotifyOut:
    if args.action == "list":
        async with store_of(ctx).read() as tx:
            return NotifyOut(endpoints=await endpoints.list_endpoints(tx), message="")
    if args.action == "add":
        if args.url is None or not args.events:
            raise InvalidInput("add: send url and events, e.g. events [\"decision.opened\"].")
        async with store_of(ctx).write() as tx:
            view, _ = await endpoints.add_endpoint(tx, caller(args.confirm), url=args.url, events=list(args.events),
                                                  format=args.format)
        return NotifyOut(endpoints=[view], message=(  # the secret never goes through a tool result
            f"Added. Its signing secret is shown only on the operator's machine: chief-of-staff notify "
            f"rotate-secret {view.endpoint_id}"))
    if args.endpoint_id is None:
        raise InvalidInput(f"endpoint_id: {args.action} needs the endpoint, e.g. \"NE1\"; action list shows them.")
    async with store_of(ctx).write() as tx:
        if args.action == "test":
            sent = await endpoints.queue_test(tx, caller(args.confirm), args.endpoint_id)
            return NotifyOut(endpoints=[], message=f"Test {sent} queued; the running server sends it within seconds.")
        view = await endpoints.remove_endpoint(tx, caller(args.confirm), args.endpoint_id)
        return NotifyOut(endpoints=[view], message="Removed; what it was still owed is cancelled.")


# What each kind of act changes, for subscribers (the brief shows a bit of everything).
_GOALS = (BRIEF, GOALS)
_GRANTS = (BRIEF, AUTHORITY_LETTER)

OPERATOR_TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec("create_goal", "Create goal",
             "Operator act. A goal of an agency with key results (metric, unit, baseline, target, direction "
             "up/down, due date). Progress is computed from logged outcomes, never typed in.",
             CreateGoalIn, goals.GoalView, _create_goal, operator_act=True, changes=_GOALS),
    ToolSpec("adjust_goal", "Adjust goal",
             "Operator act. Retitle, close (achieved/dropped), change a key result's target or due date, "
             "or add a key result.",
             AdjustGoalIn, goals.GoalView, _adjust_goal, destructive=True, operator_act=True,
             changes=_GOALS),
    ToolSpec("set_agency", "Set agency",
             "Operator act. Create an agency (a business function) or change its purpose, operating spec "
             "or status.",
             SetAgencyIn, agencies.AgencyView, _set_agency, destructive=True, idempotent=True, operator_act=True,
             changes=EVERYTHING),
    ToolSpec("set_role", "Set role", "Operator act. Create a role seat in an agency, or change its charter or status.",
             SetRoleIn, agencies.RoleView, _set_role, destructive=True, idempotent=True, operator_act=True,
             changes=EVERYTHING),
    ToolSpec("grant", "Grant authority",
             "Operator act. Let an agency or role perform one capability within bounds: per-action cap, "
             "day/week/month count and amount budgets, target allow/deny globs (deny wins), expiry, mode "
             "auto (act), notify (act and tell) or approve (ask each time).",
             GrantIn, grants.GrantView, _grant, operator_act=True, changes=_GRANTS),
    ToolSpec("revoke", "Revoke grant", "Withdraw a grant at once. Nothing more is allowed under it.",
             RevokeIn, grants.GrantView, _revoke, destructive=True, idempotent=True, changes=_GRANTS),
    ToolSpec("update_grant", "Change grant",
             "Change a grant's bounds; omitted fields stay. Narrowing needs no confirm; widening is an operator "
             "act. restore_version reverts to an earlier version.",
             UpdateGrantIn, grants.GrantView, _update_grant, destructive=True, idempotent=True,
             operator_act=True, asks_operator=lambda args: args.confirm, changes=_GRANTS),
    ToolSpec("list_grants", "List grants",
             "Grants with budgets used in the current period; optionally as a delegation-of-authority letter.",
             ListGrantsIn, GrantList, _list_grants, read_only=True, idempotent=True),
    ToolSpec("list_decisions", "List decisions", "Decisions waiting for the operator (or past ones by status).",
             ListDecisionsIn, DecisionList, _list_decisions, read_only=True, idempotent=True),
    ToolSpec("decide", "Decide",
             "Operator act. Approve or deny a decision, once. An approved escalation is used by the next "
             "matching authorize.",
             DecideIn, decisions.DecisionView, _decide, operator_act=True, changes=(BRIEF, DECISIONS)),
    ToolSpec("review", "Review packet",
             "The operator's review of a period: changes since last look, goal pace and forecasts, scorecards, "
             "anomalies with evidence, waiting decisions, and proposals, each with a ready adjustment.",
             ReviewIn, packet.Packet, _review),
    ToolSpec("record_review", "Record review",
             "Operator act. Apply the adjustments the operator accepted (tool + arguments, as proposals carry "
             "them) as one audited change set; or revert one.",
             RecordReviewIn, changesets.ChangeSetView, _record_review, destructive=True, operator_act=True,
             changes=EVERYTHING),
    ToolSpec("list_blueprints", "List blueprints", "Starter agencies that can be stood up in one call.",
             NoArguments, BlueprintList, _list_blueprints, read_only=True, idempotent=True),
    ToolSpec("apply_blueprint", "Apply blueprint",
             "Operator act. Stand up an agency from a blueprint: roles, goals, grants, routines, playbook. "
             "The default dry run shows what it would create.",
             ApplyBlueprintIn, loader.BlueprintPlan, _apply_blueprint, operator_act=True,
             asks_operator=lambda args: not args.dry_run, changes=EVERYTHING),
    ToolSpec("notify", "Webhooks",
             "Signed webhooks to the operator's channels. list; add (operator act, verified channel only); "
             "test; remove.",
             NotifyIn, NotifyOut, _notify, destructive=True, operator_act=True,
             asks_operator=lambda args: args.action != "list"),
]
