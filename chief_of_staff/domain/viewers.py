"""Who is looking, and what they may see: the operator, or one agency.

The brief, the review packet, `list_decisions` and the resources are read by a viewer. The
operator's viewer ("operator") sees the whole workspace. An agency's viewer ("agency:Outbound",
or "agency:Outbound/SDR" for a role seat; an agency token always reads as its own) sees that
agency and nothing of any other:

- its goals, grants, tasks, pending decisions and outcomes, and the review's scorecards,
  anomalies and proposals whose subject is its own;
- in "since you last looked", the audit rows whose subject is one of its **work objects**: its
  tasks, authorizations, decisions, outcomes, routines and playbook lessons, whoever made the
  change. So the operator approving, denying or letting expire a decision about its request is
  seen (the subject is its decision), and so is the operator reopening or cancelling its task.

Everything else is the operator's own and never shown to an agency: workspace settings and the
chat allowance, tokens, webhooks, reviews recorded or reverted, audit repairs, and the operator's
acts of governance (creating or changing agencies, roles, goals and grants, applying a
blueprint). The agency reads the result of governance as it is now, in the goals and authority
its own brief shows; the governing events, with who made them and why, are the operator's record.

A role seat sees its whole agency: objects with no role belong to every role of the agency.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from chief_of_staff.core import ids
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.domain import agencies

OPERATOR = "operator"
AGENCY_PREFIX = "agency:"
VIEWER_HINT = (
    'send "operator" for the operator\'s view, or "agency:NAME" / "agency:NAME/ROLE" for an agency\'s own, '
    'e.g. "agency:Outbound/SDR"'
)


@dataclass(frozen=True)
class Viewer:
    """One viewer: its canonical name (the key of its "since you last looked" mark) and, for an agency, whose."""

    name: str
    agency_id: int | None = None
    agency: str | None = None
    role: str | None = None

    @property
    def is_agency(self) -> bool:
        return self.agency_id is not None

    @property
    def agency_ref(self) -> str | None:
        """The agency as the domain's functions take it ("A3"), or None for the operator."""
        return None if self.agency_id is None else ids.format_id("agency", self.agency_id)


OPERATOR_VIEWER = Viewer(OPERATOR)
# The daily brief a webhook sends reads as the operator with a cursor of its own, so sending it never
# moves the operator's mark. Built in by the server only: no tool argument names it.
WEBHOOK_VIEWER = Viewer("webhook")


def agency_viewer_name(agency: str, role: str | None) -> str:
    """The canonical viewer of an agency or role seat, as agency tokens read: "agency:Outbound/SDR"."""
    return f"{AGENCY_PREFIX}{agency}/{role}" if role else f"{AGENCY_PREFIX}{agency}"


async def resolve_viewer(tx: Tx, text: str) -> Viewer:
    """The viewer named by "operator", "agency:Outbound" or "agency:Outbound/SDR" (names or ids, any case)."""
    given = text.strip() if isinstance(text, str) else ""
    if given.casefold() == OPERATOR:
        return OPERATOR_VIEWER
    if given[: len(AGENCY_PREFIX)].casefold() != AGENCY_PREFIX:
        raise InvalidInput(f"viewer: {given!r} is not a viewer; {VIEWER_HINT}. Nothing was changed.")
    seat = given[len(AGENCY_PREFIX) :].strip()
    if not seat:
        raise InvalidInput(f"viewer: name the agency after 'agency:'; {VIEWER_HINT}.")
    agency_part, slash, role_part = seat.rpartition("/")
    # An agency whose own name holds a "/" is tried whole before the last "/" is read as a role.
    if slash and agency_part.strip() and await agencies.agency_named(tx, seat) is None:
        agency = await agencies.resolve_agency(tx, agency_part.strip(), field="viewer")
        role = await agencies.resolve_role(tx, agency["id"], role_part.strip(), field="viewer")
    else:
        agency, role = await agencies.resolve_agency(tx, seat, field="viewer"), None
    role_name = None if role is None else str(role["name"])
    return Viewer(agency_viewer_name(agency["name"], role_name), int(agency["id"]), str(agency["name"]), role_name)


# --- whose is a subject --------------------------------------------------------------------------
#
# Audit rows and review items name their subject by short id ("T42", "GR3", "KR7"). The agency a
# subject belongs to is one primary-key read of its table, written as SQL so that a whole audit
# tail or a list of subjects is judged in one statement.

_OWNER_OF = {
    "agency": "{n}",
    "role": "(SELECT agency_id FROM roles WHERE id = {n})",
    "goal": "(SELECT agency_id FROM goals WHERE id = {n})",
    "key_result": "(SELECT g.agency_id FROM key_results k JOIN goals g ON g.id = k.goal_id WHERE k.id = {n})",
    "grant": "(SELECT agency_id FROM grants WHERE id = {n})",
    "task": "(SELECT agency_id FROM tasks WHERE id = {n})",
    "authorization": "(SELECT agency_id FROM authorizations WHERE id = {n})",
    "decision": "(SELECT agency_id FROM decisions WHERE id = {n})",
    "outcome": "(SELECT agency_id FROM outcomes WHERE id = {n})",
    "routine": "(SELECT agency_id FROM routines WHERE id = {n})",
    "lesson": "(SELECT agency_id FROM lessons WHERE id = {n})",
}
# The agency's work objects: the audit rows an agency viewer sees are about these (see the module doc).
WORK_KINDS = ("task", "authorization", "decision", "outcome", "routine", "lesson")


def owner_sql(column: str, kinds: Iterable[str] = tuple(_OWNER_OF)) -> str:
    """An SQL expression: the agency id of the object whose short id is in `column`; NULL for other subjects.

    The prefixes cannot shadow each other: each pattern needs a digit right after its prefix, so "A"
    never matches "AU7" and "G" never matches "GR3".
    """
    cases = []
    for kind in kinds:
        prefix = ids.PREFIXES[kind]
        number = f"CAST(substr({column}, {len(prefix) + 1}) AS INTEGER)"
        cases.append(f"WHEN {column} GLOB '{prefix}[0-9]*' THEN {_OWNER_OF[kind].format(n=number)}")
    return f"(CASE {' '.join(cases)} END)"


_OWNERS = f"SELECT value AS subject, {owner_sql('value')} AS agency_id FROM json_each(:subjects)"


async def owners(tx: Tx, subjects: Iterable[str]) -> dict[str, int | None]:
    """The agency id of each subject (a short id such as "T42" or "GR3"), in one statement; None when none."""
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    rows = await tx.all(_OWNERS, {"subjects": json.dumps(wanted)})
    return {row["subject"]: row["agency_id"] for row in rows}
