"""The review: the packet for a period, and recording (or reverting) what the operator accepts.

Wiring only: each handler opens one unit of work and calls the domain; the input model
validates the arguments. Operator acts take `confirm`; see chief_of_staff.domain.trust.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chief_of_staff.core.audit import SYSTEM
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.fields import Model, Note, ShortText
from chief_of_staff.domain import brief
from chief_of_staff.domain.review import changesets, packet
from chief_of_staff.domain.review.adjustments import Adjustment
from chief_of_staff.mcp.caller import Caller, looking_as
from chief_of_staff.mcp.subscriptions import EVERYTHING
from chief_of_staff.mcp.toolkit import CONFIRM, Ref, ToolSpec
from chief_of_staff.mcp.tools.orient import MARK_SEEN, VIEWER


class ReviewIn(Model):
    viewer: ShortText | None = VIEWER
    days: int = Field(7, ge=1, le=92, description="The period: this many local days up to today")
    mark_seen: bool = MARK_SEEN


async def _review(store: Store, caller: Caller, args: ReviewIn) -> packet.Packet:
    viewer, may_mark = looking_as(caller, args.viewer)
    async with store.write() as tx:
        await brief.housekeeping(tx, SYSTEM)  # the server's chores, whoever happens to look
        return await packet.build_packet(tx, viewer=viewer, days=args.days, mark_seen=args.mark_seen and may_mark)


class RecordReviewIn(Model):
    adjustments: list[Adjustment] = Field(
        [], max_length=changesets.MAX_ADJUSTMENTS, description="Accepted proposals' adjustments, or your own"
    )
    note: Note = ""
    revert: Ref | None = Field(None, description='Instead: undo change set "CS3"')
    confirm: bool = CONFIRM


async def _revert_terms(store: Store, args: RecordReviewIn) -> str | None:
    """For a revert, every change it will undo; a review's adjustments are its arguments, shown as sent."""
    if args.revert is None:
        return None
    async with store.read() as tx:
        return await changesets.describe_revert(tx, args.revert)


async def _record_review(store: Store, caller: Caller, args: RecordReviewIn) -> changesets.ChangeSetView:
    async with store.write() as tx:
        if args.revert is None:
            return await changesets.record_review(tx, caller.actor, adjustments=args.adjustments, note=args.note)
        if args.adjustments:
            raise InvalidInput("revert: send it without adjustments; a revert undoes exactly what the set did.")
        return await changesets.revert_change_set(tx, caller.actor, args.revert, note=args.note)


TOOLS: list[ToolSpec[Any, Any]] = [
    ToolSpec(
        "review",
        "Review packet",
        "The operator's review of a period: changes since last look, goal pace and forecasts, scorecards, "
        "anomalies with evidence, waiting decisions, and proposals, each with a ready adjustment.",
        ReviewIn,
        packet.Packet,
        _review,
    ),
    ToolSpec(
        "record_review",
        "Record review",
        "Operator act. Apply the adjustments the operator accepted (tool + arguments, as proposals carry "
        "them) as one audited change set; or revert one.",
        RecordReviewIn,
        changesets.ChangeSetView,
        _record_review,
        destructive=True,
        operator_act=True,
        terms=_revert_terms,
        changes=EVERYTHING,
    ),
]
