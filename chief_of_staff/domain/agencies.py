"""The roster: agencies (business functions), their roles (agent seats) and their playbooks.

Agencies and roles are referred to by id ("A1", "R2") or by name, case-insensitively; a role
name is looked up within its agency. Changing the roster is an operator act. Adding a lesson
to a playbook is not: the agency records what it learns as it works.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Literal, get_args

from chief_of_staff.core import audit, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import local_minute, parse_ts
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import Model, checked_text, name_key, name_text
from chief_of_staff.domain import trust

Status = Literal["active", "retired"]
# How the roster shows an agency: a paused one is active on the roster, with a stop put on it.
AgencyStatus = Literal["active", "paused", "retired"]
LessonKind = Literal["works", "breaks", "note"]
LessonSource = Literal["blueprint", "outcome", "review", "operator", "agency"]

MAX_NAME = 80
MAX_PURPOSE = 4000
MAX_SPEC = 20_000
MAX_CHARTER = 4000
MAX_LESSON = 2000
MAX_PLAYBOOK_PAGE = 200
MAX_PAUSE_NOTE = 500
# How many known names an error message lists before it says "and N more".
NAMES_IN_ERRORS = 20
CREATE_HINT = "chief-of-staff agency set NAME --purpose TEXT"


class RoleView(Model):
    id: str
    agency: str
    name: str
    charter: str
    status: Status


class AgencyView(Model):
    id: str
    name: str
    purpose: str
    operating_spec: str
    status: AgencyStatus
    # While paused: when, on which channel (who may resume it depends on it), and the note given.
    paused_at: str | None
    paused_by: str | None
    pause_note: str
    roles: list[RoleView]
    playbook_size: int


class LessonView(Model):
    id: str
    agency: str
    kind: LessonKind
    text: str
    source: LessonSource
    created_at: str


class RosterView(Model):
    agencies: list[AgencyView]


# --- lookups -------------------------------------------------------------------------------------


def _looks_like_id(kind: str, text: str) -> bool:
    return re.fullmatch(rf"\s*{ids.PREFIXES[kind]}?\s*\d+\s*", text, re.IGNORECASE) is not None


def _require_ref(ref: object, field: str, example: str) -> str:
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"{field}: send a name or an id, e.g. {example}.")
    return _plain_name(ref, field)


def _plain_name(value: str, field: str) -> str:
    """The name as stored and looked up: NFKC, one space between words, nothing invisible."""
    try:
        return name_text(value)
    except ValueError as error:
        raise InvalidInput(f"{field}: {error}.") from None


async def agency_named(tx: Tx, name: str) -> Row | None:
    """The agency whose name is `name` compared as names are (NFKC, any case), or None.

    The unique index answers for ASCII case; the scan (agencies are few) covers other scripts' case
    and rows stored before names were normalised.
    """
    row = await tx.one("SELECT * FROM agencies WHERE name = ?", (name,))
    if row is None:
        key = name_key(name)
        row = next((r for r in await tx.all("SELECT * FROM agencies ORDER BY id") if name_key(r["name"]) == key), None)
    return row


async def role_named(tx: Tx, agency_id: int, name: str) -> Row | None:
    """The agency's role whose name is `name` compared as names are (NFKC, any case), or None."""
    row = await tx.one("SELECT * FROM roles WHERE agency_id = ? AND name = ?", (agency_id, name))
    if row is None:
        key = name_key(name)
        rows = await tx.all("SELECT * FROM roles WHERE agency_id = ? ORDER BY id", (agency_id,))
        row = next((r for r in rows if name_key(r["name"]) == key), None)
    return row


def _known(rows: list[Row], kind: str) -> str:
    if not rows:
        return "none yet"
    shown = ", ".join(f"{r['name']} ({ids.format_id(kind, r['id'])})" for r in rows[:NAMES_IN_ERRORS])
    extra = len(rows) - NAMES_IN_ERRORS
    return shown + (f" and {extra} more" if extra > 0 else "")


async def resolve_agency(tx: Tx, ref: str, *, field: str = "agency") -> Row:
    """The agencies row for "A1" or a name (any case); NotFound lists the agencies there are."""
    text = _require_ref(ref, field, '"Outbound" or "A1"')
    if _looks_like_id("agency", text):
        number = ids.parse_id("agency", text, field=field)
        row = await tx.one("SELECT * FROM agencies WHERE id = ?", (number,))
    else:
        row = await agency_named(tx, text)
    if row is not None:
        return row
    known = await tx.all("SELECT id, name FROM agencies ORDER BY id LIMIT ?", (NAMES_IN_ERRORS + 1,))
    raise NotFound(
        f"{field}: there is no agency {text!r}. Known agencies: {_known(known, 'agency')}. Call roster to see them."
    )


async def resolve_role(tx: Tx, agency_id: int, ref: str | None, *, field: str = "role") -> Row | None:
    """The roles row for "R2" or a role name within the agency; None when no role was given."""
    if ref is None:
        return None
    text = _require_ref(ref, field, '"SDR" or "R2"')
    if _looks_like_id("role", text):
        number = ids.parse_id("role", text, field=field)
        row = await tx.one("SELECT * FROM roles WHERE id = ? AND agency_id = ?", (number, agency_id))
    else:
        row = await role_named(tx, agency_id, text)
    if row is not None:
        return row
    known = await tx.all(
        "SELECT id, name FROM roles WHERE agency_id = ? ORDER BY id LIMIT ?", (agency_id, NAMES_IN_ERRORS + 1)
    )
    agency = await agency_name(tx, agency_id)
    raise NotFound(
        f"{field}: agency {agency} has no role {text!r}. Its roles: {_known(known, 'role')}. "
        "Call roster to see every agency's roles."
    )


async def agency_name(tx: Tx, agency_id: int) -> str:
    """The display name of an agency id (for views built from rows that carry only the id)."""
    name = await tx.scalar("SELECT name FROM agencies WHERE id = ?", (agency_id,))
    return str(name) if name is not None else ids.format_id("agency", agency_id)


# --- validation ----------------------------------------------------------------------------------


def _name(value: object, field: str, kind: str, example: str) -> str:
    text = _plain_name(
        checked_text(value, field, MAX_NAME, required=True, what=f"a short name such as {example!r}"), field
    )
    if not text or len(text) > MAX_NAME:
        raise InvalidInput(f"{field}: send a short name of 1 to {MAX_NAME} characters, such as {example!r}.")
    if _looks_like_id(kind, text):
        raise InvalidInput(f"{field}: {text!r} reads like an id; send a name with letters, e.g. {example!r}.")
    return text


def _status(value: object, field: str = "status") -> Status:
    if value not in get_args(Status):
        raise InvalidInput(f"{field}: {value!r} is not a status; send 'active' or 'retired'.")
    return value  # type: ignore[return-value]


# --- views ---------------------------------------------------------------------------------------


def _role_view(row: Row, agency: str) -> RoleView:
    return RoleView(
        id=ids.format_id("role", row["id"]),
        agency=agency,
        name=row["name"],
        charter=row["charter"],
        status=row["status"],
    )


async def _agency_view(tx: Tx, row: Row) -> AgencyView:
    roles = await tx.all("SELECT * FROM roles WHERE agency_id = ? ORDER BY id", (row["id"],))
    size = await tx.scalar("SELECT count(*) FROM lessons WHERE agency_id = ? AND removed_at IS NULL", (row["id"],))
    return AgencyView(
        id=ids.format_id("agency", row["id"]),
        name=row["name"],
        purpose=row["purpose"],
        operating_spec=row["operating_spec"],
        status="paused" if is_paused(row) else row["status"],
        paused_at=row["paused_at"] if is_paused(row) else None,
        paused_by=row["paused_by"] if is_paused(row) else None,
        pause_note=row["pause_note"] if is_paused(row) else "",
        roles=[_role_view(r, row["name"]) for r in roles],
        playbook_size=int(size or 0),
    )


def lesson_view(row: Row, agency: str) -> LessonView:
    """A lessons row as the wire sees it."""
    return LessonView(
        id=ids.format_id("lesson", row["id"]),
        agency=agency,
        kind=row["kind"],
        text=row["text"],
        source=row["source"],
        created_at=row["created_at"],
    )


# --- the roster ----------------------------------------------------------------------------------


async def create_agency(
    tx: Tx, actor: Actor, *, name: str, purpose: str, operating_spec: str = "", blueprint: str | None = None
) -> AgencyView:
    """Add an agency to the roster (operator-only). Conflict if the name is taken in any case."""
    trust.require_operator(actor, "Creating an agency", CREATE_HINT)
    name = _name(name, "name", "agency", "Outbound")
    purpose = checked_text(purpose, "purpose", MAX_PURPOSE, required=True, what="what this agency is for")
    spec = checked_text(operating_spec, "operating_spec", MAX_SPEC, required=False, what="the operating spec")
    taken = await agency_named(tx, name)
    if taken is not None:
        short = ids.format_id("agency", taken["id"])
        raise Conflict(
            f"name: agency {taken['name']} ({short}) already exists; pick another name, or change "
            "it with set_agency (`chief-of-staff agency set NAME`)."
        )
    agency_id = await tx.run(
        "INSERT INTO agencies (name, purpose, operating_spec, blueprint, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (name, purpose, spec, blueprint, tx.now_text, tx.now_text),
    )
    short = ids.format_id("agency", agency_id)
    await audit.append(tx, actor, "agency.create", short, {"name": name, "blueprint": blueprint})
    return await _agency_view(tx, await resolve_agency(tx, short))


def _refuse_reactivation_in_chat(actor: Actor, act: str, command: str) -> None:
    """Bringing a retired agency or role back brings back every grant it held: a widening chat never makes."""
    trust.refuse_in_chat(actor, act, "it brings back every grant it held", command, console=True)


def _role_command(agency: str, role: str, *, reactivate: bool = False) -> str:
    option = "--status active" if reactivate else "--charter TEXT"
    return f"chief-of-staff role set --agency {shlex.quote(agency)} --name {shlex.quote(role)} " + option


async def update_agency(
    tx: Tx,
    actor: Actor,
    agency: str,
    *,
    purpose: str | None = None,
    operating_spec: str | None = None,
    status: str | None = None,
) -> AgencyView:
    """Change an agency's purpose, operating spec or status (operator-only)."""
    row = await resolve_agency(tx, agency)
    trust.require_operator(actor, "Changing an agency", f"chief-of-staff agency set {shlex.quote(row['name'])}")
    changes: dict[str, str] = {}
    if purpose is not None:
        changes["purpose"] = checked_text(purpose, "purpose", MAX_PURPOSE, required=True, what="the agency's purpose")
    if operating_spec is not None:
        changes["operating_spec"] = checked_text(
            operating_spec, "operating_spec", MAX_SPEC, required=False, what="the operating spec"
        )
    if status is not None:
        changes["status"] = _status(status)
        if changes["status"] == "active" and row["status"] != "active":
            command = f"chief-of-staff agency reactivate {shlex.quote(row['name'])}"
            _refuse_reactivation_in_chat(actor, f"Reactivating the agency {row['name']}", command)
    if not changes:
        raise InvalidInput("Nothing to change: send purpose, operating_spec or status.")
    assignments = ", ".join(f"{column} = ?" for column in changes)
    await tx.run(
        f"UPDATE agencies SET {assignments}, updated_at = ? WHERE id = ?", (*changes.values(), tx.now_text, row["id"])
    )
    short = ids.format_id("agency", row["id"])
    detail: dict[str, object] = {"changed": sorted(changes)}
    if "status" in changes:
        detail["status"] = changes["status"]
    await audit.append(tx, actor, "agency.update", short, detail)
    return await _agency_view(tx, await resolve_agency(tx, short))


async def set_role(
    tx: Tx, actor: Actor, *, agency: str, name: str, charter: str | None = None, status: str | None = None
) -> RoleView:
    """Create a role in an agency, or change an existing role's charter or status (operator-only)."""
    agency_row = await resolve_agency(tx, agency)
    trust.require_operator(actor, "Changing an agency's roles", _role_command(agency_row["name"], str(name)))
    role_name_text = _name(name, "name", "role", "SDR")
    new_charter = (
        None
        if charter is None
        else checked_text(charter, "charter", MAX_CHARTER, required=True, what="what this role does")
    )
    new_status = None if status is None else _status(status)
    existing = await role_named(tx, agency_row["id"], role_name_text)
    if existing is None:
        role_id = await _create_role(tx, actor, agency_row, role_name_text, new_charter, new_status)
    else:
        role_id = await _update_role(tx, actor, existing, new_charter, new_status)
    row = await tx.one("SELECT * FROM roles WHERE id = ?", (role_id,))
    assert row is not None
    return _role_view(row, agency_row["name"])


async def _create_role(
    tx: Tx, actor: Actor, agency_row: Row, name: str, charter: str | None, status: Status | None
) -> int:
    if charter is None:
        raise InvalidInput(
            f"charter: {name!r} is a new role in {agency_row['name']}; send its charter (what this seat does and how)."
        )
    if agency_row["status"] != "active":
        raise Conflict(
            f"agency: {agency_row['name']} is retired; reactivate it (set_agency status='active', or "
            f"`chief-of-staff agency reactivate {shlex.quote(agency_row['name'])}`) before adding roles."
        )
    role_id = await tx.run(
        "INSERT INTO roles (agency_id, name, charter, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        (agency_row["id"], name, charter, status or "active", tx.now_text, tx.now_text),
    )
    await audit.append(
        tx,
        actor,
        "role.create",
        ids.format_id("role", role_id),
        {"agency": ids.format_id("agency", agency_row["id"]), "name": name},
    )
    return role_id


async def _update_role(tx: Tx, actor: Actor, row: Row, charter: str | None, status: Status | None) -> int:
    if charter is None and status is None:
        raise InvalidInput(f"Nothing to change: role {row['name']} exists; send a new charter or status.")
    if status == "active" and row["status"] != "active":
        agency = await agency_name(tx, row["agency_id"])
        command = _role_command(agency, row["name"], reactivate=True)
        _refuse_reactivation_in_chat(actor, f"Reactivating the role {row['name']}", command)
    await tx.run(
        "UPDATE roles SET charter = coalesce(?, charter), status = coalesce(?, status), updated_at = ? WHERE id = ?",
        (charter, status, tx.now_text, row["id"]),
    )
    detail: dict[str, object] = {"changed": [k for k, v in (("charter", charter), ("status", status)) if v]}
    if status is not None:
        detail["status"] = status
    await audit.append(tx, actor, "role.update", ids.format_id("role", row["id"]), detail)
    return int(row["id"])


async def get_agency(tx: Tx, agency: str) -> AgencyView:
    """One agency by name or id, as the roster shows it."""
    return await _agency_view(tx, await resolve_agency(tx, agency))


async def roster(tx: Tx) -> RosterView:
    """Every agency with its purpose, operating spec, roles and playbook size."""
    rows = await tx.all("SELECT * FROM agencies ORDER BY id")
    return RosterView(agencies=[await _agency_view(tx, row) for row in rows])


# --- pausing -------------------------------------------------------------------------------------
#
# A pause stops an agency without changing its roster: nothing is claimed for it (claim_next_task skips
# its tasks) and nothing is allowed (authorize answers denied), until it is resumed. Pausing only narrows,
# so the agency may pause itself, as the operator may. Resuming gives back what its grants allowed, so it
# is an operator act; and a pause is lifted only on a channel at least as trusted as the one that made it:
# chat may lift a pause the agency or chat made (it restores no more than verified grants allowed before),
# never one the operator made on a verified channel, whose stop the model's word must not undo.

# How trusted each channel is, for lifting a pause: a pause is lifted only from the same rank or higher.
_PAUSE_RANK = {"agency": 0, "system": 0, "chat": 1, "verified": 2}


def is_paused(row: Row) -> bool:
    """Whether an agencies row is paused (a retired agency is retired, whatever pause it carries)."""
    return row["paused_at"] is not None and row["status"] == "active"


def resume_command(name: str) -> str:
    return f"chief-of-staff agency resume {shlex.quote(name)}"


def who_resumes(row: Row) -> str:
    """Who may lift this agency's pause, and how: for every message that meets the pause."""
    command = resume_command(row["name"])
    if row["paused_by"] == "verified":
        return f"Only the operator can resume it, on a verified channel: `{command}`, {trust.IN_CONSOLE}."
    return (
        f'The operator can resume it: in chat (set_agency name={json.dumps(row["name"])} status="active" '
        f"confirm=true), from a terminal: `{command}`, {trust.IN_CONSOLE}."
    )


# Who made a pause, as a sentence about it says so.
PAUSED_BY = {
    "agency": "by the agency itself",
    "system": "by the server",
    "chat": "from chat",
    "verified": "by the operator on a verified channel",
}


async def paused_lines(tx: Tx, timezone: str, *, agency_id: int | None = None) -> list[str]:
    """A sentence per paused agency (or only `agency_id`'s): since when, by whom, why, and who may resume it.

    A pause stops all of an agency's work without a word anywhere else, so the brief says it every time.
    """
    rows = await tx.all(
        "SELECT * FROM agencies WHERE paused_at IS NOT NULL AND status = 'active' "
        "AND (:agency IS NULL OR id = :agency) ORDER BY id",
        {"agency": agency_id},
    )
    lines = []
    for row in rows:
        since = local_minute(parse_ts(row["paused_at"]), timezone)
        by = PAUSED_BY.get(str(row["paused_by"]), f"on the {row['paused_by']} channel")
        note = f' ("{row["pause_note"]}")' if row["pause_note"] else ""
        lines.append(
            f"{row['name']} is paused since {since}, {by}{note}: nothing is claimed or allowed for it. "
            + who_resumes(row)
        )
    return lines


def paused_reason(row: Row, what: str) -> str | None:
    """Why nothing is `what` (claimed, allowed) for a paused agency; None when it is not paused."""
    if not is_paused(row):
        return None
    note = f' ("{row["pause_note"]}")' if row["pause_note"] else ""
    return f"{row['name']} is paused{note}, so nothing is {what} for it. {who_resumes(row)}"


async def pause_agency(tx: Tx, actor: Actor, agency: str, *, note: str = "") -> AgencyView:
    """Stop an agency: nothing claimed, nothing allowed, until it is resumed. Any channel may pause.

    Pausing again keeps the first pause's time; a pause made on a more trusted channel takes over the
    record, so only that channel (or a higher one) can lift it.
    """
    row = await resolve_agency(tx, agency)
    text = checked_text(note, "note", MAX_PAUSE_NOTE, what="why it is paused")
    if row["status"] != "active":
        raise Conflict(f"agency: {row['name']} is retired, so nothing is claimed or allowed for it already.")
    rank = _PAUSE_RANK[actor.channel]
    held = None if row["paused_at"] is None else _PAUSE_RANK[str(row["paused_by"])]
    if held is not None and (rank < held or (rank == held and text in ("", row["pause_note"]))):
        return await _agency_view(tx, row)  # paused already, by this channel or a more trusted one
    await tx.run(
        "UPDATE agencies SET paused_at = coalesce(paused_at, :now), paused_by = :by, pause_note = :note, "
        "updated_at = :now WHERE id = :id",
        {"now": tx.now_text, "by": actor.channel, "note": text or row["pause_note"], "id": row["id"]},
    )
    detail = {"paused_by": actor.channel, **({"note": text} if text else {})}
    await audit.append(tx, actor, "agency.pause", ids.format_id("agency", row["id"]), detail)
    return await _agency_view(tx, await resolve_agency(tx, ids.format_id("agency", row["id"])))


async def resume_agency(tx: Tx, actor: Actor, agency: str) -> AgencyView:
    """Lift an agency's pause (an operator act, on a channel at least as trusted as the pause's)."""
    row = await resolve_agency(tx, agency)
    act, command = f"Resuming the agency {row['name']}", resume_command(row["name"])
    trust.require_operator(actor, act, command, console=True)
    if row["paused_at"] is None:
        return await _agency_view(tx, row)
    if _PAUSE_RANK[actor.channel] < _PAUSE_RANK[str(row["paused_by"])]:
        trust.refuse_in_chat(
            actor,
            act,
            "the operator paused it on a verified channel, and only that channel lifts their stop",
            command,
            console=True,
        )
    await tx.run(
        "UPDATE agencies SET paused_at = NULL, paused_by = NULL, pause_note = '', updated_at = ? WHERE id = ?",
        (tx.now_text, row["id"]),
    )
    short = ids.format_id("agency", row["id"])
    await audit.append(
        tx, actor, "agency.resume", short, {"paused_by": row["paused_by"], "paused_at": row["paused_at"]}
    )
    return await _agency_view(tx, await resolve_agency(tx, short))


# --- the playbook --------------------------------------------------------------------------------


def _lesson_fields(kind: object, text: object, source: object) -> tuple[str, str, str]:
    if kind not in get_args(LessonKind):
        raise InvalidInput(f"kind: {kind!r} is not a lesson kind; send 'works', 'breaks' or 'note'.")
    if source not in get_args(LessonSource):
        raise InvalidInput(
            f"source: {source!r} is not a lesson source; send one of {', '.join(get_args(LessonSource))}."
        )
    body = checked_text(text, "lesson", MAX_LESSON, required=True, what="the lesson in a sentence or two")
    return str(kind), body, str(source)


async def insert_lesson(
    tx: Tx, *, agency_id: int, kind: str, text: str, source: str, outcome_id: int | None = None
) -> int:
    """Write a lesson row without an audit row of its own (for changes that audit it themselves)."""
    kind, body, source = _lesson_fields(kind, text, source)
    return await tx.run(
        "INSERT INTO lessons (agency_id, kind, text, source, outcome_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (agency_id, kind, body, source, outcome_id, tx.now_text),
    )


async def add_lesson(
    tx: Tx, actor: Actor, *, agency_id: int, kind: str, text: str, source: str, outcome_id: int | None = None
) -> LessonView:
    """Add a lesson (what works, what breaks, a note) to an agency's playbook."""
    name = await tx.scalar("SELECT name FROM agencies WHERE id = ?", (agency_id,))
    if name is None:
        raise NotFound(f"agency: there is no agency {ids.format_id('agency', agency_id)}. Call roster.")
    lesson_id = await insert_lesson(tx, agency_id=agency_id, kind=kind, text=text, source=source, outcome_id=outcome_id)
    short = ids.format_id("lesson", lesson_id)
    await audit.append(
        tx, actor, "lesson.add", short, {"agency": ids.format_id("agency", agency_id), "kind": kind, "source": source}
    )
    row = await tx.one("SELECT * FROM lessons WHERE id = ?", (lesson_id,))
    assert row is not None
    return lesson_view(row, str(name))


async def set_lesson_active(tx: Tx, actor: Actor, lesson: str, *, active: bool) -> None:
    """Take a lesson out of the playbook, or put it back as it was (its row and id are kept)."""
    lesson_id = ids.parse_id("lesson", lesson, field="lesson_id")
    row = await tx.one("SELECT * FROM lessons WHERE id = ?", (lesson_id,))
    if row is None:
        raise NotFound(
            f"lesson_id: there is no lesson {ids.format_id('lesson', lesson_id)}; "
            "the agency resource lists its playbook."
        )
    if (row["removed_at"] is None) == active:
        return
    await tx.run("UPDATE lessons SET removed_at = ? WHERE id = ?", (None if active else tx.now_text, lesson_id))
    await audit.append(
        tx,
        actor,
        "lesson.restore" if active else "lesson.remove",
        ids.format_id("lesson", lesson_id),
        {"agency": ids.format_id("agency", row["agency_id"]), "kind": row["kind"]},
    )


async def playbook(tx: Tx, agency: str, *, limit: int = 20) -> list[LessonView]:
    """An agency's lessons, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PLAYBOOK_PAGE:
        raise InvalidInput(f"limit: send a whole number from 1 to {MAX_PLAYBOOK_PAGE}.")
    row = await resolve_agency(tx, agency)
    lessons = await tx.all(
        "SELECT * FROM lessons WHERE agency_id = ? AND removed_at IS NULL ORDER BY id DESC LIMIT ?", (row["id"], limit)
    )
    return [lesson_view(lesson, row["name"]) for lesson in lessons]


async def playbook_digest(tx: Tx, agency: str, *, limit: int = 8) -> str:
    """The agency's newest lessons as markdown for a work session: what breaks first, then what works."""
    lessons = await playbook(tx, agency, limit=limit)
    if not lessons:
        return "   - (no lessons yet: log one with an outcome when you learn something)"
    ordered = sorted(lessons, key=lambda lesson: ("breaks", "works", "note").index(lesson.kind))
    # Lesson text came from outcomes and reviews: quoted as data for the model, never as instructions.
    return "\n".join(
        f"   - {lesson.kind} ({lesson.id}, {lesson.source}): {json.dumps(lesson.text, ensure_ascii=False)}"
        for lesson in ordered
    )
