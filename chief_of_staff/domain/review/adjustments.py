"""The operator's adjustments as data: what a review may change, and how each change is undone.

An adjustment is a tool name and its arguments (`{"tool": "update_grant", "arguments": {...}}`),
the same names and argument shapes as the MCP tools, so the model that proposes one already knows
how to write it. Each kind knows three things:

- `apply`: make the change through its own domain function, with the caller's actor, so the trust
  rules hold exactly as if the change were made alone (chat cannot widen above the ceiling);
- `state`: the subject's state as far as the change can move it, read before and after;
- `inverse`: the adjustment that puts the state before back.

`chief_of_staff.domain.review.changesets` strings these together into change sets and reverts.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, ValidationError

from chief_of_staff.core import ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import InvalidInput, NotFound
from chief_of_staff.core.fields import GoalRef, Model, Name, NameOrId, Note, Priority, ShortText, Text, Title
from chief_of_staff.domain import agencies, goals, routines
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.terms import MODE_HELP, BudgetSpec

AdjustmentTool = Literal[
    "update_grant", "adjust_goal", "set_role", "add_routine", "set_routine", "add_lesson", "set_lesson"
]
# A short id as sent: "GR3", "KR2".
Ref = Annotated[str, Field(min_length=1, max_length=24)]
State = dict[str, Any] | None


class Adjustment(Model):
    """One change a review applies: the tool's name and its arguments, as the tool itself takes them."""

    tool: AdjustmentTool = Field(description="The tool the change runs")
    arguments: dict[str, Any] = Field(description="What that tool takes")


# --- argument models (the MCP tools of the same names extend these with `confirm`) -----------------


class UpdateGrantArgs(Model):
    grant_id: Ref
    mode: Literal["auto", "notify", "approve"] | None = Field(None, description=MODE_HELP)
    per_action_cap_cents: int | None = Field(None, description="null removes the cap")
    budgets: list[BudgetSpec] | None = Field(None, description="Replaces all; kept periods keep usage")
    scope_allow: list[str] | None = Field(None, description="Replaces the allow globs")
    scope_deny: list[str] | None = Field(None, description="Replaces the deny globs")
    expires_on: str | None = Field(None, description="YYYY-MM-DD; null removes the end date")
    on_timeout: Literal["deny", "approve"] | None = Field(None, description="What silence becomes")
    rationale: Note | None = Field(None, description="The operator's words; only they change it")
    restore_version: Annotated[StrictInt, Field(ge=1, le=1_000_000_000)] | None = Field(
        None, description="Instead: bounds as they were at this version"
    )


class AdjustGoalArgs(Model):
    goal_id: GoalRef
    title: Title | None = None
    description: Text | None = Field(None, description="Why it matters")
    status: Literal["active", "achieved", "dropped"] | None = Field(None, description="Close or reopen it")
    key_results: list[goals.KeyResultChange] | None = Field(None, max_length=10, description="Changes and additions")


class SetRoleArgs(Model):
    agency: NameOrId
    name: Name = Field(description="The role's name; a new one creates it")
    charter: Text | None = Field(None, description="Required when creating")
    status: Literal["active", "retired"] | None = Field(None, description="retired: nothing allowed for it")


class AddRoutineArgs(Model):
    agency: Name
    role: Name | None = None
    title: ShortText
    details: Text = ""
    priority: Priority = "P2"
    schedule: str = Field(..., max_length=60, description='"daily", "weekdays", "weekly:mon,thu" or "monthly:1"')
    goal_id: Ref | None = None
    key_result_id: goals.KeyResultRef | None = None


class SetRoutineArgs(Model):
    routine_id: Ref
    active: StrictBool


class AddLessonArgs(Model):
    agency: Name
    kind: Literal["works", "breaks", "note"]
    text: Text


class SetLessonArgs(Model):
    """Take a lesson out of the playbook (active false) or put it back."""

    lesson_id: Ref
    active: StrictBool


@dataclass(frozen=True)
class Applied:
    """What one adjustment changed: its subject and the subject's state before and after."""

    tool: AdjustmentTool
    subject: str
    arguments: dict[str, Any]
    before: State
    after: State


def parse_arguments(tool: AdjustmentTool, arguments: dict[str, Any], field: str) -> Model:
    """The arguments in their tool's model, or InvalidInput naming each bad field under `field`."""
    try:
        return TOOLS[tool].model.model_validate(arguments)
    except ValidationError as exc:
        problems = [
            f"{field}.{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()[:8]
        ]
        raise InvalidInput("Nothing was changed:\n- " + "\n- ".join(problems)) from None


def _plain(state: State) -> State:
    """The state as it reads back from JSON, so a stored state and a fresh one compare equal."""
    return None if state is None else json.loads(json.dumps(state, default=str))


# --- grants --------------------------------------------------------------------------------------


async def _grant_subject(tx: Tx, args: Any) -> str:
    return ids.format_id("grant", (await grants.grant_row(tx, ids.parse_id("grant", args.grant_id)))["id"])


async def _grant_state(tx: Tx, subject: str) -> State:
    row = await grants.grant_row(tx, ids.parse_id("grant", subject))
    return {"version": row["version"], "status": row["status"]}


async def change_grant(tx: Tx, actor: Actor, args: UpdateGrantArgs) -> grants.GrantView:
    """update_grant's arguments applied: null means "remove" for the cap and the end date, left out "keep"."""
    given = {name: getattr(args, name) for name in args.model_fields_set - {"grant_id", "confirm"}}
    if given.keys() == {"restore_version"}:
        return await grants.restore_version(tx, actor, args.grant_id, given["restore_version"])
    if "restore_version" in given:
        raise InvalidInput("restore_version: send it alone, without other bounds, or leave it out.")
    return await grants.update_grant(tx, actor, args.grant_id, **given)


async def describe_grant_change(tx: Tx, args: UpdateGrantArgs) -> str:
    """What change_grant would do with these arguments, as the store reads: for the operator's prompt."""
    given = {name: getattr(args, name) for name in args.model_fields_set - {"grant_id", "confirm"}}
    return await grants.preview_change(tx, args.grant_id, **given)


async def _apply_grant(tx: Tx, actor: Actor, args: Any) -> None:
    await change_grant(tx, actor, args)


def _grant_inverse(subject: str, before: State, after: State) -> Adjustment | None:
    if before is None or after is None or before["version"] == after["version"]:
        return None
    return Adjustment(tool="update_grant", arguments={"grant_id": subject, "restore_version": before["version"]})


# --- goals ---------------------------------------------------------------------------------------


async def _goal_subject(tx: Tx, args: Any) -> str:
    row = await goals.resolve_goal(tx, args.goal_id, field="goal_id")
    existing = await tx.all("SELECT id, metric FROM key_results WHERE goal_id = ?", (row["id"],))
    known = {ids.format_id("key_result", r["id"]).casefold() for r in existing} | {
        r["metric"].casefold() for r in existing
    }
    for index, change in enumerate(args.key_results or []):
        if change.key_result.casefold() not in known:
            names = ", ".join(ids.format_id("key_result", r["id"]) for r in existing)
            raise InvalidInput(
                f"key_results[{index}].key_result: {change.key_result!r} is not a key result of "
                f"{ids.format_id('goal', row['id'])} ({names}). A review changes existing key results only, "
                "so that it can be undone; add new ones with adjust_goal."
            )
    return ids.format_id("goal", row["id"])


async def _goal_state(tx: Tx, subject: str) -> State:
    row = await goals.resolve_goal(tx, subject)
    krs = await tx.all("SELECT id, target, due_date, unit FROM key_results WHERE goal_id = ? ORDER BY id", (row["id"],))
    return {
        "title": row["title"],
        "description": row["description"],
        "status": row["status"],
        "key_results": {
            ids.format_id("key_result", kr["id"]): {
                "target": kr["target"],
                "due_date": kr["due_date"],
                "unit": kr["unit"],
            }
            for kr in krs
        },
    }


async def _apply_goal(tx: Tx, actor: Actor, args: Any) -> None:
    await goals.adjust_goal(
        tx,
        actor,
        args.goal_id,
        title=args.title,
        description=args.description,
        status=args.status,
        key_results=args.key_results,
    )


def _goal_inverse(subject: str, before: State, after: State) -> Adjustment | None:
    if before is None or after is None:
        return None
    arguments: dict[str, Any] = {"goal_id": subject}
    arguments |= {key: before[key] for key in ("title", "description", "status") if before[key] != after[key]}
    changes = [
        {"key_result": kr, **was} for kr, was in before["key_results"].items() if after["key_results"].get(kr) != was
    ]
    if changes:
        arguments["key_results"] = changes
    return Adjustment(tool="adjust_goal", arguments=arguments) if len(arguments) > 1 else None


# --- roles ---------------------------------------------------------------------------------------


async def _role_row_id(tx: Tx, args: Any) -> int | None:
    agency = await agencies.resolve_agency(tx, args.agency)
    found = await agencies.role_named(tx, agency["id"], args.name)
    return None if found is None else int(found["id"])


async def _role_subject(tx: Tx, args: Any) -> str:
    # A role the change creates has no id yet; its subject is known after the change (see apply).
    role_id = await _role_row_id(tx, args)
    return "" if role_id is None else ids.format_id("role", role_id)


async def _role_state(tx: Tx, subject: str) -> State:
    if not subject:
        return None
    row = await tx.one(
        "SELECT r.name, r.charter, r.status, a.name AS agency FROM roles AS r "
        "JOIN agencies AS a ON a.id = r.agency_id WHERE r.id = ?",
        (ids.parse_id("role", subject),),
    )
    return None if row is None else dict(row)


async def _apply_role(tx: Tx, actor: Actor, args: Any) -> str:
    view = await agencies.set_role(
        tx, actor, agency=args.agency, name=args.name, charter=args.charter, status=args.status
    )
    return view.id


def _role_inverse(subject: str, before: State, after: State) -> Adjustment | None:
    if after is None:
        return None
    if before is None:  # roles carry history (tasks, outcomes), so an added role is retired, not deleted
        return Adjustment(
            tool="set_role", arguments={"agency": after["agency"], "name": after["name"], "status": "retired"}
        )
    arguments = {key: before[key] for key in ("charter", "status") if before[key] != after[key]}
    return (
        Adjustment(tool="set_role", arguments={"agency": after["agency"], "name": after["name"], **arguments})
        if arguments
        else None
    )


# --- routines ------------------------------------------------------------------------------------


async def _routine_state(tx: Tx, subject: str) -> State:
    if not subject:
        return None
    active = await tx.scalar("SELECT active FROM routines WHERE id = ?", (ids.parse_id("routine", subject),))
    if active is None:
        raise NotFound(f"routine_id: there is no routine {subject}.")
    return {"active": bool(active)}


async def _routine_subject(tx: Tx, args: Any) -> str:
    subject = ids.format_id("routine", ids.parse_id("routine", args.routine_id, field="routine_id"))
    await _routine_state(tx, subject)
    return subject


async def _apply_routine_add(tx: Tx, actor: Actor, args: Any) -> str:
    view = await routines.add_routine(
        tx,
        actor,
        agency=args.agency,
        role=args.role,
        title=args.title,
        details=args.details,
        priority=args.priority,
        schedule=args.schedule,
        goal=args.goal_id,
        key_result=args.key_result_id,
    )
    return view.id


async def _apply_routine_set(tx: Tx, actor: Actor, args: Any) -> None:
    await routines.set_active(tx, actor, args.routine_id, active=args.active)


def _active_inverse(tool: AdjustmentTool, id_field: str) -> Callable[[str, State, State], Adjustment | None]:
    """Undo for things that are switched on and off, not deleted: routines and lessons (an added one is
    switched off; its row stays, like a retired role)."""

    def inverse(subject: str, before: State, after: State) -> Adjustment | None:
        was = False if before is None else before["active"]
        if after is None or after["active"] == was:
            return None
        return Adjustment(tool=tool, arguments={id_field: subject, "active": was})

    return inverse


# --- lessons -------------------------------------------------------------------------------------


async def _lesson_state(tx: Tx, subject: str) -> State:
    if not subject:
        return None
    removed = await tx.one("SELECT removed_at FROM lessons WHERE id = ?", (ids.parse_id("lesson", subject),))
    return None if removed is None else {"active": removed["removed_at"] is None}


async def _apply_lesson_add(tx: Tx, actor: Actor, args: Any) -> str:
    agency = await agencies.resolve_agency(tx, args.agency)
    view = await agencies.add_lesson(tx, actor, agency_id=agency["id"], kind=args.kind, text=args.text, source="review")
    return view.id


async def _lesson_subject(tx: Tx, args: Any) -> str:
    subject = ids.format_id("lesson", ids.parse_id("lesson", args.lesson_id, field="lesson_id"))
    if await _lesson_state(tx, subject) is None:
        raise NotFound(f"lesson_id: there is no lesson {subject}; the agency resource lists its playbook.")
    return subject


async def _apply_lesson_set(tx: Tx, actor: Actor, args: Any) -> None:
    await agencies.set_lesson_active(tx, actor, args.lesson_id, active=args.active)


# --- the table of kinds --------------------------------------------------------------------------


async def _made_by_the_change(tx: Tx, args: Any) -> str:
    """No subject yet: the change creates it (its id comes back from `run`)."""
    return ""


@dataclass(frozen=True)
class _Kind:
    model: type[Model]
    # The subject before the change ("" when the change creates it) ...
    subject: Callable[[Tx, Any], Awaitable[str]]
    # ... the change itself, which returns the subject it created, if any ...
    run: Callable[[Tx, Actor, Any], Awaitable[str | None]]
    state: Callable[[Tx, str], Awaitable[State]]
    inverse: Callable[[str, State, State], Adjustment | None]


_ROUTINE_INVERSE = _active_inverse("set_routine", "routine_id")
_LESSON_INVERSE = _active_inverse("set_lesson", "lesson_id")

TOOLS: dict[str, _Kind] = {
    "update_grant": _Kind(UpdateGrantArgs, _grant_subject, _apply_grant, _grant_state, _grant_inverse),
    "adjust_goal": _Kind(AdjustGoalArgs, _goal_subject, _apply_goal, _goal_state, _goal_inverse),
    "set_role": _Kind(SetRoleArgs, _role_subject, _apply_role, _role_state, _role_inverse),
    "add_routine": _Kind(AddRoutineArgs, _made_by_the_change, _apply_routine_add, _routine_state, _ROUTINE_INVERSE),
    "set_routine": _Kind(SetRoutineArgs, _routine_subject, _apply_routine_set, _routine_state, _ROUTINE_INVERSE),
    "add_lesson": _Kind(AddLessonArgs, _made_by_the_change, _apply_lesson_add, _lesson_state, _LESSON_INVERSE),
    "set_lesson": _Kind(SetLessonArgs, _lesson_subject, _apply_lesson_set, _lesson_state, _LESSON_INVERSE),
}


async def apply(tx: Tx, actor: Actor, tool: AdjustmentTool, args: Model) -> Applied:
    """Make one change with the actor's own rights, reading its subject's state before and after."""
    kind = TOOLS[tool]
    subject = await kind.subject(tx, args)
    before = _plain(await kind.state(tx, subject))
    subject = (await kind.run(tx, actor, args)) or subject
    after = _plain(await kind.state(tx, subject))
    return Applied(tool, subject, args.model_dump(mode="json", exclude_unset=True), before, after)


async def state(tx: Tx, tool: AdjustmentTool, subject: str) -> State:
    """The subject's state now, comparable with a stored `Applied.after`."""
    return _plain(await TOOLS[tool].state(tx, subject))


async def agency_of(tx: Tx, tool: AdjustmentTool, args: Any) -> int:
    """The agency whose grant, goal, role, routine or lesson the adjustment changes (NotFound if none)."""
    if tool == "update_grant":
        return int((await grants.grant_row(tx, ids.parse_id("grant", args.grant_id, field="grant_id")))["agency_id"])
    if tool == "adjust_goal":
        return int((await goals.resolve_goal(tx, args.goal_id, field="goal_id"))["agency_id"])
    if tool in ("set_role", "add_routine", "add_lesson"):
        return int((await agencies.resolve_agency(tx, args.agency))["id"])
    table, kind, ref = (
        ("routines", "routine", args.routine_id) if tool == "set_routine" else ("lessons", "lesson", args.lesson_id)
    )
    number = ids.parse_id(kind, ref, field=f"{kind}_id")
    owner = await tx.scalar(f"SELECT agency_id FROM {table} WHERE id = ?", (number,))
    if owner is None:
        raise NotFound(f"{kind}_id: there is no {kind} {ids.format_id(kind, number)}.")
    return int(owner)


async def pin(tx: Tx, tool: AdjustmentTool, args: Any) -> dict[str, Any]:
    """The subject and its state now, so a change approved later applies only to what the operator was shown."""
    subject = await TOOLS[tool].subject(tx, args)
    return {"subject": subject, "state": _plain(await TOOLS[tool].state(tx, subject)) if subject else None}


async def still_pinned(tx: Tx, tool: AdjustmentTool, pinned: dict[str, Any]) -> bool:
    """Whether the subject is as it was when pinned (nothing to compare for a change that creates it)."""
    if not pinned.get("subject"):
        return True
    return bool(_plain(await TOOLS[tool].state(tx, pinned["subject"])) == pinned["state"])


async def describe(tx: Tx, tool: AdjustmentTool, args: Any) -> str:
    """What the change would do, in words from the store where it can say (a grant's bounds before and after)."""
    if tool == "update_grant":
        return await describe_grant_change(tx, args)
    shown = json.dumps(args.model_dump(mode="json", exclude_none=True), sort_keys=True, ensure_ascii=False)
    return f"{tool} {shown}"


def inverse(change: Applied) -> Adjustment | None:
    """The adjustment that puts the state before back, or None when the change changed nothing."""
    return TOOLS[change.tool].inverse(change.subject, change.before, change.after)
