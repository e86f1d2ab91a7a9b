"""Completions: ids and names that start with what the client has typed so far."""

from __future__ import annotations

from chief_of_staff.core.db import Tx
from chief_of_staff.core.ids import PREFIXES, parse_id

MAX_SUGGESTIONS = 50

# Argument name -> (id kind or None for names, SQL returning candidate values newest first).
COMPLETABLE: dict[str, tuple[str | None, str]] = {
    "agency": (None, "SELECT name FROM agencies WHERE status = 'active' ORDER BY name"),
    "role": (
        None,
        "SELECT r.name FROM roles r JOIN agencies a ON a.id = r.agency_id WHERE r.status = 'active' "
        "AND (:agency = '' OR a.name = :agency COLLATE NOCASE) ORDER BY r.name",
    ),
    "goal_id": ("goal", "SELECT id FROM goals WHERE status = 'active' ORDER BY id DESC LIMIT 200"),
    "task_id": (
        "task",
        "SELECT id FROM tasks WHERE status IN ('open', 'claimed', 'blocked', 'waiting') "
        "ORDER BY priority, coalesce(due_on, '9999-12-31'), id LIMIT 200",
    ),
    "decision_id": ("decision", "SELECT id FROM decisions WHERE status = 'pending' ORDER BY id LIMIT 200"),
}


async def complete(tx: Tx, argument: str, typed: str, context: dict[str, str] | None = None) -> list[str]:
    """Values for `argument` that start with `typed` (case-insensitive); empty for unknown arguments."""
    if argument not in COMPLETABLE:
        return []
    kind, sql = COMPLETABLE[argument]
    params = {"agency": (context or {}).get("agency", "")}
    rows = await tx.all(sql, params)
    values = [f"{PREFIXES[kind]}{row[0]}" if kind else str(row[0]) for row in rows]
    wanted = typed.strip().lower()
    return [value for value in values if value.lower().startswith(wanted)][:MAX_SUGGESTIONS]


# The objects an agency token may address by id, and the table that says whose they are.
_OWNED_BY = {
    "authorization": "authorizations",
    "task": "tasks",
    "grant": "grants",
    "decision": "decisions",
    "routine": "routines",
}


async def owner(tx: Tx, kind: str, ref: str, *, field: str) -> tuple[int | None, int | None] | None:
    """The (agency id, role id) an authorization, task, grant or decision belongs to; None when there is none."""
    row = await tx.one(
        f"SELECT agency_id, role_id FROM {_OWNED_BY[kind]} WHERE id = ?", (parse_id(kind, ref, field=field),)
    )
    return None if row is None else (row["agency_id"], row["role_id"])
