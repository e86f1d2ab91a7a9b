"""The roster: agencies and their roles. Reading is anyone's; changing it is an operator act.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chief_of_staff.core.db import Row, Store
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import LongText, Model, Name, ShortText, Text, View
from chief_of_staff.domain import agencies
from chief_of_staff.domain.agencies import AgencyView, LessonView
from chief_of_staff.domain.review.adjustments import (
    SetRoleArgs,
)
from chief_of_staff.mcp.caller import Caller
from chief_of_staff.mcp.subscriptions import EVERYTHING
from chief_of_staff.mcp.toolkit import CONFIRM, ToolSpec


class RosterIn(Model):
    agency: Name | None = Field(None, description="Include this agency's playbook")
    playbook_limit: int = Field(10, ge=1, le=50, description="Lessons shown")


class RosterOut(View):
    agencies: list[AgencyView]
    playbook: list[LessonView]


async def _roster(store: Store, caller: Caller, args: RosterIn) -> RosterOut:
    async with store.read() as tx:
        view = await agencies.roster(tx)
        lessons = await agencies.playbook(tx, args.agency, limit=args.playbook_limit) if args.agency else []
        return RosterOut(agencies=view.agencies, playbook=lessons)


class SetAgencyIn(Model):
    name: Name = Field(description="Name or id; a new name creates it")
    purpose: Text | None = Field(None, description="Required when creating")
    operating_spec: LongText | None = Field(None, description="How its agents work")
    status: Literal["active", "paused", "retired"] | None = Field(
        None, description="paused: nothing claimed or allowed (the agency may pause itself); active resumes"
    )
    note: ShortText | None = Field(None, description="Why it is paused")
    confirm: bool = CONFIRM


async def _set_agency(store: Store, caller: Caller, args: SetAgencyIn) -> agencies.AgencyView:
    actor = caller.actor
    async with store.write() as tx:
        try:
            row = await agencies.resolve_agency(tx, args.name, field="name")
        except NotFound:
            return await agencies.create_agency(
                tx,
                actor,
                name=args.name,
                purpose=args.purpose or "",
                operating_spec=args.operating_spec or "",
            )
        _refuse_another_agency(caller, row)
        # A pause is no roster change: pausing and resuming go through their own rules (domain.agencies).
        resuming = args.status == "active" and agencies.is_paused(row)
        roster_status = None if args.status == "paused" or resuming else args.status
        view = None
        if args.purpose is not None or args.operating_spec is not None or roster_status is not None:
            view = await agencies.update_agency(
                tx, actor, args.name, purpose=args.purpose, operating_spec=args.operating_spec, status=roster_status
            )
        if args.status == "paused":
            return await agencies.pause_agency(tx, actor, args.name, note=args.note or "")
        if resuming:
            return await agencies.resume_agency(tx, actor, args.name)
        if view is None:
            raise InvalidInput("Nothing to change: send purpose, operating_spec or status.")
        return view


def _refuse_another_agency(caller: Caller, row: Row) -> None:
    """An agency token may pause its own agency only (it can make no other change here at all)."""
    principal = caller.principal
    if caller.is_agency_token and principal is not None and principal.agency_id != row["id"]:
        raise Conflict(
            f"name: {row['name']} is another agency; this connection's token acts for "
            f"{principal.agency} only. Nothing was changed."
        )


class SetRoleIn(SetRoleArgs):
    confirm: bool = CONFIRM


async def _set_role(store: Store, caller: Caller, args: SetRoleIn) -> agencies.RoleView:
    async with store.write() as tx:
        return await agencies.set_role(
            tx,
            caller.actor,
            agency=args.agency,
            name=args.name,
            charter=args.charter,
            status=args.status,
        )


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "roster",
        "Roster",
        "Agencies with their charters, operating specs and roles; with an agency, its playbook of lessons.",
        RosterIn,
        RosterOut,
        _roster,
        read_only=True,
        idempotent=True,
    ),
    ToolSpec(
        "set_agency",
        "Set agency",
        "Operator act (pausing is not). Create an agency (a business function) or change its purpose, operating "
        "spec or status.",
        SetAgencyIn,
        agencies.AgencyView,
        _set_agency,
        destructive=True,
        idempotent=True,
        operator_act=True,
        asks_operator=lambda args: args.status != "paused",  # pausing only narrows: nobody is asked
        acts=lambda _: True,
        changes=EVERYTHING,
    ),
    ToolSpec(
        "set_role",
        "Set role",
        "Operator act. Create a role seat in an agency, or change its charter or status.",
        SetRoleIn,
        agencies.RoleView,
        _set_role,
        destructive=True,
        idempotent=True,
        operator_act=True,
        changes=EVERYTHING,
    ),
]
