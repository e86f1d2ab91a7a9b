"""Blueprints: starter agencies written as TOML, planned as a dry run, applied in one transaction.

A blueprint is a template, so its dates are relative: a key result due in 90 days is due
90 local days after the day it is applied. Files live in the package's `blueprints/`
folder; their format and load-time checks are in `blueprint_format`. Applying writes
everything in the caller's transaction, so a blueprint is created whole or not at all.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from chief_of_staff.core import audit, clock, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import Capability, Cents, LocalDate, Model, money
from chief_of_staff.domain import agencies, goals, inbox, routines, trust, workspace
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.blueprints.schema import (
    Blueprint,
    GoalSection,
    GrantSection,
    KeyResultSection,
    TaskSection,
    invalid_blueprint,
    looks_like_id,
    parse_blueprint,
)

# --- results -------------------------------------------------------------------------------------


class BlueprintSummary(Model):
    name: str
    title: str
    summary: str
    agency: str
    roles: int
    goals: int
    grants: int
    routines: int


class BlueprintPlan(Model):
    blueprint: str
    agency: str
    creates: list[str]
    conflicts: list[str]
    applied: bool = False
    created_ids: dict[str, list[str]] = Field(default_factory=dict)


# --- the shipped blueprints ----------------------------------------------------------------------


def _folder() -> Any:
    return resources.files("chief_of_staff.domain.blueprints")


@cache
def _shipped_names() -> tuple[str, ...]:
    return tuple(
        sorted(entry.name.removesuffix(".toml") for entry in _folder().iterdir() if entry.name.endswith(".toml"))
    )


def _canonical(name: str) -> str:
    return name.strip().lower().removesuffix(".toml").replace("-", "_")


@cache
def _load_shipped(name: str) -> Blueprint:
    filename = f"{name}.toml"
    blueprint = parse_blueprint(_folder().joinpath(filename).read_text("utf-8"), source=filename)
    if blueprint.blueprint.name != name:
        problem = f"blueprint > name: {blueprint.blueprint.name!r} must match the file name {name!r}."
        raise invalid_blueprint(filename, [problem])
    return blueprint


def load_blueprint(name: str) -> Blueprint:
    """A shipped blueprint by name ("outbound"); NotFound lists the ones there are."""
    canonical = _canonical(name) if isinstance(name, str) else ""
    if canonical not in _shipped_names():
        raise NotFound(
            f"blueprint: there is no blueprint {name!r}. Available: {', '.join(_shipped_names())}. "
            "Call list_blueprints to see what each one sets up."
        )
    return _load_shipped(canonical)


def list_blueprints() -> list[BlueprintSummary]:
    """Every shipped blueprint with what it would set up."""
    return [_summary(_load_shipped(name)) for name in _shipped_names()]


def _summary(blueprint: Blueprint) -> BlueprintSummary:
    info = blueprint.blueprint
    return BlueprintSummary(
        name=info.name,
        title=info.title,
        summary=info.summary,
        agency=blueprint.agency.name,
        roles=len(blueprint.roles),
        goals=len(blueprint.goals),
        grants=len(blueprint.grants),
        routines=len(blueprint.routines),
    )


# --- the operator's answers ----------------------------------------------------------------------
#
# A blueprint's numbers are starting points. The setup interview asks the operator for their own (a
# target, a due date, a daily limit, who is off limits); these are applied to the blueprint before it
# is planned, so the dry run shows exactly what applying will create, and both are the same call.

Pattern = Annotated[str, Field(min_length=1, max_length=200)]


# The operator's numbers for one of the blueprint's key results; what is left out stays as written. (Comments,
# not docstrings: a model's docstring is published in tools/list, which the operator pays for on every turn.)
class KeyResultAnswer(Model):
    metric: Annotated[str, Field(min_length=1, max_length=80)] = Field(
        description='A blueprint key result, e.g. "meetings booked"'
    )
    baseline: goals.FiniteNumber | None = Field(None, description="Start value")
    target: goals.FiniteNumber | None = Field(None, description="Target value")
    due_on: LocalDate | None = Field(None, description="Due date, YYYY-MM-DD")


# The operator's bounds for one of the blueprint's grants; what is left out stays as written.
class GrantAnswer(Model):
    capability: Capability = Field(description="A blueprint grant, e.g. email.send")
    mode: Literal["auto", "notify", "approve"] | None = Field(None, description="Act, act+tell, or ask")
    per_action_cap_cents: Cents | None = Field(None, description="Cap per action")
    budgets: list[BudgetSpec] | None = Field(None, max_length=3, description="Replaces its budgets")


class Answers(Model):
    """Everything the interview may change in a blueprint before it is applied."""

    key_results: list[KeyResultAnswer] = Field(
        default_factory=list, max_length=20, description="Goal numbers by metric"
    )
    grants: list[GrantAnswer] = Field(default_factory=list, max_length=20, description="Limits by capability")
    scope_deny: list[Pattern] = Field(default_factory=list, max_length=20, description="Never touch these (all grants)")


def _section_problem(where: str, exc: ValidationError) -> InvalidInput:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg'].removeprefix('Value error, ')}"
        if e["loc"]
        else e["msg"].removeprefix("Value error, ")
        for e in exc.errors()[:4]
    )
    return InvalidInput(f"{where}: {problems}. Nothing was created.")


def _revalidate(section: type[BaseModel], data: dict[str, Any], where: str) -> dict[str, Any]:
    """A blueprint section with the operator's answers, held to the blueprint's own checks."""
    try:
        return section.model_validate(data).model_dump()
    except ValidationError as exc:
        raise _section_problem(where, exc) from None


def _tune_key_result(data: dict[str, Any], answer: KeyResultAnswer, today: date) -> dict[str, Any]:
    where = f"key_results ({answer.metric})"
    changed = {**data, **answer.model_dump(include={"baseline", "target"}, exclude_none=True)}
    if answer.due_on is not None:
        if answer.due_on <= today:
            raise InvalidInput(f"{where} > due_on: send a date after today ({today}). Nothing was created.")
        changed["due_in_days"] = (answer.due_on - today).days
    return _revalidate(KeyResultSection, changed, where)


def _tune_grant(data: dict[str, Any], answer: GrantAnswer | None, deny: list[str]) -> dict[str, Any]:
    changed = dict(data)
    if answer is not None:
        changed.update(answer.model_dump(include={"mode", "per_action_cap_cents"}, exclude_none=True))
        if answer.budgets is not None:
            changed["budgets"] = [budget.model_dump() for budget in answer.budgets]
    # The operator's "never" narrows every grant: deny wins over allow, so it can only take authority away.
    changed["scope_deny"] = list(dict.fromkeys([*data["scope_deny"], *deny]))
    return _revalidate(GrantSection, changed, f"grants ({data['capability']})")


def _matching(known: list[str], wanted: str, field: str, kind: str) -> int:
    found = [index for index, name in enumerate(known) if name.casefold() == wanted.strip().casefold()]
    if not found:
        raise InvalidInput(
            f"{field}: the blueprint has no {kind} {wanted!r}; its {kind}s are {', '.join(known)}. Nothing was created."
        )
    if len(found) > 1:
        raise InvalidInput(
            f"{field}: the blueprint has {len(found)} grants of {wanted!r} (one per role); apply it, then change "
            "each with update_grant. Nothing was created."
        )
    return found[0]


def tuned(blueprint: Blueprint, answers: Answers | None, today: date) -> Blueprint:
    """The blueprint with the operator's answers in place of its own numbers (InvalidInput names a bad one)."""
    if answers is None or answers == Answers():
        return blueprint
    data = blueprint.model_dump()
    key_results = [kr for goal in data["goals"] for kr in goal["key_results"]]
    for answer in answers.key_results:
        index = _matching([kr["metric"] for kr in key_results], answer.metric, "key_results", "metric")
        key_results[index].update(_tune_key_result(key_results[index], answer, today))
    by_grant: dict[int, GrantAnswer] = {}
    for limits in answers.grants:
        index = _matching([g["capability"] for g in data["grants"]], limits.capability, "grants", "capability")
        by_grant[index] = limits
    data["grants"] = [
        _tune_grant(grant, by_grant.get(index), answers.scope_deny) for index, grant in enumerate(data["grants"])
    ]
    return Blueprint.model_validate(data)


# --- the plan (dry run) --------------------------------------------------------------------------


def _resolve(name: str | Blueprint) -> Blueprint:
    return name if isinstance(name, Blueprint) else load_blueprint(name)


def _agency_name(blueprint: Blueprint, override: str | None) -> str:
    if override is None:
        return blueprint.agency.name
    if not isinstance(override, str) or not override.strip() or len(override.strip()) > 80:
        raise InvalidInput("agency_name: send a short name for the new agency (1 to 80 characters), e.g. 'Outbound 2'.")
    if looks_like_id("agency", override):
        raise InvalidInput(f"agency_name: {override.strip()!r} reads like an id; send a name with letters.")
    return override.strip()


async def _free_name(tx: Tx, base: str) -> str:
    for number in range(2, 100):
        candidate = f"{base} {number}"
        if await tx.one("SELECT 1 FROM agencies WHERE name = ?", (candidate,)) is None:
            return candidate
    return f"{base} (new)"


async def _conflicts(tx: Tx, agency: str) -> list[str]:
    taken = await tx.one("SELECT id, name FROM agencies WHERE name = ?", (agency,))
    if taken is None:
        return []
    short = f"A{taken['id']}"
    return [
        f"agency {taken['name']} ({short}) already exists. Apply the blueprint with "
        f"agency_name={await _free_name(tx, agency)!r} to stand up a second one, or adjust {short} instead."
    ]


def _budget_text(budget: BudgetSpec, currency: str) -> str:
    amounts = []
    if budget.max_count is not None:
        amounts.append(str(budget.max_count))
    if budget.max_cents is not None:
        amounts.append(money(budget.max_cents, currency))
    return f"{' and '.join(amounts)} per {budget.period}"


def _grant_text(grant: GrantSection, today: date, currency: str) -> str:
    bounds: list[str] = [grant.mode]
    if grant.per_action_cap_cents is not None:
        bounds.append(f"up to {money(grant.per_action_cap_cents, currency)} per action")
    bounds += [_budget_text(budget, currency) for budget in grant.budgets]
    if grant.scope_allow:
        bounds.append(f"to {', '.join(grant.scope_allow)}")
    if grant.scope_deny:
        bounds.append(f"never to {', '.join(grant.scope_deny)}")
    if grant.expires_in_days is not None:
        bounds.append(f"until {today + timedelta(days=grant.expires_in_days)}")
    return f"grant {grant.capability} for {grant.role or 'the whole agency'}: {', '.join(bounds)}"


def _goal_lines(goal: GoalSection, today: date) -> list[str]:
    due = max(today + timedelta(days=kr.due_in_days) for kr in goal.key_results)
    count = len(goal.key_results)
    lines = [f"goal {goal.title} ({count} key result{'s' if count != 1 else ''}, due {due})"]
    for kr in goal.key_results:
        unit = f" {kr.unit}" if kr.unit else ""
        level = " (level: outcomes send its value now)" if kr.kind == "level" else ""
        lines.append(
            f"key result {kr.metric}: {kr.baseline:g} → {kr.target:g}{unit} by "
            f"{today + timedelta(days=kr.due_in_days)}{level}"
        )
    return lines


def _playbook_line(blueprint: Blueprint) -> list[str]:
    if not blueprint.playbook:
        return []
    kinds = Counter(lesson.kind for lesson in blueprint.playbook)
    detail = ", ".join(f"{kinds[kind]} {kind}" for kind in ("works", "breaks", "note") if kinds[kind])
    return [f"playbook: {len(blueprint.playbook)} lessons ({detail})"]


def _task_line(task: TaskSection, today: date) -> str:
    due = "" if task.due_in_days is None else f", due {today + timedelta(days=task.due_in_days)}"
    return f"task {task.title} ({task.role or 'any role'}, {task.priority}{due})"


def _describe(blueprint: Blueprint, agency: str, today: date, currency: str) -> list[str]:
    info = blueprint.blueprint
    lines = [f"agency {agency} (blueprint {info.name} v{info.version})"]
    lines += [f"role {role.name}" for role in blueprint.roles]
    for goal in blueprint.goals:
        lines += _goal_lines(goal, today)
    lines += [_grant_text(grant, today, currency) for grant in blueprint.grants]
    lines += [f"routine {r.schedule}: {r.title} ({r.role or 'any role'}, {r.priority})" for r in blueprint.routines]
    lines += _playbook_line(blueprint)
    lines += [_task_line(task, today) for task in blueprint.tasks]
    return lines


async def plan_blueprint(
    tx: Tx, name: str | Blueprint, *, agency_name: str | None = None, answers: Answers | None = None
) -> BlueprintPlan:
    """What applying the blueprint (with the operator's answers) would create, and what stands in the way.

    Writes nothing.
    """
    settings = await workspace.get(tx)
    today = clock.local_date(tx.now, settings.timezone)
    blueprint = tuned(_resolve(name), answers, today)
    agency = _agency_name(blueprint, agency_name)
    return BlueprintPlan(
        blueprint=blueprint.blueprint.name,
        agency=agency,
        creates=_describe(blueprint, agency, today, settings.currency),
        conflicts=await _conflicts(tx, agency),
    )


# --- applying ------------------------------------------------------------------------------------


class _Created:
    """Short ids of what one application created, by kind, plus the local lookups the later steps need."""

    def __init__(self) -> None:
        self.ids: dict[str, list[str]] = {
            kind: [] for kind in ("agency", "roles", "goals", "key_results", "grants", "routines", "lessons", "tasks")
        }
        self.roles: dict[str, str] = {}
        self.goals: dict[str, str] = {}
        self.key_results: dict[tuple[str, str], str] = {}

    def role(self, name: str | None) -> str | None:
        return None if name is None else self.roles[name.casefold()]

    def goal(self, key: str | None) -> str | None:
        return None if key is None else self.goals[key]

    def key_result(self, goal: str | None, metric: str | None) -> str | None:
        return None if goal is None or metric is None else self.key_results[(goal, metric.casefold())]


def _in_days(today: date, days: int | None) -> date | None:
    return None if days is None else today + timedelta(days=days)


async def _create_roster(tx: Tx, actor: Actor, blueprint: Blueprint, agency: str, made: _Created) -> str:
    view = await agencies.create_agency(
        tx,
        actor,
        name=agency,
        purpose=blueprint.agency.purpose,
        operating_spec=blueprint.agency.operating_spec,
        blueprint=blueprint.blueprint.name,
    )
    made.ids["agency"].append(view.id)
    for role in blueprint.roles:
        role_view = await agencies.set_role(tx, actor, agency=view.id, name=role.name, charter=role.charter)
        made.ids["roles"].append(role_view.id)
        made.roles[role.name.casefold()] = role_view.id
    return view.id


async def _create_goals(
    tx: Tx, actor: Actor, blueprint: Blueprint, agency_id: str, today: date, made: _Created
) -> None:
    for goal in blueprint.goals:
        specs = [
            goals.KeyResultSpec(
                metric=kr.metric,
                unit=kr.unit,
                baseline=kr.baseline,
                target=kr.target,
                direction=kr.direction,
                due_date=today + timedelta(days=kr.due_in_days),
                start_date=today,
                kind=kr.kind,
            )
            for kr in goal.key_results
        ]
        view = await goals.create_goal(
            tx, actor, agency=agency_id, title=goal.title, description=goal.description, key_results=specs
        )
        made.ids["goals"].append(view.id)
        made.goals[goal.key] = view.id
        for kr_view in view.key_results:
            made.ids["key_results"].append(kr_view.id)
            made.key_results[(goal.key, kr_view.metric.casefold())] = kr_view.id


async def _create_grants(
    tx: Tx, actor: Actor, blueprint: Blueprint, agency_id: str, today: date, made: _Created
) -> None:
    for grant in blueprint.grants:
        spec = grants.GrantSpec(
            agency=agency_id,
            role=made.role(grant.role),
            capability=grant.capability,
            mode=grant.mode,
            per_action_cap_cents=grant.per_action_cap_cents,
            budgets=list(grant.budgets),
            scope_allow=list(grant.scope_allow),
            scope_deny=list(grant.scope_deny),
            expires_on=_in_days(today, grant.expires_in_days),
            goal=made.goal(grant.goal),
            rationale=grant.rationale,
        )
        made.ids["grants"].append((await grants.create_grant(tx, actor, spec)).id)


async def _create_work(tx: Tx, actor: Actor, blueprint: Blueprint, agency_id: str, today: date, made: _Created) -> None:
    for routine in blueprint.routines:
        view = await routines.add_routine(
            tx,
            actor,
            agency=agency_id,
            role=made.role(routine.role),
            title=routine.title,
            details=routine.details,
            priority=routine.priority,
            schedule=routine.schedule,
            goal=made.goal(routine.goal),
            key_result=made.key_result(routine.goal, routine.key_result),
        )
        made.ids["routines"].append(view.id)
    for task in blueprint.tasks:
        task_view = await inbox.add_task(
            tx,
            actor,
            title=task.title,
            details=task.details,
            agency=agency_id,
            role=made.role(task.role),
            goal=made.goal(task.goal),
            key_result=made.key_result(task.goal, task.key_result),
            priority=task.priority,
            due_on=_in_days(today, task.due_in_days),
            source="blueprint",
        )
        made.ids["tasks"].append(task_view.id)


async def _create_playbook(tx: Tx, actor: Actor, blueprint: Blueprint, agency_id: str, made: _Created) -> None:
    number = ids.parse_id("agency", agency_id)
    for lesson in blueprint.playbook:
        view = await agencies.add_lesson(
            tx, actor, agency_id=number, kind=lesson.kind, text=lesson.text, source="blueprint"
        )
        made.ids["lessons"].append(view.id)


def _hint_name(name: str | Blueprint) -> str:
    if isinstance(name, Blueprint):
        return name.blueprint.name
    known = isinstance(name, str) and _canonical(name) in _shipped_names()
    return _canonical(name) if known else "<name>"


async def apply_blueprint(
    tx: Tx, actor: Actor, name: str | Blueprint, *, agency_name: str | None = None, answers: Answers | None = None
) -> BlueprintPlan:
    """Create the blueprint's agency, roles, goals, grants, routines, playbook and tasks (operator-only),
    with the operator's answers in place of the blueprint's own numbers.

    Everything is written in the caller's transaction, so a failure half-way (a grant above the
    chat ceiling, say) leaves nothing behind.
    """
    trust.require_operator(actor, "Applying a blueprint", f"chief-of-staff init --blueprint {_hint_name(name)}")
    today = clock.local_date(tx.now, (await workspace.get(tx)).timezone)
    blueprint = tuned(_resolve(name), answers, today)
    plan = await plan_blueprint(tx, blueprint, agency_name=agency_name)
    if plan.conflicts:
        raise Conflict(" ".join(plan.conflicts))
    made = _Created()
    agency_id = await _create_roster(tx, actor, blueprint, plan.agency, made)
    await _create_goals(tx, actor, blueprint, agency_id, today, made)
    await _create_grants(tx, actor, blueprint, agency_id, today, made)
    await _create_work(tx, actor, blueprint, agency_id, today, made)
    await _create_playbook(tx, actor, blueprint, agency_id, made)
    await audit.append(
        tx,
        actor,
        "blueprint.apply",
        agency_id,
        {
            "blueprint": blueprint.blueprint.name,
            "version": blueprint.blueprint.version,
            "agency": plan.agency,
            "created": {kind: len(found) for kind, found in made.ids.items()},
            "answers": None if answers is None else answers.model_dump(mode="json", exclude_defaults=True),
        },
    )
    return plan.model_copy(update={"applied": True, "created_ids": made.ids})
