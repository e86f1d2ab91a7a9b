"""Goals and their key results, with progress, pace and forecast computed from rollups.

`key_results.current` is baseline plus every delta ever logged against it, and
`key_result_days` holds each key result's deltas per local day; outcomes.log_outcome keeps
both in the same transaction. Progress and pace are read from `current` and the dates, the
forecast from the recent days' rows (chief_of_staff.domain.pace does the arithmetic), so a goal view
never scans the outcome log. Every goal change is an operator act.

A key result is `cumulative` (outcomes send deltas: "+3 emails sent") or `level` (outcomes send
observations: "subscribers are now 180"). A level observation is logged with the change it made
as its delta, so `current` is the latest observation and the rollups read both kinds alike.

A key result is named by its id ("KR3") or its metric ("emails sent", in any case): metric names
are unique among the key results of an agency's active goals, so a name says which one is meant.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError

from chief_of_staff.core import audit, clock, ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Row, Tx
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound
from chief_of_staff.core.fields import LocalDate, Model, Name, ShortText, checked_text, name_key
from chief_of_staff.domain import trust, workspace
from chief_of_staff.domain.agencies import agency_name, resolve_agency
from chief_of_staff.domain.pace import MIN_HISTORY_DAYS, RATE_WINDOW_DAYS, Observed, PaceLabel, standing_of

GoalStatus = Literal["active", "achieved", "dropped"]
Direction = Literal["up", "down"]
KeyResultKind = Literal["cumulative", "level"]

MAX_KEY_RESULTS = 10
GOAL_HINT = (
    "chief-of-staff goal create --agency NAME --title TEXT --kr metric=NAME baseline=0 target=10 direction=up "
    "due_date=YYYY-MM-DD"
)


# A trillion: beyond any count, amount or rate a key result tracks, and small enough that a key
# result's sum of deltas, its pace and its forecast stay ordinary floats however many outcomes there are.
MAX_METRIC_VALUE = 1e12
_METRIC_RANGE = f"from {-MAX_METRIC_VALUE:,.0f} to {MAX_METRIC_VALUE:,.0f}"


def _finite_before(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("send a plain number such as 12 or 0.5")
    return value


def _bounded_after(value: float) -> float:
    if not -MAX_METRIC_VALUE <= value <= MAX_METRIC_VALUE:
        raise ValueError(f"is too large; send a number {_METRIC_RANGE}")
    return value


# The bound is checked after finiteness, so NaN is told it is not finite rather than too large. It is not
# published in the schema: six number fields' minimum and maximum cost ~320 bytes of tools/list on every
# turn, and the refusal names the range the first time it matters.
FiniteNumber = Annotated[
    float,
    BeforeValidator(_finite_before),
    Field(allow_inf_nan=False),
    AfterValidator(_bounded_after),
]


def check_finite(value: object, field: str) -> float:
    """A real, finite number of at most MAX_METRIC_VALUE either way, or InvalidInput naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN is not itself
        raise InvalidInput(f"{field}: {value!r} is not a number; send a plain number such as 12 or 0.5.")
    if not -MAX_METRIC_VALUE <= value <= MAX_METRIC_VALUE:  # exact for ints of any size, and catches infinity
        raise InvalidInput(f"{field}: is too large; send a number {_METRIC_RANGE}.")
    return float(value)


# Wherever a key result is named: its id or its metric name (metric names are at most 80 characters).
KeyResultRef = Annotated[str, Field(min_length=1, max_length=80, description="KR id or metric name")]

# Said once, in the spec's schema: what each kind makes an outcome send.
_KIND_HELP = "cumulative: outcomes send delta (+3); level: outcomes send value (now 180)"


class KeyResultSpec(Model):
    """One key result of a new goal. start_date defaults to today in the workspace timezone."""

    metric: Name = Field(description="What is counted, e.g. emails sent")
    unit: Annotated[str, Field(max_length=40)] = Field("", description="e.g. emails")
    baseline: FiniteNumber = Field(description="Value at the start")
    target: FiniteNumber = Field(description="Value by due_date")
    direction: Direction = Field(description="Which way is better")
    due_date: LocalDate
    start_date: LocalDate | None = Field(None, description="Default: today")
    kind: KeyResultKind = Field("cumulative", description=_KIND_HELP)


class KeyResultChange(Model):
    """Change key result "KR3" or "emails sent" (new target, due date or unit), or add one by giving a
    new metric name with baseline, target, direction and due_date (and kind)."""

    key_result: ShortText = Field(description="KR id or metric; a new metric adds one")
    target: FiniteNumber | None = Field(None, description="New target")
    due_date: LocalDate | None = None
    unit: Annotated[str, Field(max_length=40)] | None = Field(None, description="New unit")
    baseline: FiniteNumber | None = Field(None, description="A new one's start value")
    direction: Direction | None = Field(None, description="A new one's better way")
    start_date: LocalDate | None = Field(None, description="A new one's start")
    kind: KeyResultKind | None = Field(None, description="New key result only; default cumulative")


class KeyResultView(Model):
    id: str
    metric: str
    kind: KeyResultKind
    unit: str
    baseline: float
    target: float
    direction: Direction
    start_date: str
    due_date: str
    current: float
    progress: float
    expected_now: float
    pace: PaceLabel
    behind_by: float
    rate_per_day: float | None
    forecast_at_due: float | None
    at_risk: bool
    risk_reason: str | None
    forecast_note: str | None = Field(None, description="Why there is no forecast yet (too little history)")


class GoalView(Model):
    id: str
    agency: str
    title: str
    description: str
    status: GoalStatus
    key_results: list[KeyResultView]


# --- lookups -------------------------------------------------------------------------------------


async def resolve_goal(tx: Tx, ref: str, *, field: str = "goal") -> Row:
    """The goals row for "G1"; NotFound says how to find goals."""
    number = ids.parse_id("goal", ref, field=field)
    row = await tx.one("SELECT * FROM goals WHERE id = ?", (number,))
    if row is None:
        raise NotFound(f"{field}: there is no goal {ids.format_id('goal', number)}. Call list_goals to see goals.")
    return row


# "KR3", "kr 3" or "3": a reference in this form is an id, never a metric name (create_goal refuses
# metric names of this form, so no key result can hide behind another's id).
_KR_ID = re.compile(r"\s*(?:KR)?\s*\d{1,18}\s*", re.IGNORECASE)
_KR_SELECT = (
    "SELECT kr.*, g.agency_id AS agency_id, g.status AS goal_status FROM key_results AS kr "
    "JOIN goals AS g ON g.id = kr.goal_id "
)
# Most matches listed in an ambiguity error: enough to choose from, never a page of ids.
_MATCHES_SHOWN = 5


def metric_key(metric: str) -> str:
    """What two metric names are compared by: NFKC, whitespace runs as one space, any case of any script."""
    return " ".join(name_key(metric).split()).casefold()


def looks_like_key_result_id(ref: str) -> bool:
    """Is this reference read as a key result id ("KR3", "kr 3", "3") rather than a metric name?"""
    return _KR_ID.fullmatch(ref) is not None


async def resolve_key_result(tx: Tx, ref: str | int, *, agency_id: int | None = None, field: str = "key_result") -> Row:
    """The key_results row for "KR3" or a metric name ("emails sent", any case), with its goal's
    agency_id and goal_status.

    A name is looked up among the key results of the agency's goals (every agency's when agency_id is
    None): active goals first, then closed ones. A name two key results share is an InvalidInput
    listing the ids to send instead.
    """
    if isinstance(ref, int) or looks_like_key_result_id(ref):
        return await _key_result_by_id(tx, ref, field)
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f'{field}: send a key result id like KR3 or its metric name, e.g. "emails sent".')
    return await _key_result_by_name(tx, ref, agency_id, field)


async def _key_result_by_id(tx: Tx, ref: str | int, field: str) -> Row:
    number = ids.parse_id("key_result", ref, field=field)
    row = await tx.one(f"{_KR_SELECT}WHERE kr.id = ?", (number,))
    if row is None:
        raise NotFound(
            f"{field}: there is no key result {ids.format_id('key_result', number)}. "
            "Call list_goals to see each goal's key results."
        )
    return row


async def _key_result_by_name(tx: Tx, ref: str, agency_id: int | None, field: str) -> Row:
    key = metric_key(ref)
    for active in (True, False):
        found = [row for row in await _key_results_of(tx, agency_id, active=active) if metric_key(row["metric"]) == key]
        if len(found) == 1:
            return found[0]
        if found:
            raise InvalidInput(f"{field}: {ref.strip()!r} names {_listing(found)}; send one of those ids instead.")
    where = "" if agency_id is None else f" of agency {await agency_name(tx, agency_id)}"
    raise NotFound(
        f"{field}: no key result{where} is named {ref.strip()!r}; send an id like KR3 or a metric name "
        "exactly as list_goals shows it."
    )


async def _key_results_of(tx: Tx, agency_id: int | None, *, active: bool) -> list[Row]:
    """Key results of the agency's (or every agency's) active goals, or of its closed ones."""
    status = "g.status = 'active'" if active else "g.status != 'active'"
    if agency_id is None:
        return await tx.all(f"{_KR_SELECT}WHERE {status} ORDER BY kr.id")
    return await tx.all(f"{_KR_SELECT}WHERE g.agency_id = ? AND {status} ORDER BY kr.id", (agency_id,))


def _listing(rows: Sequence[Row]) -> str:
    """ "KR3 (goal G1) and KR7 (goal G2)": the key results a name could mean."""
    shown = [f"{ids.format_id('key_result', r['id'])} (goal {ids.format_id('goal', r['goal_id'])})" for r in rows]
    extra = len(shown) - _MATCHES_SHOWN
    shown = shown[:_MATCHES_SHOWN] + ([f"{extra} more"] if extra > 0 else [])
    return ", ".join(shown[:-1]) + f" and {shown[-1]}"


# --- views ---------------------------------------------------------------------------------------


async def _today(tx: Tx) -> date:
    return clock.local_date(tx.now, (await workspace.get(tx)).timezone)


def _key_result_view(row: Row, today: date, goal_active: bool) -> KeyResultView:
    start, due = date.fromisoformat(row["start_date"]), date.fromisoformat(row["due_date"])
    # A closed goal takes no more deltas: its key results are history, not a risk to act on.
    standing = standing_of(
        row["baseline"],
        row["target"],
        row["current"],
        start,
        due,
        today,
        recent_delta=row["recent_delta"],
        points=int(row["points"]),
        level=_observed(row),
        active=goal_active,
    )
    return KeyResultView(
        id=ids.format_id("key_result", row["id"]),
        metric=row["metric"],
        kind=row["kind"],
        unit=row["unit"],
        baseline=row["baseline"],
        target=row["target"],
        direction=row["direction"],
        start_date=row["start_date"],
        due_date=row["due_date"],
        current=row["current"],
        progress=standing.progress,
        expected_now=standing.expected_now,
        pace=standing.pace,
        behind_by=standing.behind_by,
        rate_per_day=standing.rate_per_day,
        forecast_at_due=standing.forecast_at_due,
        at_risk=standing.at_risk,
        risk_reason=standing.risk_reason,
        forecast_note=standing.forecast_note,
    )


def _observed(row: Row) -> Observed | None:
    """A level key result's observations for pace.forecast_of; None for a cumulative one, or for a level
    one not observed in the rate window (then nothing moved it there)."""
    if row["kind"] != "level" or row["level_latest"] is None:
        return None
    since, latest = date.fromisoformat(row["level_since"]), date.fromisoformat(row["level_latest"])
    return Observed(since, row["level_change"], (latest - since).days)


# The rate window is pace.rate_window's: from max(first, min(start_date, today)) to today, where
# first = today - (RATE_WINDOW_DAYS - 1). Numbered parameters ?1 (first) and ?2 (today) let every read
# below share them; the caller's own `?` parameters follow.
_FIRST = "max(?1, min(kr.start_date, ?2))"
_DAYS = "FROM key_result_days AS d WHERE d.key_result_id = kr.id AND d.day"
_WINDOW = f"{_DAYS} BETWEEN {_FIRST} AND ?2"
# The deltas of one key result over its rate window, by the rollup's primary key.
_WINDOW_SUM = f"(SELECT total(d.delta_sum) {_WINDOW}) AS recent_delta"
# A level key result's trend runs between two of its observations: from the last day it was observed on
# or before the window's first day (the first in the window when there is none, so the step from its
# baseline to a first measurement is never taken for a rate) to the last day observed in the window.
# Each a seek on the rollup's primary key, and the CASE skips them for a cumulative key result.
_SINCE = f"coalesce((SELECT max(d.day) {_DAYS} <= {_FIRST}), (SELECT min(d.day) {_WINDOW}))"
_LEVEL = ", ".join(
    f"CASE WHEN kr.kind = 'level' THEN {read} END AS {alias}"
    for read, alias in (
        (f"(SELECT max(d.day) {_WINDOW})", "level_latest"),
        (_SINCE, "level_since"),
        (f"(SELECT total(d.delta_sum) {_DAYS} > {_SINCE} AND d.day <= ?2)", "level_change"),
    )
)
# The outcomes of its first MIN_HISTORY_DAYS days with any: exact whenever pace.no_forecast_yet shows
# the count (younger than that, or fewer points than days), at least MIN_DATA_POINTS otherwise, and
# read through the primary key at a fixed cost however long the key result has run.
_POINTS = (
    "(SELECT total(p.outcomes) FROM (SELECT d.outcomes FROM key_result_days AS d WHERE d.key_result_id = kr.id "
    f"ORDER BY d.day LIMIT {MIN_HISTORY_DAYS}) AS p) AS points"
)

# Goals with their agency's name and their key results (one row per key result) with each key
# result's recent window from the rollup, in one statement. The goal's own columns carry a g_
# prefix so the key result's keep their plain names.
_VIEW_SELECT = (
    "SELECT g.id AS g_id, g.agency_id AS g_agency_id, g.title AS g_title, g.description AS g_description, "
    "g.status AS g_status, a.name AS g_agency_name, kr.*, "
    f"{_WINDOW_SUM}, {_LEVEL}, {_POINTS} FROM goals AS g "
    "LEFT JOIN agencies AS a ON a.id = g.agency_id LEFT JOIN key_results AS kr ON kr.goal_id = g.id "
)


async def _goal_views(tx: Tx, where: str, params: Sequence[Any]) -> list[GoalView]:
    """Goals matching `where` (over alias g), oldest first, each with its key results in id order."""
    today = await _today(tx)
    first = today - timedelta(days=RATE_WINDOW_DAYS - 1)
    rows = await tx.all(
        f"{_VIEW_SELECT}WHERE {where} ORDER BY g.id, kr.id", [first.isoformat(), today.isoformat(), *params]
    )
    by_goal: dict[int, list[Row]] = {}
    for row in rows:
        by_goal.setdefault(row["g_id"], []).append(row)
    return [_goal_view(group, today) for group in by_goal.values()]


def _goal_view(rows: list[Row], today: date) -> GoalView:
    goal, agency = rows[0], rows[0]["g_agency_name"]
    active = goal["g_status"] == "active"
    return GoalView(
        id=ids.format_id("goal", goal["g_id"]),
        agency=agency if agency is not None else ids.format_id("agency", goal["g_agency_id"]),
        title=goal["g_title"],
        description=goal["g_description"],
        status=goal["g_status"],
        key_results=[_key_result_view(row, today, active) for row in rows if row["id"] is not None],
    )


async def get_goal(tx: Tx, goal: str) -> GoalView:
    """One goal with its key results, progress and pace."""
    return (await _goal_views(tx, "g.id = ?", [(await resolve_goal(tx, goal))["id"]]))[0]


async def key_result_history(tx: Tx, key_result: str | int) -> list[tuple[date, float]]:
    """The key result's value at the end of each local day an outcome moved it, oldest first.

    Baseline plus the deltas up to that day, read from the `key_result_days` rollup (one row per day
    with outcomes, never the outcome log): what a chart of the actual value draws.
    """
    row = await resolve_key_result(tx, key_result)
    days = await tx.all("SELECT day, delta_sum FROM key_result_days WHERE key_result_id = ? ORDER BY day", (row["id"],))
    value, history = float(row["baseline"]), []
    for day in days:
        value += day["delta_sum"]
        history.append((date.fromisoformat(day["day"]), round(value, 6) + 0.0))
    return history


async def list_goals(tx: Tx, *, agency: str | None = None, include_closed: bool = False) -> list[GoalView]:
    """Goals (active only unless include_closed), oldest first, with progress and pace."""
    statuses = list(get_args(GoalStatus)) if include_closed else ["active"]
    marks = ", ".join("?" for _ in statuses)
    if agency is None:
        return await _goal_views(tx, f"g.status IN ({marks})", statuses)
    agency_id = (await resolve_agency(tx, agency))["id"]
    return await _goal_views(tx, f"g.agency_id = ? AND g.status IN ({marks})", [agency_id, *statuses])


# --- validation ----------------------------------------------------------------------------------


def coerce_input(model: type[Model], item: object, field: str) -> Any:
    """Accept a model or a plain dict; a bad dict becomes InvalidInput naming the exact field."""
    if isinstance(item, model):
        return item
    try:
        return model.model_validate(item)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(f"{field}{'.' + where if where else ''}: {first['msg']}.") from None


def _check_line(field: str, baseline: float, target: float, direction: str, start: date, due: date) -> None:
    """The rules the schema also enforces, checked first so the caller hears which field and why."""
    check_finite(baseline, f"{field}.baseline")
    check_finite(target, f"{field}.target")
    if direction == "up" and not target > baseline:
        raise InvalidInput(
            f"{field}.target: an 'up' key result needs a target above its baseline "
            f"({baseline:g}); raise the target or send direction 'down'."
        )
    if direction == "down" and not target < baseline:
        raise InvalidInput(
            f"{field}.target: a 'down' key result needs a target below its baseline "
            f"({baseline:g}); lower the target or send direction 'up'."
        )
    if not due > start:
        raise InvalidInput(
            f"{field}.due_date: {due.isoformat()} must be after the start date "
            f"{start.isoformat()}; send a later due_date."
        )


def _check_spec(field: str, spec: KeyResultSpec, today: date) -> None:
    _check_line(field, spec.baseline, spec.target, spec.direction, spec.start_date or today, spec.due_date)


def _check_specs(specs: Sequence[KeyResultSpec], today: date, taken: dict[str, Row]) -> None:
    if not 1 <= len(specs) <= MAX_KEY_RESULTS:
        raise InvalidInput(f"key_results: send 1 to {MAX_KEY_RESULTS} key results; a goal is measured by them.")
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        field = f"key_results[{index}]"
        if metric_key(spec.metric) in seen:
            raise InvalidInput(f"{field}.metric: {spec.metric!r} appears twice; give each key result its own metric.")
        seen.add(metric_key(spec.metric))
        _check_new_name(f"{field}.metric", spec.metric, taken)
        _check_spec(field, spec, today)


async def _names_in_use(tx: Tx, agency_id: int, *, besides_goal: int | None = None) -> dict[str, Row]:
    """The metric names of the agency's active goals' key results (by metric_key), but one goal's."""
    rows = await _key_results_of(tx, agency_id, active=True)
    return {metric_key(row["metric"]): row for row in rows if row["goal_id"] != besides_goal}


def _check_new_name(field: str, metric: str, taken: dict[str, Row]) -> None:
    """A new key result's name must read as a name and be free among the agency's active goals."""
    if looks_like_key_result_id(metric):
        raise InvalidInput(
            f"{field}: {metric!r} reads like a key result id; name the metric in words, e.g. 'emails sent'."
        )
    other = taken.get(metric_key(metric))
    if other is not None:
        short, goal = ids.format_id("key_result", other["id"]), ids.format_id("goal", other["goal_id"])
        raise InvalidInput(
            f"{field}: {metric!r} is already {short} of goal {goal} in this agency, and outcomes name key results "
            f"by their metric; give the new one another name, or close {goal} first (to change {short}, adjust {goal})."
        )


async def _insert_key_result(tx: Tx, goal_id: int, spec: KeyResultSpec, today: date) -> int:
    start = (spec.start_date or today).isoformat()
    return await tx.run(
        "INSERT INTO key_results (goal_id, metric, kind, unit, baseline, target, direction, start_date, due_date, "
        "current, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            goal_id,
            spec.metric,
            spec.kind,
            spec.unit,
            spec.baseline,
            spec.target,
            spec.direction,
            start,
            spec.due_date.isoformat(),
            spec.baseline,
            tx.now_text,
            tx.now_text,
        ),
    )


# --- changes -------------------------------------------------------------------------------------


async def create_goal(
    tx: Tx, actor: Actor, *, agency: str, title: str, description: str = "", key_results: Sequence[KeyResultSpec]
) -> GoalView:
    """Set a goal for an agency with 1-10 key results (operator-only)."""
    trust.require_operator(actor, "Setting a goal", GOAL_HINT)
    agency_row = await resolve_agency(tx, agency)
    if agency_row["status"] != "active":
        raise Conflict(f"agency: {agency_row['name']} is retired; reactivate it with set_agency (status active) first.")
    title = checked_text(title, "title", 200, required=True)
    description = checked_text(description, "description", 4000, required=False)
    specs = [coerce_input(KeyResultSpec, item, f"key_results[{i}]") for i, item in enumerate(key_results)]
    today = await _today(tx)
    _check_specs(specs, today, await _names_in_use(tx, agency_row["id"]))
    goal_id = await tx.run(
        "INSERT INTO goals (agency_id, title, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (agency_row["id"], title, description, tx.now_text, tx.now_text),
    )
    kr_ids = [await _insert_key_result(tx, goal_id, spec, today) for spec in specs]
    short = ids.format_id("goal", goal_id)
    await audit.append(
        tx,
        actor,
        "goal.create",
        short,
        {
            "agency": ids.format_id("agency", agency_row["id"]),
            "title": title,
            "key_results": [_spec_detail(kr_id, spec) for kr_id, spec in zip(kr_ids, specs, strict=True)],
        },
    )
    return await get_goal(tx, short)


def _spec_detail(kr_id: int, spec: KeyResultSpec) -> dict[str, Any]:
    return {
        "id": ids.format_id("key_result", kr_id),
        "metric": spec.metric,
        "kind": spec.kind,
        "baseline": spec.baseline,
        "target": spec.target,
        "direction": spec.direction,
        "due_date": spec.due_date.isoformat(),
    }


async def adjust_goal(
    tx: Tx,
    actor: Actor,
    goal: str,
    *,
    title: str | None = None,
    description: str | None = None,
    status: str | None = None,
    key_results: Sequence[KeyResultChange] | None = None,
) -> GoalView:
    """Retitle, re-describe, close or reopen a goal, change key results' targets, due dates or units,
    or add key results (operator-only). All of it lands as one audited change."""
    trust.require_operator(actor, "Changing a goal", f"chief-of-staff goal adjust {shlex.quote(str(goal))}")
    goal_row = await resolve_goal(tx, goal)
    fields = _goal_field_changes(title, description, status)
    changes = [coerce_input(KeyResultChange, c, f"key_results[{i}]") for i, c in enumerate(key_results or [])]
    if not fields and not changes:
        raise InvalidInput("Nothing to change: send title, description, status or key_results.")
    taken = await _names_in_use(tx, goal_row["agency_id"], besides_goal=goal_row["id"])
    if fields.get("status") == "active" and goal_row["status"] != "active":
        await _refuse_clashing_reopen(tx, goal_row, taken)
    plan = await _plan_key_result_changes(tx, goal_row, changes, await _today(tx), taken)
    if fields:
        sets = ", ".join(f"{column} = ?" for column in fields)
        await tx.run(
            f"UPDATE goals SET {sets}, updated_at = ? WHERE id = ?", (*fields.values(), tx.now_text, goal_row["id"])
        )
    details = [await step(tx) for step in plan]
    short = ids.format_id("goal", goal_row["id"])
    await audit.append(tx, actor, "goal.adjust", short, {**_brief_fields(fields), "key_results": details})
    return await get_goal(tx, short)


def _goal_field_changes(title: str | None, description: str | None, status: str | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    if title is not None:
        fields["title"] = checked_text(title, "title", 200, required=True)
    if description is not None:
        fields["description"] = checked_text(description, "description", 4000, required=False)
    if status is not None:
        if status not in get_args(GoalStatus):
            raise InvalidInput(f"status: {status!r} is not a goal status; send 'active', 'achieved' or 'dropped'.")
        fields["status"] = status
    return fields


def _brief_fields(fields: dict[str, str]) -> dict[str, Any]:
    # The description can be long; the audit row records that it changed, not the whole text.
    return {k: ("(changed)" if k == "description" else v) for k, v in fields.items()}


async def _refuse_clashing_reopen(tx: Tx, goal_row: Row, taken: dict[str, Row]) -> None:
    """A reopened goal's key results must not share a name with another active goal's."""
    for row in await tx.all("SELECT id, metric FROM key_results WHERE goal_id = ? ORDER BY id", (goal_row["id"],)):
        other = taken.get(metric_key(row["metric"]))
        if other is not None:
            mine, theirs = ids.format_id("key_result", row["id"]), ids.format_id("key_result", other["id"])
            goal = ids.format_id("goal", other["goal_id"])
            raise InvalidInput(
                f"status: reopening would give two active key results the name {row['metric']!r} ({mine} and "
                f"{theirs} of goal {goal}), and outcomes name key results by their metric; close {goal} first."
            )


Step = Any  # an async callable (tx) -> dict: one validated write, run after every check has passed


async def _plan_key_result_changes(
    tx: Tx, goal_row: Row, changes: Sequence[KeyResultChange], today: date, taken: dict[str, Row]
) -> list[Step]:
    """Validate every key-result change before any is written; return the writes to run."""
    existing = await tx.all("SELECT * FROM key_results WHERE goal_id = ? ORDER BY id", (goal_row["id"],))
    by_metric = {metric_key(row["metric"]): row for row in existing}
    count, plan, added = len(existing), [], set()
    for index, change in enumerate(changes):
        field = f"key_results[{index}]"
        if metric_key(change.key_result) in added:
            raise InvalidInput(f"{field}.key_result: {change.key_result!r} is added twice; send it once.")
        row = await _target_row(tx, goal_row, change.key_result, by_metric, field)
        if row is None:
            count += 1
            if count > MAX_KEY_RESULTS:
                raise InvalidInput(f"{field}: a goal has at most {MAX_KEY_RESULTS} key results.")
            _check_new_name(f"{field}.key_result", change.key_result, taken)
            spec = _spec_from_change(change, field)
            _check_spec(field, spec, today)
            added.add(metric_key(spec.metric))
            plan.append(_add_step(goal_row["id"], spec, today))
        else:
            plan.append(_change_step(row, change, field))
    return plan


async def _target_row(tx: Tx, goal_row: Row, ref: str, by_metric: dict[str, Row], field: str) -> Row | None:
    """The key result a change refers to ("KR3" or this goal's metric name), or None for a new metric."""
    if looks_like_key_result_id(ref):
        row = await resolve_key_result(tx, ref, field=f"{field}.key_result")
        if row["goal_id"] != goal_row["id"]:
            owner, this = ids.format_id("goal", row["goal_id"]), ids.format_id("goal", goal_row["id"])
            raise InvalidInput(
                f"{field}.key_result: {ref} belongs to goal {owner}, not {this}; adjust that goal instead."
            )
        return row
    return by_metric.get(metric_key(ref))


def _spec_from_change(change: KeyResultChange, field: str) -> KeyResultSpec:
    needed = ("baseline", "target", "direction", "due_date")
    missing = [name for name in needed if getattr(change, name) is None]
    if missing:
        raise InvalidInput(
            f"{field}: {change.key_result!r} is a new metric for this goal; to add it send "
            f"{', '.join(missing)} too (or send an existing id like KR3 to change one)."
        )
    fields = change.model_dump(include={"baseline", "target", "direction", "due_date", "start_date", "kind"})
    fields["kind"] = fields["kind"] or "cumulative"
    spec: KeyResultSpec = coerce_input(
        KeyResultSpec, {"metric": change.key_result, "unit": change.unit or "", **fields}, field
    )
    return spec


def _add_step(goal_id: int, spec: KeyResultSpec, today: date) -> Step:
    async def step(tx: Tx) -> dict[str, Any]:
        return {"added": _spec_detail(await _insert_key_result(tx, goal_id, spec, today), spec)}

    return step


def _change_step(row: Row, change: KeyResultChange, field: str) -> Step:
    for fixed in ("baseline", "direction", "start_date", "kind"):
        if getattr(change, fixed) is not None:
            raise InvalidInput(
                f"{field}.{fixed}: an existing key result keeps its {fixed}; change only "
                "target, due_date or unit, or add a new metric instead."
            )
    target = row["target"] if change.target is None else change.target
    due = change.due_date or date.fromisoformat(row["due_date"])
    _check_line(field, row["baseline"], target, row["direction"], date.fromisoformat(row["start_date"]), due)
    unit = row["unit"] if change.unit is None else change.unit
    if (target, due.isoformat(), unit) == (row["target"], row["due_date"], row["unit"]):
        raise InvalidInput(
            f"{field}: nothing changes for {ids.format_id('key_result', row['id'])}; "
            "send a new target, due_date or unit."
        )

    async def step(tx: Tx) -> dict[str, Any]:
        await tx.run(
            "UPDATE key_results SET target = ?, due_date = ?, unit = ?, updated_at = ? WHERE id = ?",
            (target, due.isoformat(), unit, tx.now_text, row["id"]),
        )
        was = {"target": row["target"], "due_date": row["due_date"], "unit": row["unit"]}
        return {
            "changed": ids.format_id("key_result", row["id"]),
            "target": target,
            "due_date": due.isoformat(),
            "unit": unit,
            "was": was,
        }

    return step
