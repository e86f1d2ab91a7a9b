"""Viewers: who is looking, whose each subject is, and an agency's "since you last looked" over a long tail."""

from __future__ import annotations

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput, NotFound
from chief_of_staff.domain import brief, inbox, viewers
from chief_of_staff.domain.blueprints import loader

pytestmark = pytest.mark.anyio

AGENT = Actor("agency:Outbound/SDR", "agency")


@pytest.fixture
async def two(store: Store) -> Store:
    async with store.write() as tx:
        await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
        await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound", agency_name="Prospecting")
    return store


async def test_a_viewer_is_named_by_names_or_ids_in_any_case_and_read_back_canonical(two: Store) -> None:
    async with two.read() as tx:
        assert await viewers.resolve_viewer(tx, " Operator ") == viewers.OPERATOR_VIEWER
        seat = await viewers.resolve_viewer(tx, "AGENCY:outbound/sdr")
        by_id = await viewers.resolve_viewer(tx, "agency:A1/R1")
        agency = await viewers.resolve_viewer(tx, "agency:Prospecting")
    assert seat == by_id and (seat.name, seat.agency_id, seat.role) == ("agency:Outbound/SDR", 1, "SDR")
    assert (agency.name, agency.agency_id, agency.role, agency.agency_ref) == ("agency:Prospecting", 2, None, "A2")


@pytest.mark.parametrize(
    ("text", "error", "phrase"),
    [
        ("Outbound", InvalidInput, 'send "operator"'),
        ("agency:", InvalidInput, "name the agency"),
        ("agency:Nobody", NotFound, "no agency 'Nobody'"),
        ("agency:Outbound/Janitor", NotFound, "no role 'Janitor'"),
    ],
)
async def test_a_viewer_that_names_no_one_is_refused_with_what_to_send(
    two: Store, text: str, error: type[Exception], phrase: str
) -> None:
    async with two.read() as tx:
        with pytest.raises(error, match=phrase):
            await viewers.resolve_viewer(tx, text)


async def test_every_kind_of_subject_is_traced_to_its_agency(two: Store) -> None:
    async with two.read() as tx:
        subjects = ["A2", "R3", "G2", "KR4", "GR4", "T3", "RT4", "L7", "A1", "R1", "KR1", "T1"]
        found = await viewers.owners(tx, [*subjects, "workspace", "CS1", "D99", "AU1"])
    # Each blueprint makes 1 agency, 2 roles, 1 goal, 3 key results, 3 grants, 2 tasks, 3 routines, 6 lessons.
    assert found == {**{s: 2 for s in subjects[:8]}, **{s: 1 for s in subjects[8:]}} | {
        "workspace": None,
        "CS1": None,
        "D99": None,
        "AU1": None,
    }


async def test_an_agencys_mark_moves_past_other_agencies_work_even_when_the_tail_is_longer_than_one_scan(
    two: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the cursor left where it was when none of a scan was the agency's, it would rescan forever."""
    monkeypatch.setattr(brief, "CHANGE_SCAN_LIMIT", 5)
    outbound = await viewers_named(two, "agency:Outbound")
    while await look(two, outbound):  # a clean slate: the blueprints' own tail is read, five rows a look
        pass
    async with two.write() as tx:
        for number in range(12):  # twelve changes that are all Prospecting's
            await inbox.add_task(tx, OPERATOR_CLI, title=f"Prospecting's task {number}", agency="Prospecting")
        await inbox.add_task(tx, OPERATOR_CLI, title="Outbound's own task", agency="Outbound")
    seen = []
    for _ in range(4):
        async with two.write() as tx:
            seen.append((await brief.build_brief(tx, outbound.name, mark_seen=True)).changes)
    assert [(c.total, c.more) for c in seen] == [(0, True), (0, True), (1, False), (0, False)]
    assert seen[2].by_action == {"task.add": 1}


async def look(store: Store, viewer: viewers.Viewer) -> bool:
    """One brief that moves the viewer's mark; whether there was more to read."""
    async with store.write() as tx:
        return (await brief.build_brief(tx, viewer.name, mark_seen=True)).changes.more


async def viewers_named(store: Store, name: str) -> viewers.Viewer:
    async with store.read() as tx:
        return await viewers.resolve_viewer(tx, name)
