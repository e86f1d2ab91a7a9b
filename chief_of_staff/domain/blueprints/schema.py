"""The blueprint file format: the TOML schema of a starter agency and its load-time checks.

Every section forbids unknown fields, and every cross-reference (a grant's goal, a routine's
role, a task's key result, a routine's schedule) is checked when the file is read, so a typo
fails loudly with the path of the field instead of half-creating an agency. Applying a
blueprint lives in `blueprints`.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections import Counter
from typing import Annotated, Any, Literal, Self, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictInt,
    ValidationError,
    model_validator,
)

from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.core.fields import Capability, Cents, Model, Name, Priority, ShortText, Text
from chief_of_staff.domain import routines
from chief_of_staff.domain.authority.terms import BudgetSpec, one_per_period


def _no_bool(value: Any) -> Any:
    # TOML has real booleans; `baseline = true` is a typo, not the number 1.
    if isinstance(value, bool):
        raise ValueError("send a number, not true/false")
    return value


Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Number = Annotated[FiniteFloat, BeforeValidator(_no_bool)]
Days = Annotated[StrictInt, Field(ge=1, le=3660)]
Metric = Annotated[str, Field(min_length=1, max_length=80)]
Pattern = Annotated[str, Field(min_length=1, max_length=200)]
Required = Annotated[str, Field(min_length=1, max_length=4000)]


class _Section(Model):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class BlueprintInfo(_Section):
    name: Slug
    title: ShortText
    summary: Required
    version: Annotated[StrictInt, Field(ge=1)]


class AgencySection(_Section):
    name: Name
    purpose: Required
    operating_spec: Annotated[str, Field(max_length=20_000)] = ""


class RoleSection(_Section):
    name: Name
    charter: Required


class KeyResultSection(_Section):
    metric: Metric
    unit: Annotated[str, Field(max_length=40)] = ""
    baseline: Number
    target: Number
    direction: Literal["up", "down"]
    due_in_days: Days
    # cumulative: outcomes send deltas ("+3 emails sent"); level: outcomes send the value now
    # (a median, a rate, a count of subscribers), which the key result then reads as its current value.
    kind: Literal["cumulative", "level"] = "cumulative"

    @model_validator(mode="after")
    def _check(self) -> Self:
        rising = self.target > self.baseline
        if self.target == self.baseline or rising != (self.direction == "up"):
            word = "above" if self.direction == "up" else "below"
            raise ValueError(
                f"direction {self.direction!r} needs a target {word} the baseline "
                f"(baseline {self.baseline:g}, target {self.target:g})"
            )
        return self


class GoalSection(_Section):
    key: Slug
    title: ShortText
    description: Text = ""
    key_results: Annotated[list[KeyResultSection], Field(min_length=1, max_length=10)]


class GrantSection(_Section):
    role: Name | None = None
    capability: Capability
    mode: Literal["auto", "notify", "approve"] = "auto"
    per_action_cap_cents: Cents | None = None
    budgets: Annotated[list[BudgetSpec], Field(max_length=3)] = Field(default_factory=list)
    scope_allow: Annotated[list[Pattern], Field(max_length=20)] = Field(default_factory=list)
    scope_deny: Annotated[list[Pattern], Field(max_length=20)] = Field(default_factory=list)
    expires_in_days: Days | None = None
    goal: Slug | None = None
    rationale: Text = ""

    @model_validator(mode="after")
    def _check(self) -> Self:
        one_per_period(self.budgets)
        return self


class RoutineSection(_Section):
    role: Name | None = None
    title: ShortText
    details: Text = ""
    schedule: ShortText
    priority: Priority = "P2"
    goal: Slug | None = None
    key_result: Metric | None = None


class LessonSection(_Section):
    kind: Literal["works", "breaks", "note"]
    text: Annotated[str, Field(min_length=1, max_length=2000)]


class TaskSection(_Section):
    title: ShortText
    details: Text = ""
    role: Name | None = None
    priority: Priority = "P2"
    goal: Slug | None = None
    key_result: Metric | None = None
    due_in_days: Annotated[StrictInt, Field(ge=0, le=3660)] | None = None


class Blueprint(_Section):
    """One starter agency: its charter, roles, goals, authority, routines, playbook and first tasks."""

    blueprint: BlueprintInfo
    agency: AgencySection
    roles: Annotated[list[RoleSection], Field(max_length=20)] = Field(default_factory=list)
    goals: Annotated[list[GoalSection], Field(max_length=20)] = Field(default_factory=list)
    grants: Annotated[list[GrantSection], Field(max_length=50)] = Field(default_factory=list)
    routines: Annotated[list[RoutineSection], Field(max_length=50)] = Field(default_factory=list)
    playbook: Annotated[list[LessonSection], Field(max_length=50)] = Field(default_factory=list)
    tasks: Annotated[list[TaskSection], Field(max_length=50)] = Field(default_factory=list)


# --- loading -------------------------------------------------------------------------------------

_LABEL_KEYS = ("name", "key", "capability", "title", "metric", "period", "kind")
MAX_PROBLEMS = 8


def _label(item: Any) -> str:
    if isinstance(item, dict):
        for key in _LABEL_KEYS:
            if isinstance(item.get(key), str):
                text = item[key].strip()
                return f" ({text[:40]}…)" if len(text) > 40 else f" ({text})"
    return ""


def _path(data: Any, loc: tuple[Any, ...]) -> str:
    """("grants", 1, "budgets", 0, "period") -> 'grants #2 (email.send) > budgets #1 (day) > period'."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int) and parts:
            data = data[part] if isinstance(data, list) and part < len(data) else None
            parts[-1] += f" #{part + 1}{_label(data)}"
        else:
            data = data.get(part) if isinstance(data, dict) else None
            parts.append(str(part))
    return " > ".join(parts) or "the file"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] | None = Blueprint
    for part in loc:
        if isinstance(part, str) and model is not None:
            field = model.model_fields.get(part)
            model = _model_of(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


def _explain(data: Any, error: Any) -> str:
    loc = tuple(error["loc"])
    where = _path(data, loc)
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"{where}: unknown field.{hint} Allowed here: {', '.join(known)}."
    if error["type"] == "missing":
        return f"{where}: required; add it."
    return f"{where}: {error['msg'].removeprefix('Value error, ')}."


def invalid_blueprint(source: str, problems: list[str]) -> InvalidInput:
    """One error naming every problem (the first few) of a blueprint file."""
    shown = problems[:MAX_PROBLEMS]
    more = f"\n- … and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
    return InvalidInput(f"Blueprint {source} is not valid, nothing was created:\n- " + "\n- ".join(shown) + more)


def parse_blueprint(text: str, *, source: str = "blueprint") -> Blueprint:
    """Parse and check one blueprint's TOML; InvalidInput names every problem with its field path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise invalid_blueprint(source, [f"not valid TOML: {exc}"]) from None
    try:
        blueprint = Blueprint.model_validate(data)
    except ValidationError as exc:
        raise invalid_blueprint(source, [_explain(data, error) for error in exc.errors()]) from None
    problems = _reference_problems(blueprint)
    if problems:
        raise invalid_blueprint(source, problems)
    return blueprint


# --- cross-references ----------------------------------------------------------------------------

_ID_LIKE = {"agency": re.compile(r"^[Aa]?\d+$"), "role": re.compile(r"^[Rr]?\d+$")}


def looks_like_id(kind: str, name: str) -> bool:
    """Would this agency or role name be read as an id ("A2", "R7", "12")?"""
    return _ID_LIKE[kind].match(name.strip()) is not None


def _duplicates(values: list[str]) -> list[str]:
    counts = Counter(value.casefold() for value in values)
    return sorted({value for value in values if counts[value.casefold()] > 1})


def _names_problems(blueprint: Blueprint) -> list[str]:
    problems = []
    if looks_like_id("agency", blueprint.agency.name):
        problems.append(f"agency > name: {blueprint.agency.name!r} reads like an id; use a name with letters.")
    problems += [
        f"roles > name: {r.name!r} reads like an id; use a name with letters."
        for r in blueprint.roles
        if looks_like_id("role", r.name)
    ]
    problems += [
        f"roles: {name!r} appears twice; role names are unique (in any case)."
        for name in _duplicates([r.name for r in blueprint.roles])
    ]
    problems += [
        f"goals: key {key!r} appears twice; each goal needs its own key."
        for key in _duplicates([g.key for g in blueprint.goals])
    ]
    # Outcomes name key results by metric within the agency, so a metric is unique across its goals.
    problems += [
        f"goals > key_results: metric {metric!r} appears twice; metrics are unique within an agency (in any case)."
        for metric in _duplicates([kr.metric for goal in blueprint.goals for kr in goal.key_results])
    ]
    return problems


def _role_problem(blueprint: Blueprint, where: str, role: str | None) -> list[str]:
    known = {r.name.casefold() for r in blueprint.roles}
    if role is None or role.casefold() in known:
        return []
    names = ", ".join(r.name for r in blueprint.roles) or "none"
    return [f"{where} > role: {role!r} is not a role in this blueprint; its roles are {names}."]


def _goal_problems(blueprint: Blueprint, where: str, goal: str | None, key_result: str | None) -> list[str]:
    by_key = {g.key: g for g in blueprint.goals}
    if goal is None:
        return [f'{where} > key_result: name the goal too (goal = "...").'] if key_result else []
    if goal not in by_key:
        keys = ", ".join(by_key) or "none"
        return [f"{where} > goal: {goal!r} is not a goal key in this blueprint; its goal keys are {keys}."]
    metrics = [kr.metric for kr in by_key[goal].key_results]
    if key_result is not None and key_result.casefold() not in {m.casefold() for m in metrics}:
        return [
            f"{where} > key_result: goal {goal!r} has no key result {key_result!r}; "
            f"its metrics are {', '.join(metrics)}."
        ]
    return []


def _schedule_problem(where: str, schedule: str) -> list[str]:
    try:
        routines.parse_schedule(schedule)
    except InvalidInput as exc:
        return [f"{where} > {exc}"]
    return []


def _work_problems(blueprint: Blueprint, where: str, item: RoutineSection | TaskSection) -> list[str]:
    return _role_problem(blueprint, where, item.role) + _goal_problems(blueprint, where, item.goal, item.key_result)


def _reference_problems(blueprint: Blueprint) -> list[str]:
    problems = _names_problems(blueprint)
    for number, grant in enumerate(blueprint.grants, 1):
        where = f"grants #{number} ({grant.capability})"
        problems += _role_problem(blueprint, where, grant.role)
        problems += _goal_problems(blueprint, where, grant.goal, None)
    for number, routine in enumerate(blueprint.routines, 1):
        where = f"routines #{number} ({routine.title[:40]})"
        problems += _work_problems(blueprint, where, routine)
        problems += _schedule_problem(where, routine.schedule)
    for number, task in enumerate(blueprint.tasks, 1):
        problems += _work_problems(blueprint, f"tasks #{number} ({task.title[:40]})", task)
    return problems
