"""Orient: the brief every session starts with.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chief_of_staff.core.audit import SYSTEM
from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import Model, Name
from chief_of_staff.domain import brief
from chief_of_staff.mcp.caller import Caller
from chief_of_staff.mcp.toolkit import ToolSpec


class BriefIn(Model):
    viewer: Name = Field("operator", description='"operator", or "agency:Outbound/SDR" for a role')
    mark_seen: bool = Field(True, description="Move this viewer's 'since you last looked' mark to now")


async def _brief(store: Store, caller: Caller, args: BriefIn) -> brief.Brief:
    async with store.write() as tx:
        await brief.housekeeping(tx, SYSTEM)  # the server's chores, whoever happens to look
        return await brief.build_brief(tx, args.viewer, mark_seen=args.mark_seen)


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "brief",
        "Brief",
        "Start every session here: changes since this viewer last looked, goal pace, inbox, "
        "authority used, decisions waiting for the operator.",
        BriefIn,
        brief.Brief,
        _brief,
    ),
]
