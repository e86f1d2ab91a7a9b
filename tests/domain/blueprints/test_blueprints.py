"""Blueprints: the shipped files load, a dry run writes nothing, applying is all or nothing."""

from __future__ import annotations

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import Conflict, InvalidInput, NotFound, OperatorActRefused
from chief_of_staff.domain.authority.terms import money_exposure
from chief_of_staff.domain.blueprints import schema
from chief_of_staff.domain.blueprints.loader import apply_blueprint, list_blueprints, load_blueprint, plan_blueprint

pytestmark = pytest.mark.anyio

CHAT = Actor("operator", "chat")
AGENCY = Actor("agency", "agency")
TABLES = (
    "agencies",
    "roles",
    "goals",
    "key_results",
    "grants",
    "grant_budgets",
    "routines",
    "lessons",
    "tasks",
    "audit_log",
)

MINIMAL = """
[blueprint]
name = "tiny"
title = "Tiny"
summary = "A one-role agency for tests."
version = 1

[agency]
name = "Tiny"
purpose = "Exist."

[[roles]]
name = "Doer"
charter = "Does things."

[[goals]]
key = "g"
title = "Do things"
  [[goals.key_results]]
  metric = "things done"
  baseline = 0
  target = 10
  direction = "up"
  due_in_days = 30

[[grants]]
role = "Doer"
capability = "email.send"
goal = "g"
  [[grants.budgets]]
  period = "day"
  max_count = 5
"""

# The same agency with a last grant above the $100 chat ceiling: applying it in chat fails half way.
OVER_THE_CEILING = (
    MINIMAL
    + """
[[grants]]
role = "Doer"
capability = "spend.ads"
per_action_cap_cents = 50000
"""
)


async def counts(store: Store) -> dict[str, int]:
    async with store.read() as tx:
        return {table: await tx.scalar(f"SELECT count(*) FROM {table}") for table in TABLES}


def test_both_shipped_blueprints_load_and_are_listed() -> None:
    listed = {summary.name: summary for summary in list_blueprints()}
    assert sorted(listed) == ["inbox_triage", "outbound"]
    outbound = listed["outbound"]
    assert (outbound.agency, outbound.roles, outbound.goals, outbound.grants, outbound.routines) == (
        "Outbound",
        2,
        1,
        3,
        3,
    )
    assert (listed["inbox_triage"].agency, listed["inbox_triage"].roles) == ("Inbox", 1)


def test_outbound_bounds_fit_the_default_chat_allowance_and_daily_limits() -> None:
    grants = {grant.capability: grant for grant in load_blueprint("outbound").grants}
    assert grants["email.send"].budgets[0].model_dump() == {"period": "day", "max_count": 50, "max_cents": None}
    assert "*.gov" in grants["email.send"].scope_deny
    assert grants["spend.tools"].per_action_cap_cents == 2500
    assert grants["spend.tools"].budgets[0].model_dump() == {"period": "week", "max_count": None, "max_cents": 2500}
    # Any 7 days touch two ISO weeks: applying it in chat draws 50.00 of the default 100.00 allowance.
    assert money_exposure(grants["spend.tools"], 7) == 5000
    assert grants["meeting.book"].budgets[0].max_count == 10


def test_blueprint_names_forgive_case_dashes_and_the_file_suffix() -> None:
    assert load_blueprint("Inbox-Triage.toml").blueprint.name == "inbox_triage"


def test_unknown_blueprint_lists_the_available_ones() -> None:
    with pytest.raises(NotFound, match="Available: inbox_triage, outbound"):
        load_blueprint("../../etc/passwd")


def test_a_misspelt_field_is_rejected_with_its_path_and_a_suggestion() -> None:
    broken = MINIMAL.replace('capability = "email.send"', 'capabilty = "email.send"')
    with pytest.raises(InvalidInput) as caught:
        schema.parse_blueprint(broken, source="tiny.toml")
    message = str(caught.value)
    assert "Blueprint tiny.toml is not valid" in message
    assert "grants #1 > capabilty: unknown field. Did you mean 'capability'?" in message
    assert "grants #1 > capability: required" in message


def test_a_bad_value_deep_in_the_file_names_the_entry_it_sits_in() -> None:
    broken = MINIMAL.replace('period = "day"', 'period = "fortnight"')
    with pytest.raises(InvalidInput, match=r"grants #1 \(email.send\) > budgets #1 \(fortnight\) > period"):
        schema.parse_blueprint(broken)


def test_a_grant_pointing_at_an_unknown_goal_key_is_rejected_with_the_known_keys() -> None:
    broken = MINIMAL.replace('goal = "g"', 'goal = "meetings"')
    with pytest.raises(InvalidInput, match=r"grants #1 \(email.send\) > goal: 'meetings' is not a goal key .* g\."):
        schema.parse_blueprint(broken)


def test_cross_references_of_routines_and_tasks_are_checked_at_load_time() -> None:
    broken = (
        MINIMAL
        + """
[[routines]]
role = "Doers"
title = "Do it"
schedule = "fortnightly"
goal = "g"
key_result = "things undone"

[[tasks]]
title = "Start"
key_result = "things done"
"""
    )
    with pytest.raises(InvalidInput) as caught:
        schema.parse_blueprint(broken)
    message = str(caught.value)
    assert "routines #1 (Do it) > role: 'Doers' is not a role in this blueprint; its roles are Doer." in message
    assert "routines #1 (Do it) > key_result: goal 'g' has no key result 'things undone'" in message
    assert "routines #1 (Do it) > schedule: 'fortnightly' is not a schedule" in message
    assert "tasks #1 (Start) > key_result: name the goal too" in message


def test_a_key_result_whose_target_contradicts_its_direction_is_rejected() -> None:
    broken = MINIMAL.replace('direction = "up"', 'direction = "down"')
    with pytest.raises(InvalidInput, match="direction 'down' needs a target below the baseline"):
        schema.parse_blueprint(broken)


def test_a_boolean_where_a_number_belongs_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="baseline: send a number, not true/false"):
        schema.parse_blueprint(MINIMAL.replace("baseline = 0", "baseline = false"))


def test_text_that_is_not_toml_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="not valid TOML"):
        schema.parse_blueprint("[blueprint\nname =")


async def test_a_plan_lists_what_would_be_created_and_writes_nothing(store: Store) -> None:
    before = await counts(store)
    async with store.write() as tx:
        plan = await plan_blueprint(tx, "outbound")
    assert await counts(store) == before
    assert (plan.agency, plan.conflicts, plan.applied, plan.created_ids) == ("Outbound", [], False, {})
    # Monday 2026-11-23 in Berlin plus 90 days.
    assert "goal Book qualified meetings (3 key results, due 2027-02-21)" in plan.creates
    assert "grant email.send for SDR: auto, 50 per day, to *.com, *.io, *.co, never to *.gov" in " ".join(plan.creates)
    assert "grant spend.tools for Researcher: notify, up to 25.00 USD per action, 25.00 USD per week" in (plan.creates)
    assert "routine weekdays: Research 20 new leads that fit the ICP (Researcher, P2)" in plan.creates
    assert "task Write the ideal customer profile (Researcher, P1, due 2026-11-25)" in plan.creates


async def test_applying_creates_the_whole_agency_with_one_blueprint_audit_row(store: Store) -> None:
    async with store.write() as tx:
        result = await apply_blueprint(tx, CHAT, "outbound")
    assert result.applied
    assert {kind: len(found) for kind, found in result.created_ids.items()} == {
        "agency": 1,
        "roles": 2,
        "goals": 1,
        "key_results": 3,
        "grants": 3,
        "routines": 3,
        "lessons": 6,
        "tasks": 2,
    }
    async with store.read() as tx:
        assert await tx.scalar("SELECT count(*) FROM audit_log WHERE action = 'blueprint.apply'") == 1
        assert await tx.scalar("SELECT blueprint FROM agencies") == "outbound"
        linked = await tx.all(
            "SELECT k.metric FROM routines r JOIN key_results k ON k.id = r.key_result_id ORDER BY r.id"
        )
        task = await tx.one("SELECT due_on, source, priority FROM tasks ORDER BY id LIMIT 1")
    assert [row["metric"] for row in linked] == ["emails sent", "meetings booked"]
    assert tuple(task) == ("2026-11-25", "blueprint", 1)


async def test_the_second_blueprint_applies_with_its_own_shape(store: Store) -> None:
    async with store.write() as tx:
        await apply_blueprint(tx, OPERATOR_CLI, "inbox_triage")
    async with store.read() as tx:
        grants = {row["capability"]: row for row in await tx.all("SELECT * FROM grants")}
        down = await tx.one("SELECT baseline, target, direction FROM key_results WHERE direction = 'down'")
    assert grants["email.archive"]["role_id"] is None
    assert grants["calendar.accept"]["mode"] == "approve"
    assert grants["email.reply"]["expires_at"] is not None
    assert tuple(down) == (24, 4, "down")


async def test_a_failure_half_way_leaves_nothing_behind(store: Store) -> None:
    over = schema.parse_blueprint(OVER_THE_CEILING, source="over.toml")
    before = await counts(store)
    with pytest.raises(OperatorActRefused, match=r"Creating a grant would let money go out with no period limit"):
        async with store.write() as tx:
            await apply_blueprint(tx, CHAT, over)
    assert await counts(store) == before


async def test_applying_twice_conflicts_and_suggests_a_free_name(store: Store) -> None:
    async with store.write() as tx:
        await apply_blueprint(tx, OPERATOR_CLI, "outbound")
    before = await counts(store)
    with pytest.raises(Conflict, match="agency_name='Outbound 2'"):
        async with store.write() as tx:
            await apply_blueprint(tx, OPERATOR_CLI, "outbound")
    assert await counts(store) == before


async def test_a_plan_reports_the_conflict_instead_of_raising(store: Store) -> None:
    async with store.write() as tx:
        await apply_blueprint(tx, OPERATOR_CLI, "outbound")
        plan = await plan_blueprint(tx, "OUTBOUND")
    assert plan.conflicts == [
        "agency Outbound (A1) already exists. Apply the blueprint with "
        "agency_name='Outbound 2' to stand up a second one, or adjust A1 instead."
    ]


async def test_an_agency_name_override_stands_up_a_second_agency(store: Store) -> None:
    async with store.write() as tx:
        await apply_blueprint(tx, OPERATOR_CLI, "outbound")
        second = await apply_blueprint(tx, OPERATOR_CLI, "outbound", agency_name="Outbound EU")
    assert (second.agency, second.created_ids["agency"]) == ("Outbound EU", ["A2"])
    assert second.creates[0] == "agency Outbound EU (blueprint outbound v1)"


async def test_an_agency_name_that_reads_like_an_id_is_refused(store: Store) -> None:
    before = await counts(store)
    with pytest.raises(InvalidInput, match="agency_name: 'A7' reads like an id"):
        async with store.write() as tx:
            await apply_blueprint(tx, OPERATOR_CLI, "outbound", agency_name="A7")
    assert await counts(store) == before


async def test_the_agency_channel_may_not_apply_a_blueprint(store: Store) -> None:
    before = await counts(store)
    with pytest.raises(OperatorActRefused, match="chief-of-staff init --blueprint outbound"):
        async with store.write() as tx:
            await apply_blueprint(tx, AGENCY, "outbound")
    assert await counts(store) == before
