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
from typing import Any

from pydantic import Field

from chief_of_staff.core import audit, clock, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import Model, money
from chief_of_staff.domain import agencies, goals, inbox, routines, trust, workspace
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.blueprints.schema import (
    Blueprint,
    GoalSection,
    GrantSection,
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


async def plan_blueprint(tx: Tx, name: str | Blueprint, *, agency_name: str | None = None) -> BlueprintPlan:
    """What applying the blueprint would create, and what stands in the way. Writes nothing."""
    blueprint = _resolve(name)
    agency = _agency_name(blueprint, agency_name)
    settings = await workspace.get(tx)
    today = clock.local_date(tx.now, settings.timezone)
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
    tx: Tx, actor: Actor, name: str | Blueprint, *, agency_name: str | None = None
) -> BlueprintPlan:
    """Create the blueprint's agency, roles, goals, grants, routines, playbook and tasks (operator-only).

    Everything is written in the caller's transaction, so a failure half-way (a grant above the
    chat ceiling, say) leaves nothing behind.
    """
    trust.require_operator(actor, "Applying a blueprint", f"chief-of-staff init --blueprint {_hint_name(name)}")
    blueprint = _resolve(name)
    plan = await plan_blueprint(tx, blueprint, agency_name=agency_name)
    if plan.conflicts:
        raise Conflict(" ".join(plan.conflicts))
    today = clock.local_date(tx.now, (await workspace.get(tx)).timezone)
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
        },
    )
    return plan.model_copy(update={"applied": True, "created_ids": made.ids})
