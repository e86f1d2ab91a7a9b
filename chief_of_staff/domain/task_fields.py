"""Checks and lookups shared by tasks and routines: text sizes, priorities, and what work belongs to.

Work belongs to an agency (and maybe a role in it) and may serve a goal or one key result of it.
A key result implies its goal and a goal implies its agency, so the caller may send the most
specific one alone; sending a combination that does not fit together is an error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal, cast, get_args

from chief_of_staff.core import ids
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput
from chief_of_staff.core.fields import Priority, parse_local_date, priority_label
from chief_of_staff.domain import agencies, goals

MAX_TITLE, MAX_DETAILS = 200, 4000


@dataclass(frozen=True)
class Links:
    """What a piece of work belongs to, as row ids."""

    agency_id: int | None = None
    role_id: int | None = None
    goal_id: int | None = None
    key_result_id: int | None = None


def priority_rank(value: object) -> int:
    """ "P0".."P3" (any case) as the stored rank 0..3."""
    wanted = value.strip().upper() if isinstance(value, str) else ""
    if wanted not in get_args(Priority):
        raise InvalidInput(f"priority: {value!r} is not a priority; send P0 (urgent), P1, P2 (normal) or P3.")
    return int(wanted[1])


def label(rank: int) -> Priority:
    return cast(Priority, priority_label(rank))


def whole_number(value: object, field: str, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field}: send a whole number of {what} from {low} to {high}, not {value!r}.")
    return value


def due_text(value: object, field: str = "due_on") -> str | None:
    """A local calendar date as stored (YYYY-MM-DD), or None."""
    return None if value is None else parse_local_date(value, field).isoformat()


async def resolve_links(
    tx: Tx, agency: str | None, role: str | None, goal: str | None, key_result: str | None, *, new_work: bool = True
) -> Links:
    """Resolve references to ids, checking they fit together; `new_work` also refuses a retired agency."""
    agency_id = None if agency is None else int((await agencies.resolve_agency(tx, agency))["id"])
    goal_row = None if goal is None else await goals.resolve_goal(tx, goal)
    goal_id = None if goal_row is None else int(goal_row["id"])
    kr_id = None
    if key_result is not None:
        # A metric name ("emails sent") is looked up within the agency the work belongs to.
        scope = agency_id if agency_id is not None or goal_row is None else int(goal_row["agency_id"])
        kr = await goals.resolve_key_result(tx, key_result, agency_id=scope)
        kr_id = int(kr["id"])
        if goal_id is not None and kr["goal_id"] != goal_id:
            raise InvalidInput(
                f"key_result: {ids.format_id('key_result', kr_id)} belongs to goal "
                f"{ids.format_id('goal', kr['goal_id'])}, not {ids.format_id('goal', goal_id)}; "
                "send the matching goal, or leave goal out (the key result implies it)."
            )
        goal_id = int(kr["goal_id"])
    if goal_id is not None:
        agency_id = await _agency_of_goal(tx, goal_id, agency_id)
    if new_work and agency_id is not None:
        await _refuse_retired(tx, agency_id)
    return Links(agency_id, await _role_id(tx, agency_id, role), goal_id, kr_id)


async def _agency_of_goal(tx: Tx, goal_id: int, agency_id: int | None) -> int:
    owner = int(await tx.scalar("SELECT agency_id FROM goals WHERE id = ?", (goal_id,)))
    if agency_id is not None and owner != agency_id:
        raise InvalidInput(
            f"goal: {ids.format_id('goal', goal_id)} belongs to agency {await agencies.agency_name(tx, owner)}, "
            f"not {await agencies.agency_name(tx, agency_id)}; send that agency, or leave agency out "
            "(the goal implies it)."
        )
    return owner


async def _refuse_retired(tx: Tx, agency_id: int) -> None:
    row = await tx.one("SELECT name, status FROM agencies WHERE id = ?", (agency_id,))
    if row is not None and row["status"] != "active":
        raise Conflict(
            f"agency: {row['name']} is retired and takes no new work; reactivate it (set_agency "
            "status='active', or `chief-of-staff agency reactivate NAME`), or give the work to an active agency."
        )


async def _role_id(tx: Tx, agency_id: int | None, role: str | None) -> int | None:
    if role is None:
        return None
    if agency_id is None:
        raise InvalidInput(
            'role: a role belongs to an agency; send the agency too, e.g. agency="Outbound", role="SDR".'
        )
    row = await agencies.resolve_role(tx, agency_id, role)
    return None if row is None else int(row["id"])


def iso_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


# --- moving existing work ------------------------------------------------------------------------


class Keep(enum.Enum):
    """A link left as it is, where None would clear it."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
# A link as a change takes it: KEEP leaves it, None clears it, a reference sets it.
LinkChange = str | None | Literal[Keep.KEEP]


async def relink(
    tx: Tx,
    row: Row,
    what: str,
    *,
    agency: LinkChange = KEEP,
    role: LinkChange = KEEP,
    goal: LinkChange = KEEP,
    key_result: LinkChange = KEEP,
) -> Links:
    """The links of existing work (a tasks or routines row, `what` names it) after a change.

    As for new work, a key result implies its goal and a goal its agency: sending a key result alone
    moves the goal with it, and sending a goal alone keeps the key result only if it serves that goal.
    Moving to another agency takes the role, goal and key result of that agency (or None to clear
    them): the old ones belong to the old agency and are never carried over silently.
    """
    agency_id = row["agency_id"] if agency is KEEP else await _agency_id(tx, agency)
    kr_row = None if key_result is KEEP or key_result is None else await _key_result(tx, key_result, agency_id)
    kr_id = row["key_result_id"] if key_result is KEEP else (None if kr_row is None else int(kr_row["id"]))
    goal_id = await _new_goal(tx, row, goal, kr_row)
    if goal is not KEEP and key_result is KEEP and kr_id is not None:
        kr_goal = await tx.scalar("SELECT goal_id FROM key_results WHERE id = ?", (kr_id,))
        kr_id = kr_id if kr_goal == goal_id else None  # a new goal drops a key result of another goal
    if goal_id is not None:
        owner = int(await tx.scalar("SELECT agency_id FROM goals WHERE id = ?", (goal_id,)))
        if agency is KEEP:
            agency_id = owner  # the goal (or key result) sent implies its agency
        elif owner != agency_id:
            await _refuse_carried(tx, what, "goal_id", ids.format_id("goal", goal_id), owner, agency_id)
    moved = agency_id != row["agency_id"]
    if role is KEEP and moved and row["role_id"] is not None:
        await _refuse_carried(tx, what, "role", ids.format_id("role", row["role_id"]), row["agency_id"], agency_id)
    role_id = row["role_id"] if role is KEEP else await _role_id(tx, agency_id, role)
    if moved and agency_id is not None:
        await _refuse_retired(tx, agency_id)
    return Links(agency_id, role_id, goal_id, kr_id)


async def _agency_id(tx: Tx, agency: str | None) -> int | None:
    return None if agency is None else int((await agencies.resolve_agency(tx, agency))["id"])


async def _key_result(tx: Tx, ref: str, agency_id: int | None) -> Row:
    return await goals.resolve_key_result(tx, ref, agency_id=agency_id, field="key_result_id")


async def _new_goal(tx: Tx, row: Row, goal: LinkChange, kr_row: Row | None) -> int | None:
    goal_id = (
        row["goal_id"] if goal is KEEP else (None if goal is None else int((await goals.resolve_goal(tx, goal))["id"]))
    )
    if kr_row is None:
        return goal_id
    if goal is not KEEP and goal_id is not None and goal_id != kr_row["goal_id"]:
        raise InvalidInput(
            f"key_result_id: {ids.format_id('key_result', kr_row['id'])} belongs to goal "
            f"{ids.format_id('goal', kr_row['goal_id'])}, not {ids.format_id('goal', goal_id)}; send the "
            "matching goal, or leave goal_id out (the key result implies it)."
        )
    return int(kr_row["goal_id"])


async def _refuse_carried(tx: Tx, what: str, field: str, label: str, owner: int | None, agency_id: int | None) -> None:
    old = "no agency" if owner is None else await agencies.agency_name(tx, owner)
    new = "no agency" if agency_id is None else await agencies.agency_name(tx, agency_id)
    raise InvalidInput(
        f"{field}: {what} has {label}, which belongs to {old}; moving it to {new}, send a {field} of {new} "
        "as well, or null to clear it."
    )
