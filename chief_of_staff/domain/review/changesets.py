"""Recorded reviews: the adjustments the operator accepts, applied as one change set, undone by another.

A change set is one transaction. Recording a review is an operator act; each adjustment then runs
through its own domain function with the operator's actor, so every trust rule holds as if the
change were made alone (through chat, nothing widens above the ceiling). Every audit row the set
writes carries its label (CS3), and one `review.record` (or `review.revert`) row closes it. If
any adjustment is refused, the whole set is: nothing changes.

A revert is a change set too. It undoes the items newest first, each through the same domain
functions, and refuses if anything it touched has changed since: putting back an old state over
a newer change would undo work nobody asked to undo.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.core.fields import Model, checked_text
from chief_of_staff.domain import trust
from chief_of_staff.domain.review import adjustments
from chief_of_staff.domain.review.adjustments import Adjustment, Applied

MAX_ADJUSTMENTS = 20
MAX_NOTE = 4000
REVIEW_HINT = "chief-of-staff review-record --file FILE.json (a JSON list of adjustments)"


class Change(Model):
    """One adjustment of a change set: what it changed, and the subject's state before and after."""

    tool: str
    subject: str
    arguments: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class ChangeSetView(Model):
    id: str
    kind: Literal["review", "revert"]
    note: str
    by: str
    channel: str
    created_at: str
    reverts: str | None
    reverted_by: str | None
    changes: list[Change]


def _label(change_set_id: int | None) -> str | None:
    """A change set's id as shown, for columns that may be empty (reverts, reverted_by)."""
    return None if change_set_id is None else ids.format_id("change_set", change_set_id)


def _adjustment(item: object, index: int) -> Adjustment:
    field = f"adjustments[{index}]"
    if isinstance(item, Adjustment):
        return item
    if not isinstance(item, dict) or set(item) != {"tool", "arguments"}:
        raise InvalidInput(
            f'{field}: send {{"tool": "update_grant", "arguments": {{...}}}}: the tool name and '
            "its arguments, as the proposals in the review packet carry them."
        )
    tools = ", ".join(adjustments.TOOLS)
    if not isinstance(item["tool"], str) or item["tool"] not in adjustments.TOOLS:
        raise InvalidInput(f"{field}.tool: {item['tool']!r} is not an adjustment; send one of {tools}.")
    if not isinstance(item["arguments"], dict):
        raise InvalidInput(f"{field}.arguments: send the tool's arguments as an object.")
    return Adjustment.model_validate(item)


async def _open(tx: Tx, actor: Actor, kind: str, note: str, reverts: int | None) -> int:
    return await tx.run(
        "INSERT INTO change_sets (kind, note, actor, channel, reverts, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (kind, note, actor.name, actor.channel, reverts, tx.now_text),
    )


async def _apply_all(tx: Tx, actor: Actor, change_set_id: int, planned: Sequence[Adjustment]) -> list[Applied]:
    """Every adjustment in order, validated first; each stored with its before and after state."""
    parsed = [
        adjustments.parse_arguments(a.tool, a.arguments, f"adjustments[{i}].arguments") for i, a in enumerate(planned)
    ]
    done = []
    for index, (adjustment, args) in enumerate(zip(planned, parsed, strict=True)):
        try:
            done.append(await adjustments.apply(tx, actor, adjustment.tool, args))
        except (InvalidInput, NotFound, Conflict, OperatorActRefused) as exc:
            raise type(exc)(f"adjustments[{index}] ({adjustment.tool}): {exc} Nothing was changed.") from None
    await _store_items(tx, change_set_id, done)
    return done


async def _store_items(tx: Tx, change_set_id: int, items: Sequence[Applied]) -> None:
    await tx.run_many(
        "INSERT INTO change_set_items (change_set_id, position, tool, subject, arguments, before, after) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                change_set_id,
                position,
                item.tool,
                item.subject,
                json.dumps(item.arguments),
                json.dumps(item.before),
                json.dumps(item.after),
            )
            for position, item in enumerate(items)
        ],
    )


async def record_review(
    tx: Tx, actor: Actor, *, adjustments: Sequence[Adjustment | dict[str, Any]] = (), note: str = ""
) -> ChangeSetView:
    """Record the operator's review: the accepted adjustments applied in order as one audited change set.

    An empty list records the review itself (its note, and that it happened). Any refusal refuses all.
    """
    trust.require_operator(actor, "Recording a review", REVIEW_HINT, console=True)
    text = checked_text(note, "note", MAX_NOTE, what="what you concluded")
    if not isinstance(adjustments, list | tuple) or len(adjustments) > MAX_ADJUSTMENTS:
        raise InvalidInput(f"adjustments: send a list of at most {MAX_ADJUSTMENTS} adjustments.")
    planned = [_adjustment(item, index) for index, item in enumerate(adjustments)]
    change_set_id = await _open(tx, actor, "review", text, None)
    label = ids.format_id("change_set", change_set_id)
    with audit.in_change_set(tx, label):
        done = await _apply_all(tx, actor, change_set_id, planned)
        await audit.append(
            tx, actor, "review.record", label, {"adjustments": len(done), "subjects": [item.subject for item in done]}
        )
    return await get_change_set(tx, label)


async def revert_change_set(tx: Tx, actor: Actor, change_set: str, *, note: str = "") -> ChangeSetView:
    """Undo a change set as a new one, newest change first; refused if anything it touched moved since."""
    trust.require_operator(actor, "Reverting a review", f"chief-of-staff review-revert {change_set}", console=True)
    text = checked_text(note, "note", MAX_NOTE, what="why it is undone")
    row = await _row(tx, change_set)
    label = ids.format_id("change_set", row["id"])
    if row["reverted_by"] is not None:
        by = ids.format_id("change_set", row["reverted_by"])
        raise Conflict(f"change_set: {label} was already reverted by {by}; revert that one to apply {label} again.")
    items = [_applied(item) for item in await _items(tx, row["id"])]
    revert_id = await _open(tx, actor, "revert", text, row["id"])
    revert_label = ids.format_id("change_set", revert_id)
    with audit.in_change_set(tx, revert_label):
        undone, touched = [], set()
        for item in reversed(items):
            # Only a subject's newest change in the set is checked against the state now: the older
            # ones are checked by undoing the newer, which leaves exactly their "after" in place.
            if (item.tool, item.subject) not in touched:
                await _check_unchanged(tx, item, label)
                touched.add((item.tool, item.subject))
            undo = await _undo(tx, actor, item)
            if undo is not None:
                undone.append(undo)
        await _store_items(tx, revert_id, undone)
        await tx.run("UPDATE change_sets SET reverted_by = ? WHERE id = ?", (revert_id, row["id"]))
        if row["reverts"] is not None:  # undoing a revert puts the set it undid back in effect
            await tx.run("UPDATE change_sets SET reverted_by = NULL WHERE id = ?", (row["reverts"],))
        await audit.append(tx, actor, "review.revert", revert_label, {"reverts": label, "adjustments": len(undone)})
    return await get_change_set(tx, revert_label)


async def _check_unchanged(tx: Tx, item: Applied, label: str) -> None:
    if await adjustments.state(tx, item.tool, item.subject) != item.after:
        raise Conflict(
            f"change_set: {item.subject} has changed since {label} ({item.tool}); undoing it would "
            "also undo the later change. Revert the later change set first, or adjust "
            f"{item.subject} directly."
        )


async def _undo(tx: Tx, actor: Actor, item: Applied) -> Applied | None:
    undo = adjustments.inverse(item)
    if undo is None:
        return None
    args = adjustments.parse_arguments(undo.tool, undo.arguments, "revert")
    return await adjustments.apply(tx, actor, undo.tool, args)


def _applied(row: Row) -> Applied:
    return Applied(
        row["tool"], row["subject"], json.loads(row["arguments"]), json.loads(row["before"]), json.loads(row["after"])
    )


async def _row(tx: Tx, change_set: str) -> Row:
    change_set_id = ids.parse_id("change_set", change_set, field="change_set")
    row = await tx.one("SELECT * FROM change_sets WHERE id = ?", (change_set_id,))
    if row is None:
        raise NotFound(
            f"change_set: there is no change set {ids.format_id('change_set', change_set_id)}; "
            "the review packet names the last one."
        )
    return row


async def _items(tx: Tx, change_set_id: int) -> list[Row]:
    return await tx.all("SELECT * FROM change_set_items WHERE change_set_id = ? ORDER BY position", (change_set_id,))


async def describe_revert(tx: Tx, change_set: str) -> str:
    """Every change a revert of `change_set` would undo, newest first, from the store: for a prompt."""
    view = await get_change_set(tx, change_set)
    undone = [
        f"{change.tool} {change.subject} (was {json.dumps(change.before)}, now {json.dumps(change.after)})"
        for change in reversed(view.changes)
    ]
    return f"Reverting {view.id} ({view.kind} by {view.by} via {view.channel}) undoes: " + "; ".join(undone) + "."


async def get_change_set(tx: Tx, change_set: str) -> ChangeSetView:
    """One change set with its changes."""
    row = await _row(tx, change_set)
    changes = [
        Change(
            tool=item["tool"],
            subject=item["subject"],
            arguments=json.loads(item["arguments"]),
            before=json.loads(item["before"]),
            after=json.loads(item["after"]),
        )
        for item in await _items(tx, row["id"])
    ]
    return ChangeSetView(
        id=ids.format_id("change_set", row["id"]),
        kind=row["kind"],
        note=row["note"],
        by=row["actor"],
        channel=row["channel"],
        created_at=row["created_at"],
        reverts=_label(row["reverts"]),
        reverted_by=_label(row["reverted_by"]),
        changes=changes,
    )


async def last_review(tx: Tx) -> ChangeSetView | None:
    """The newest recorded review (not a revert), if any."""
    found = await tx.scalar("SELECT max(id) FROM change_sets WHERE kind = 'review'")
    return None if found is None else await get_change_set(tx, ids.format_id("change_set", found))


async def recent(tx: Tx, limit: int) -> list[ChangeSetView]:
    """The newest change sets of any kind (reviews, reverts, approved proposals), newest first."""
    numbers = await tx.all("SELECT id FROM change_sets ORDER BY id DESC LIMIT ?", (max(limit, 0),))
    return [await get_change_set(tx, ids.format_id("change_set", row["id"])) for row in numbers]
