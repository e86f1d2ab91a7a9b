"""The audit log: append-only and hash-chained, one row per change, in the change's own transaction.

Each row's hash covers the previous row's hash and the row's own fields, so a
changed, deleted, inserted or reordered row breaks the chain from that point on.
Appends happen inside BEGIN IMMEDIATE, so two writers can never read the same
head and fork the chain. Deleting or re-signing the last rows leaves a chain that
still verifies; chief_of_staff.core.anchor catches that against a head exported elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the store imports this module's neighbour, the anchor, which reads the chain
    from chief_of_staff.core.db import Row, Tx

GENESIS = "0" * 64
Channel = Literal["verified", "chat", "agency", "system"]


@dataclass(frozen=True)
class Actor:
    """Who made a change and through which channel (design brief, Trust)."""

    name: str
    channel: Channel

    @property
    def is_operator(self) -> bool:
        return self.channel in ("verified", "chat")


OPERATOR_CLI = Actor("operator", "verified")
SYSTEM = Actor("system", "system")


def canonical(detail: dict[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(
    prev_hash: str, row_id: int, at: str, actor: str, channel: str, action: str, subject: str, detail: str
) -> str:
    material = json.dumps(
        [prev_hash, row_id, at, actor, channel, action, subject, detail], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


# The Tx memo key under which a change set's label rides along to every audit row of the unit.
_CHANGE_SET = "audit.change_set"


@contextmanager
def in_change_set(tx: Tx, label: str) -> Iterator[None]:
    """Inside the block, every audit row of this unit is marked as part of change set `label`.

    A recorded review is many changes made by their own functions; each of their rows carries the
    set's label in its detail, so the audit shows which rows one review (or one revert) wrote.
    """
    tx.memo[_CHANGE_SET] = label
    try:
        yield
    finally:
        tx.memo.pop(_CHANGE_SET, None)


async def append(tx: Tx, actor: Actor, action: str, subject: str = "", detail: dict[str, Any] | None = None) -> int:
    """Append one row to the chain inside the caller's write transaction; returns its id."""
    if _CHANGE_SET in tx.memo:
        detail = {**(detail or {}), "change_set": tx.memo[_CHANGE_SET]}
    head = await tx.one("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    prev_hash, row_id = (GENESIS, 1) if head is None else (head["hash"], head["id"] + 1)
    if tx.audit_base is None:  # the head this unit builds on: the store checks it against its anchor
        tx.audit_base = (row_id - 1, prev_hash)
    detail_text = canonical(detail or {})
    digest = row_hash(prev_hash, row_id, tx.now_text, actor.name, actor.channel, action, subject, detail_text)
    await tx.run(
        "INSERT INTO audit_log (id, at, actor, channel, action, subject, detail, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row_id, tx.now_text, actor.name, actor.channel, action, subject, detail_text, prev_hash, digest),
    )
    tx.audit_head = (row_id, digest)
    return row_id


@dataclass(frozen=True)
class AuditRow:
    """One row of the log as the operator reads it: when, who, on which channel, what, and its detail (JSON)."""

    id: int
    at: str
    actor: str
    channel: str
    action: str
    subject: str
    detail: str


async def newest_rows(tx: Tx, *, before: int | None = None, limit: int = 50) -> list[AuditRow]:
    """The newest rows, newest first; `before` (a row id) pages back from there. Read by the primary key."""
    rows = await tx.all(
        "SELECT id, at, actor, channel, action, subject, detail FROM audit_log "
        + ("" if before is None else "WHERE id < ? ")
        + "ORDER BY id DESC LIMIT ?",
        (limit,) if before is None else (before, limit),
    )
    return [AuditRow(**dict(row)) for row in rows]


async def head_id(tx: Tx) -> int:
    """The newest row's id (0 for an empty log)."""
    return int(await tx.scalar("SELECT coalesce(max(id), 0) FROM audit_log"))


@dataclass(frozen=True)
class ChainReport:
    """What a walk of the chain found: rows checked, the last good row, and the first bad one if any."""

    rows: int
    head_id: int
    head_hash: str
    first_bad_id: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


def _recomputed(row: Row) -> str | None:
    # A value of the wrong type (a blob, a number) planted in the file cannot hash to the stored value.
    fields = (row["prev_hash"], row["at"], row["actor"], row["channel"], row["action"], row["subject"], row["detail"])
    if not all(isinstance(value, str) for value in fields):
        return None
    return row_hash(
        row["prev_hash"],
        row["id"],
        row["at"],
        row["actor"],
        row["channel"],
        row["action"],
        row["subject"],
        row["detail"],
    )


def _check_row(row: Row, expected_prev: str, expected_id: int) -> str | None:
    if row["id"] > expected_id:
        return f"row {expected_id} is missing (next row is {row['id']})"
    if row["id"] < expected_id:
        return f"row {row['id']} was inserted out of sequence (expected row {expected_id} next)"
    if row["prev_hash"] != expected_prev:
        return f"row {row['id']} does not link to the row before it"
    if _recomputed(row) != row["hash"]:
        return f"row {row['id']} was altered after it was written"
    return None


async def verify_chain(tx: Tx, batch: int = 5000, *, after: tuple[int, str] | None = None) -> ChainReport:
    """Recompute the chain from the first row; name the first row that does not hold.

    `after=(row_id, hash)` starts from a row already vouched for (an anchor) instead of
    the genesis, checking only the rows that follow it. `rows` counts the rows checked.
    """
    seen: int | None = None if after is None else after[0]
    expected_id, expected_prev = (1, GENESIS) if after is None else (after[0] + 1, after[1])
    rows = 0
    while True:
        # The first page has no lower bound, so a row planted below id 1 is seen, not skipped.
        page = await tx.all(
            "SELECT id, at, actor, channel, action, subject, detail, prev_hash, hash FROM audit_log "
            + ("" if seen is None else "WHERE id > ? ")
            + "ORDER BY id LIMIT ?",
            (batch,) if seen is None else (seen, batch),
        )
        if not page:
            return ChainReport(rows, expected_id - 1, expected_prev, None, None)
        for row in page:
            problem = _check_row(row, expected_prev, expected_id)
            if problem is not None:
                return ChainReport(rows, expected_id - 1, expected_prev, min(row["id"], expected_id), problem)
            expected_prev, expected_id, rows = row["hash"], row["id"] + 1, rows + 1
        seen = page[-1]["id"]
