"""Recording a review: accepted adjustments land as one audited change set, and a later one undoes it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import ChiefOfStaffError, Conflict, OperatorActRefused
from chief_of_staff.domain import agencies, goals, routines
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.review import changesets

pytestmark = pytest.mark.anyio

CHAT = Actor("operator", "chat")
AGENCY = Actor("agency:Outbound", "agency")
TABLES = (
    "change_sets",
    "change_set_items",
    "grants",
    "grant_versions",
    "key_results",
    "roles",
    "routines",
    "lessons",
    "audit_log",
)

WIDEN = {"tool": "update_grant", "arguments": {"grant_id": "GR1", "mode": "notify", "per_action_cap_cents": 2_000}}
RETARGET = {"tool": "adjust_goal", "arguments": {"goal_id": "G1", "key_results": [{"key_result": "KR1", "target": 9}]}}


@pytest.fixture
async def world(store: Store) -> Store:
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Prospect and book")
        await goals.create_goal(
            tx,
            OPERATOR_CLI,
            agency="Outbound",
            title="Pipeline",
            key_results=[
                KeyResultSpec(
                    metric="Meetings", unit="meetings", baseline=0, target=12, direction="up", due_date="2026-12-31"
                )
            ],
        )
        await grants.create_grant(
            tx,
            OPERATOR_CLI,
            GrantSpec(
                agency="Outbound",
                capability="email.send",
                mode="approve",
                per_action_cap_cents=5_000,
                budgets=[BudgetSpec(period="day", max_count=40)],
            ),
        )
    return store


async def counts(store: Store) -> dict[str, int]:
    async with store.read() as tx:
        return {table: await tx.scalar(f"SELECT count(*) FROM {table}") for table in TABLES}


async def grant_and_goal(store: Store) -> tuple[Any, Any]:
    async with store.read() as tx:
        grant = (await grants.list_grants(tx))[0]
        goal = await goals.get_goal(tx, "G1")
    return (grant.mode, grant.per_action_cap_cents), (goal.key_results[0].target, goal.key_results[0].due_date)


async def test_two_adjustments_land_as_one_change_set_with_one_audit_trail(world: Store) -> None:
    async with world.write() as tx:
        view = await changesets.record_review(tx, OPERATOR_CLI, adjustments=[WIDEN, RETARGET], note="Week 48")
    assert view.id == "CS1" and view.kind == "review" and view.channel == "verified" and view.note == "Week 48"
    assert [(c.tool, c.subject) for c in view.changes] == [("update_grant", "GR1"), ("adjust_goal", "G1")]
    assert view.changes[0].before == {"version": 1, "status": "active"}
    assert view.changes[0].after == {"version": 2, "status": "active"}
    assert await grant_and_goal(world) == (("notify", 2_000), (9, "2026-12-31"))
    async with world.read() as tx:
        rows = await tx.all(
            "SELECT action, subject, detail FROM audit_log WHERE id > "
            "(SELECT max(id) FROM audit_log WHERE action = 'grant.create') ORDER BY id"
        )
    assert [(r["action"], r["subject"]) for r in rows] == [
        ("grant.update", "GR1"),
        ("goal.adjust", "G1"),
        ("review.record", "CS1"),
    ]
    assert {json.loads(r["detail"])["change_set"] for r in rows} == {"CS1"}


async def test_a_revert_restores_the_state_before_as_a_change_set_of_its_own(world: Store) -> None:
    before = await grant_and_goal(world)
    async with world.write() as tx:
        await changesets.record_review(tx, OPERATOR_CLI, adjustments=[WIDEN, RETARGET])
    async with world.write() as tx:
        revert = await changesets.revert_change_set(tx, OPERATOR_CLI, "CS1", note="Too soon")
    assert await grant_and_goal(world) == before
    assert revert.id == "CS2" and revert.kind == "revert" and revert.reverts == "CS1"
    assert [(c.tool, c.subject) for c in revert.changes] == [("adjust_goal", "G1"), ("update_grant", "GR1")]
    assert revert.changes[1].arguments == {"grant_id": "GR1", "restore_version": 1}
    async with world.read() as tx:
        assert (await changesets.get_change_set(tx, "CS1")).reverted_by == "CS2"
        actions = [
            r["action"]
            for r in await tx.all(
                "SELECT action FROM audit_log WHERE json_extract(detail, '$.change_set') = 'CS2' ORDER BY id"
            )
        ]
    assert actions == ["goal.adjust", "grant.update", "review.revert"]


async def test_reverting_a_revert_applies_the_review_again(world: Store) -> None:
    async with world.write() as tx:
        await changesets.record_review(tx, OPERATOR_CLI, adjustments=[WIDEN, RETARGET])
        await changesets.revert_change_set(tx, OPERATOR_CLI, "CS1")
    with pytest.raises(OperatorActRefused, match="cannot be done in chat"):  # re-applying widens the mode
        async with world.write() as tx:
            await changesets.revert_change_set(tx, CHAT, "CS2")
    async with world.write() as tx:
        await changesets.revert_change_set(tx, OPERATOR_CLI, "CS2")
    assert await grant_and_goal(world) == (("notify", 2_000), (9, "2026-12-31"))


async def test_recent_lists_every_kind_of_change_set_newest_first(world: Store) -> None:
    async with world.write() as tx:
        await changesets.record_review(tx, OPERATOR_CLI, adjustments=[WIDEN])
        await changesets.revert_change_set(tx, OPERATOR_CLI, "CS1")
        await changesets.record_review(tx, OPERATOR_CLI, note="Quiet week")
    async with world.read() as tx:
        assert [(v.id, v.kind) for v in await changesets.recent(tx, 5)] == [
            ("CS3", "review"),
            ("CS2", "revert"),
            ("CS1", "review"),
        ]
        assert [v.id for v in await changesets.recent(tx, 2)] == ["CS3", "CS2"]


async def test_a_change_set_is_reverted_once(world: Store) -> None:
    async with world.write() as tx:
        await changesets.record_review(tx, CHAT, adjustments=[RETARGET])
        await changesets.revert_change_set(tx, CHAT, "CS1")
    before = await counts(world)
    with pytest.raises(Conflict, match="already reverted by CS2"):
        async with world.write() as tx:
            await changesets.revert_change_set(tx, CHAT, "CS1")
    assert await counts(world) == before


async def test_a_revert_refuses_to_undo_a_later_change(world: Store) -> None:
    async with world.write() as tx:
        await changesets.record_review(tx, OPERATOR_CLI, adjustments=[WIDEN, RETARGET])
        await grants.update_grant(tx, AGENCY, "GR1", per_action_cap_cents=1_000)  # a narrowing, after the review
    before = await counts(world)
    with pytest.raises(Conflict, match="GR1 has changed since CS1"):
        async with world.write() as tx:
            await changesets.revert_change_set(tx, CHAT, "CS1")
    assert await counts(world) == before


async def test_one_refused_adjustment_refuses_the_whole_review(world: Store) -> None:
    above_ceiling = {"tool": "update_grant", "arguments": {"grant_id": "GR1", "per_action_cap_cents": 900_000}}
    before, state = await counts(world), await grant_and_goal(world)
    with pytest.raises(OperatorActRefused, match=r"adjustments\[1\] \(update_grant\).*chat allowance is left"):
        async with world.write() as tx:
            await changesets.record_review(tx, CHAT, adjustments=[RETARGET, above_ceiling])
    assert await counts(world) == before and await grant_and_goal(world) == state


async def test_chat_cannot_accept_a_proposal_that_widens_a_mode(world: Store) -> None:
    before = await counts(world)
    with pytest.raises(OperatorActRefused, match=r"adjustments\[0\] \(update_grant\).*cannot be done in chat"):
        async with world.write() as tx:
            await changesets.record_review(tx, CHAT, adjustments=[WIDEN, RETARGET])
    assert await counts(world) == before


async def test_the_agency_cannot_record_a_review(world: Store) -> None:
    before = await counts(world)
    with pytest.raises(OperatorActRefused, match="Recording a review is an operator decision"):
        async with world.write() as tx:
            await changesets.record_review(tx, AGENCY, adjustments=[RETARGET])
    assert await counts(world) == before


@pytest.mark.parametrize(
    ("adjustment", "message"),
    [
        ({"tool": "delete_everything", "arguments": {}}, r"adjustments\[0\]\.tool: 'delete_everything' is not"),
        ({"tool": "update_grant"}, r"adjustments\[0\]: send \{\"tool\""),
        (
            {"tool": "update_grant", "arguments": {"grant_id": "GR1", "mood": "notify"}},
            r"adjustments\[0\]\.arguments\.mood: Extra inputs are not permitted",
        ),
        (
            {"tool": "set_routine", "arguments": {"routine_id": "RT1", "active": "no"}},
            r"adjustments\[0\]\.arguments\.active",
        ),
        (
            {
                "tool": "adjust_goal",
                "arguments": {
                    "goal_id": "G1",
                    "key_results": [
                        {
                            "key_result": "Replies",
                            "baseline": 0,
                            "target": 5,
                            "direction": "up",
                            "due_date": "2026-12-31",
                        }
                    ],
                },
            },
            "changes existing key results only",
        ),
        ({"tool": "update_grant", "arguments": {"grant_id": "GR9", "mode": "approve"}}, "GR9"),
    ],
)
async def test_a_malformed_adjustment_is_named_and_nothing_changes(
    world: Store, adjustment: dict[str, Any], message: str
) -> None:
    before = await counts(world)
    with pytest.raises(ChiefOfStaffError, match=message):
        async with world.write() as tx:
            await changesets.record_review(tx, OPERATOR_CLI, adjustments=[adjustment])
    assert await counts(world) == before


async def test_roster_routine_and_playbook_adjustments_are_undone_too(world: Store) -> None:
    adjustments = [
        {"tool": "set_role", "arguments": {"agency": "Outbound", "name": "Closer", "charter": "Run the calls"}},
        {"tool": "set_role", "arguments": {"agency": "Outbound", "name": "SDR", "status": "retired"}},
        {
            "tool": "add_routine",
            "arguments": {"agency": "Outbound", "title": "Follow up", "schedule": "weekdays", "key_result_id": "KR1"},
        },
        {
            "tool": "add_lesson",
            "arguments": {"agency": "Outbound", "kind": "works", "text": "Short subject lines get replies"},
        },
    ]
    async with world.write() as tx:
        view = await changesets.record_review(tx, OPERATOR_CLI, adjustments=adjustments)
    assert [c.subject for c in view.changes] == ["R2", "R1", "RT1", "L1"]
    async with world.read() as tx:
        roles = {r.name: r.status for a in (await agencies.roster(tx)).agencies for r in a.roles}
        assert roles == {"SDR": "retired", "Closer": "active"}
        assert [lesson.source for lesson in await agencies.playbook(tx, "Outbound")] == ["review"]
    async with world.write() as tx:
        await changesets.revert_change_set(tx, OPERATOR_CLI, "CS1")
        roles = {r.name: r.status for a in (await agencies.roster(tx)).agencies for r in a.roles}
        routine = await tx.one("SELECT active FROM routines WHERE id = 1")
        playbook = await agencies.playbook(tx, "Outbound")
    # An added role has a history, so undoing it retires it rather than deleting it.
    assert roles == {"SDR": "active", "Closer": "retired"}
    assert routine is not None and routine["active"] == 0 and playbook == []


async def test_a_paused_routine_makes_no_more_tasks(world: Store) -> None:
    async with world.write() as tx:
        await routines.add_routine(tx, AGENCY, agency="Outbound", title="Prospect", schedule="daily")
        await changesets.record_review(
            tx, OPERATOR_CLI, adjustments=[{"tool": "set_routine", "arguments": {"routine_id": "RT1", "active": False}}]
        )
        assert await routines.materialize_routines(tx, AGENCY) == 0


async def test_a_review_without_adjustments_records_that_it_happened(world: Store) -> None:
    async with world.write() as tx:
        view = await changesets.record_review(tx, OPERATOR_CLI, note="All on track")
        last = await changesets.last_review(tx)
    assert view.changes == [] and last is not None and last.id == "CS1" and last.note == "All on track"


async def test_two_changes_to_one_grant_in_a_set_are_undone_together(world: Store) -> None:
    before = await grant_and_goal(world)
    async with world.write() as tx:
        await changesets.record_review(
            tx,
            OPERATOR_CLI,
            adjustments=[
                WIDEN,
                {"tool": "update_grant", "arguments": {"grant_id": "GR1", "per_action_cap_cents": 100}},
            ],
        )
    assert (await grant_and_goal(world))[0] == ("notify", 100)
    async with world.write() as tx:
        await changesets.revert_change_set(tx, OPERATOR_CLI, "CS1")
    assert await grant_and_goal(world) == before


async def test_a_lesson_taken_out_comes_back_exactly_as_it_was(world: Store) -> None:
    async with world.write() as tx:
        await agencies.add_lesson(tx, AGENCY, agency_id=1, kind="works", text="Short subjects", source="outcome")
        await changesets.record_review(
            tx, OPERATOR_CLI, adjustments=[{"tool": "set_lesson", "arguments": {"lesson_id": "L1", "active": False}}]
        )
        assert await agencies.playbook(tx, "Outbound") == []
        # The agency learns something new meanwhile; it must not take the removed lesson's id.
        await agencies.add_lesson(tx, AGENCY, agency_id=1, kind="breaks", text="Long subjects", source="agency")
        await changesets.revert_change_set(tx, OPERATOR_CLI, "CS1")
        playbook = await agencies.playbook(tx, "Outbound")
    assert [(lesson.id, lesson.source, lesson.text) for lesson in playbook] == [
        ("L2", "agency", "Long subjects"),
        ("L1", "outcome", "Short subjects"),
    ]


async def test_undoing_a_revert_puts_the_review_back_in_effect(world: Store) -> None:
    async with world.write() as tx:
        await changesets.record_review(tx, CHAT, adjustments=[RETARGET])
        await changesets.revert_change_set(tx, CHAT, "CS1")
        await changesets.revert_change_set(tx, CHAT, "CS2")
        last = await changesets.last_review(tx)
        # In effect again, so it can be reverted again.
        again = await changesets.revert_change_set(tx, CHAT, "CS1")
    assert last is not None and last.id == "CS1" and last.reverted_by is None
    assert again.reverts == "CS1"


@pytest.mark.parametrize(
    ("adjustments", "message"),
    [
        ([{"tool": [], "arguments": {}}], r"adjustments\[0\]\.tool: \[\] is not an adjustment"),
        ([{"tool": "update_grant", "arguments": {"grant_id": "GR1", "restore_version": 10**30}}], "restore_version"),
        ([{"tool": "update_grant", "arguments": {"grant_id": "GR1", "restore_version": True}}], "restore_version"),
        (
            [
                {
                    "tool": "update_grant",
                    "arguments": {"grant_id": "GR1", "budgets": [{"period": "day", "max_count": 10**30}]},
                }
            ],
            "max_count",
        ),
        (None, "adjustments: send a list"),
    ],
)
async def test_hostile_adjustments_are_refused_as_input_errors(world: Store, adjustments: Any, message: str) -> None:
    before = await counts(world)
    with pytest.raises(ChiefOfStaffError, match=message):
        async with world.write() as tx:
            await changesets.record_review(tx, OPERATOR_CLI, adjustments=adjustments)
    assert await counts(world) == before


async def test_a_note_that_is_not_text_is_refused(world: Store) -> None:
    with pytest.raises(ChiefOfStaffError, match="not valid text"):
        async with world.write() as tx:
            await changesets.record_review(tx, OPERATOR_CLI, note="week \ud800")
