"""Orient: the brief every session starts with.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chief_of_staff.core.audit import SYSTEM
from chief_of_staff.core.db import Store
from chief_of_staff.core.fields import Model, ShortText
from chief_of_staff.domain import brief
from chief_of_staff.mcp.caller import Caller, looking_as
from chief_of_staff.mcp.toolkit import ToolSpec

# Shared with the review tool: the same viewer reads both, and the same rule moves its mark.
VIEWER = Field(
    None,
    description='"operator", or "agency:Outbound/SDR" (that agency only). Left out: operator view, no mark moved',
)
MARK_SEEN = Field(True, description="Move the named viewer's 'since you last looked' mark to now")


class BriefIn(Model):
    viewer: ShortText | None = VIEWER
    mark_seen: bool = MARK_SEEN


async def _brief(store: Store, caller: Caller, args: BriefIn) -> brief.Brief:
    viewer, may_mark = looking_as(caller, args.viewer)
    async with store.write() as tx:
        await brief.housekeeping(tx, SYSTEM)  # the server's chores, whoever happens to look
        return await brief.build_brief(tx, viewer, mark_seen=args.mark_seen and may_mark)


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
