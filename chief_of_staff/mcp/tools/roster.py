"""The roster: agencies and their roles. Reading is anyone's; changing it is an operator act.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import NotFound
from chief_of_staff.core.fields import LongText, Model, Name, Text, View
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
    playbook_limit: int = Field(10, ge=1, le=50)


class RosterOut(View):
    agencies: list[AgencyView]
    playbook: list[LessonView]


async def _roster(store: Store, caller: Caller, args: RosterIn) -> RosterOut:
    async with store.read() as tx:
        view = await agencies.roster(tx)
        lessons = await agencies.playbook(tx, args.agency, limit=args.playbook_limit) if args.agency else []
        return RosterOut(agencies=view.agencies, playbook=lessons)


class SetAgencyIn(Model):
    name: Name
    purpose: Text | None = Field(None, description="Required when creating")
    operating_spec: LongText | None = None
    status: Literal["active", "retired"] | None = None
    confirm: bool = CONFIRM


async def _set_agency(store: Store, caller: Caller, args: SetAgencyIn) -> agencies.AgencyView:
    actor = caller.actor
    async with store.write() as tx:
        try:
            await agencies.resolve_agency(tx, args.name, field="name")
        except NotFound:
            return await agencies.create_agency(
                tx,
                actor,
                name=args.name,
                purpose=args.purpose or "",
                operating_spec=args.operating_spec or "",
            )
        return await agencies.update_agency(
            tx,
            actor,
            args.name,
            purpose=args.purpose,
            operating_spec=args.operating_spec,
            status=args.status,
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
        "Operator act. Create an agency (a business function) or change its purpose, operating spec or status.",
        SetAgencyIn,
        agencies.AgencyView,
        _set_agency,
        destructive=True,
        idempotent=True,
        operator_act=True,
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
