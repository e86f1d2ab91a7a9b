"""Review commands: the packet, recording accepted adjustments as one change set, and reverting one.

The command line is the verified operator channel, so a review recorded here has no chat ceiling.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from chief_of_staff.cli.support import Add, workspace_command
from chief_of_staff.core import audit
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import brief
from chief_of_staff.domain.review import changesets, packet, proposals


@workspace_command
async def cmd_review(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        await brief.housekeeping(tx, audit.SYSTEM)
        view = await packet.build_packet(tx, days=args.days, mark_seen=not args.peek)
    print(packet.render_packet(view), end="")
    if view.proposals:
        print("\nTo accept, name them: chief-of-staff review-record --accept KEY,KEY")
    for proposal in view.proposals:
        print(f"  {proposals.proposal_key(proposal)}  {json.dumps(proposal.adjustment.model_dump())}")
    return 0


def _adjustments_file(path: str) -> tuple[list[Any], str | None]:
    """A JSON list of adjustments, or {"adjustments": [...], "note": "..."}; "-" reads standard input."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"--file: could not read JSON from {path}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("adjustments"), list):
        return data["adjustments"], data.get("note")
    if isinstance(data, list):
        return data, None
    raise InvalidInput('--file: send a JSON list of {"tool": ..., "arguments": {...}} adjustments.')


@workspace_command
async def cmd_review_record(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        listed, note = _adjustments_file(args.file) if args.file else ([], None)
        if args.accept:
            listed += await packet.accepted_adjustments(tx, args.accept.split(","), field="--accept")
        view = await changesets.record_review(tx, OPERATOR_CLI, adjustments=listed, note=args.note or note or "")
    count = len(view.changes)
    print(f"{view.id}: review recorded with {count} adjustment{'' if count == 1 else 's'}.")
    for change in view.changes:
        print(f"  {change.tool} {change.subject}")
    print(f"Undo it with: chief-of-staff review-revert {view.id}")
    return 0


@workspace_command
async def cmd_review_revert(args: argparse.Namespace, store: Store) -> int:
    async with store.write() as tx:
        view = await changesets.revert_change_set(tx, OPERATOR_CLI, args.change_set, note=args.note)
    count = len(view.changes)
    print(f"{view.id}: reverted {view.reverts} ({count} change{'' if count == 1 else 's'} undone).")
    return 0


def register(add: Add) -> None:
    review = add("review", cmd_review, "Print the review packet: pace, scorecards, anomalies, decisions, proposals.")
    review.add_argument("--days", type=int, default=7, help="the period in local days up to today (default 7)")
    review.add_argument("--peek", action="store_true", help="do not move the 'since you last looked' mark")
    record = add(
        "review-record",
        cmd_review_record,
        "Record a review: apply accepted adjustments as one change set (verified operator channel).",
    )
    record.add_argument("--accept", help="proposal keys from `chief-of-staff review`, e.g. grant_widen:GR4,role_add:A1")
    record.add_argument("--file", help='JSON list of {"tool": ..., "arguments": {...}} adjustments, or - for stdin')
    record.add_argument("--note", default="", help="what you concluded, for the record")
    revert = add("review-revert", cmd_review_revert, "Undo a recorded review (or a revert) as a new change set.")
    revert.add_argument("change_set", help="change set id, e.g. CS3")
    revert.add_argument("--note", default="", help="why, for the record")
