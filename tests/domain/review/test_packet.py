"""The review packet never fails because of what is stored: a broken section says so, the rest is shown."""

from __future__ import annotations

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.domain import agencies, goals, outcomes
from chief_of_staff.domain.goals import KeyResultSpec
from chief_of_staff.domain.outcomes import MetricDelta
from chief_of_staff.domain.review import packet

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound", "agency")


@pytest.fixture
async def world(store: Store) -> Store:
    """Outbound with goal G1 (KR1 meetings 0 -> 12) and one logged outcome that moved it by 1."""
    async with store.write() as tx:
        await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        await goals.create_goal(
            tx,
            OPERATOR_CLI,
            agency="Outbound",
            title="Pipeline",
            key_results=[
                KeyResultSpec(
                    metric="Meetings",
                    baseline=0,
                    target=12,
                    direction="up",
                    due_date="2027-02-21",
                    start_date="2026-11-01",
                )
            ],
        )
        await outcomes.log_outcome(
            tx,
            AGENCY,
            agency="Outbound",
            summary="Booked one",
            result="success",
            metrics=[MetricDelta(key_result="KR1", delta=1)],
        )
    return store


async def corrupt(store: Store, *statements: str) -> None:
    """Write what the server would no longer accept, as an older version or a hand edit could have."""
    async with store.write() as tx:
        for statement in statements:
            await tx.run(statement)


async def test_a_sound_workspace_has_no_problems(world: Store) -> None:
    async with world.read() as tx:
        built = await packet.build_packet(tx)
    assert built.problems == []
    assert "## Not shown" not in packet.render_packet(built)


@pytest.mark.parametrize(
    ("statements", "says"),
    [
        (  # what two deltas of 1e308 left behind: the forecast overflows
            ("UPDATE key_results SET current = 1e308", "UPDATE key_result_days SET delta_sum = 1e308, outcomes = 3"),
            "could not be computed",
        ),
        (("UPDATE key_results SET current = 9e999",), "G1 holds a number that cannot be shown"),  # infinity
        (("UPDATE key_results SET due_date = 'someday'",), "goals: could not be computed from the stored data"),
    ],
)
async def test_the_packet_shows_what_it_can_and_names_what_it_cannot(
    world: Store, statements: tuple[str, ...], says: str
) -> None:
    await corrupt(world, *statements)
    async with world.read() as tx:
        built = await packet.build_packet(tx)
    assert any(says in problem for problem in built.problems), built.problems
    assert [card.agency for card in built.scorecards] == ["Outbound"]
    assert built.changes.total > 0 and built.pending_decision_count == 0
    text = packet.render_packet(built)
    assert "## Scorecards" in text and f"## Not shown ({len(built.problems)})" in text


async def test_a_broken_section_does_not_stop_the_viewer_mark_moving(world: Store) -> None:
    await corrupt(world, "UPDATE key_results SET due_date = 'someday'")
    async with world.write() as tx:
        first = await packet.build_packet(tx, mark_seen=True)
    async with world.read() as tx:
        second = await packet.build_packet(tx)
    assert first.changes.total > 0 and second.changes.total == 0
