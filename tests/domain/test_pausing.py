"""Pausing an agency: nothing claimed, nothing allowed, until a channel as trusted as the pause's resumes it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chief_of_staff.core.audit import OPERATOR_CLI, Actor, Channel
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import Conflict, OperatorActRefused
from chief_of_staff.domain import agencies, brief, inbox, routines, workspace
from chief_of_staff.domain.authority import grants, ledger
from chief_of_staff.domain.authority.grants import GrantSpec
from tests.conftest import START, TIMEZONE

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound", "agency")
CHAT = Actor("operator", "chat")
ACTORS: dict[Channel, Actor] = {"agency": AGENCY, "chat": CHAT, "verified": OPERATOR_CLI}


@pytest.fixture
async def world(store: Store) -> Store:
    """Outbound (A1, role SDR) allowed to send email, one task ready; Content (A2) with one task ready."""
    async with store.write() as tx:
        for name in ("Outbound", "Content"):
            await agencies.create_agency(tx, OPERATOR_CLI, name=name, purpose=f"{name} work")
            await inbox.add_task(
                tx, AGENCY, title=f"{name} work", agency=name, priority="P1" if name == "Outbound" else "P2"
            )
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Sends")
        await grants.create_grant(tx, OPERATOR_CLI, GrantSpec(agency="Outbound", capability="email.send"))
    return store


async def pause(store: Store, actor: Actor = AGENCY, note: str = "") -> agencies.AgencyView:
    async with store.write() as tx:
        return await agencies.pause_agency(tx, actor, "Outbound", note=note)


async def resume(store: Store, actor: Actor = OPERATOR_CLI) -> agencies.AgencyView:
    async with store.write() as tx:
        return await agencies.resume_agency(tx, actor, "Outbound")


async def authorize(store: Store) -> ledger.AuthorizationView:
    async with store.write() as tx:
        return await ledger.authorize(
            tx,
            AGENCY,
            agency="Outbound",
            role="SDR",
            capability="email.send",
            amount_cents=0,
            target="jane@acme.com",
            task_id=None,
            idempotency_key=None,
        )


async def audit_actions(store: Store) -> list[tuple[str, str, dict[str, Any]]]:
    async with store.read() as tx:
        rows = await tx.all("SELECT action, channel, detail FROM audit_log WHERE action LIKE 'agency.%' ORDER BY id")
    return [(row["action"], row["channel"], json.loads(row["detail"])) for row in rows]


async def test_the_agency_may_pause_itself_and_the_roster_shows_who_paused_it(world: Store) -> None:
    view = await pause(world, note="bounces spiked")
    assert (view.status, view.paused_by, view.pause_note, view.paused_at) == (
        "paused",
        "agency",
        "bounces spiked",
        "2026-11-23T08:00:00.000000Z",
    )
    assert await audit_actions(world) == [
        ("agency.create", "verified", {"name": "Outbound", "blueprint": None}),
        ("agency.create", "verified", {"name": "Content", "blueprint": None}),
        ("agency.pause", "agency", {"paused_by": "agency", "note": "bounces spiked"}),
    ]


async def test_a_paused_agency_has_nothing_claimed_and_its_tasks_leave_the_queue(world: Store) -> None:
    await pause(world)
    async with world.write() as tx:
        with pytest.raises(
            Conflict, match=r"Outbound is paused, so nothing is claimed for it\. The operator can resume"
        ):
            await inbox.claim_next_task(tx, AGENCY, agency="Outbound")
        claimed = await inbox.claim_next_task(tx, AGENCY)  # Outbound's P1 task is skipped for Content's P2
        summary = await inbox.inbox_summary(tx)
    assert claimed is not None and claimed.agency == "Content"
    assert [task.agency for task in summary.next_up] == []


async def test_a_paused_agency_has_nothing_allowed_and_is_told_who_may_resume_it(world: Store) -> None:
    assert (await authorize(world)).answer == "allowed"
    await pause(world, actor=OPERATOR_CLI, note="audit week")
    answer = await authorize(world)
    assert answer.answer == "denied"
    assert answer.reason == (
        'Outbound is paused ("audit week"), so nothing is allowed for it. Only the operator can resume it, '
        "on a verified channel: `chief-of-staff agency resume Outbound`, or in the console (open_console)."
    )
    await resume(world)
    assert (await authorize(world)).answer == "allowed"


async def test_the_brief_says_who_is_paused_since_when_by_whom_and_who_may_resume_it(world: Store) -> None:
    async with world.read() as tx:
        assert (await brief.build_brief(tx)).paused == []
    await pause(world, CHAT, note="audit week")
    async with world.read() as tx:
        operator = await brief.build_brief(tx)
        own = await brief.build_brief(tx, "agency:Outbound")
        other = await brief.build_brief(tx, "agency:Content")
    [line] = operator.paused
    assert line.startswith('Outbound is paused since 2026-11-23 09:00 (Europe/Berlin), from chat ("audit week"): ')
    assert "nothing is claimed or allowed for it. The operator can resume it: in chat" in line
    assert own.paused == [line] and other.paused == []  # an agency's brief names only its own pause
    assert "## Paused\n- Outbound is paused since" in brief.render_brief(operator)
    assert "## Paused" not in brief.render_brief(other)


async def test_a_paused_agencys_routines_make_no_tasks(world: Store, clock: FixedClock) -> None:
    async with world.write() as tx:
        await routines.add_routine(tx, AGENCY, agency="Outbound", title="Research", schedule="daily")
    await pause(world)
    async with world.write() as tx:
        assert await routines.materialize_routines(tx, AGENCY) == 0
    await resume(world)
    async with world.write() as tx:
        assert await routines.materialize_routines(tx, AGENCY) == 1


async def test_the_agency_cannot_resume_even_its_own_pause(world: Store) -> None:
    await pause(world)
    async with world.write() as tx:
        with pytest.raises(
            OperatorActRefused,
            match=r"Resuming the agency Outbound is an operator decision.*"
            r"chief-of-staff agency resume Outbound",
        ):
            await agencies.resume_agency(tx, AGENCY, "Outbound")


async def test_chat_lifts_a_pause_made_in_chat_or_by_the_agency_but_never_the_operators_own(world: Store) -> None:
    await pause(world)
    assert (await resume(world, CHAT)).status == "active"
    await pause(world, actor=OPERATOR_CLI)
    await pause(world)  # the agency pausing again does not weaken the operator's pause
    async with world.write() as tx:
        with pytest.raises(OperatorActRefused, match="cannot be done in chat: the operator paused it on a verified"):
            await agencies.resume_agency(tx, CHAT, "Outbound")
    assert (await resume(world, OPERATOR_CLI)).status == "active"


async def test_a_retired_agency_is_not_paused_and_resuming_a_running_one_changes_nothing(world: Store) -> None:
    before = await audit_actions(world)
    assert (await resume(world)).status == "active"
    assert await audit_actions(world) == before
    async with world.write() as tx:
        await agencies.update_agency(tx, OPERATOR_CLI, "Content", status="retired")
        with pytest.raises(Conflict, match="Content is retired"):
            await agencies.pause_agency(tx, AGENCY, "Content")


# --- the rule as a property ------------------------------------------------------------------------

RANK = {"agency": 0, "chat": 1, "verified": 2}
FILES = itertools.count()
acts = st.lists(st.tuples(st.sampled_from(["pause", "resume"]), st.sampled_from(sorted(RANK))), max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=acts)
async def test_a_pause_is_lifted_only_by_an_operator_channel_at_least_as_trusted_as_every_pause_since(
    tmp_path: Path, steps: list[tuple[str, Channel]]
) -> None:
    """Whatever order the agency, chat and the terminal pause and resume in: the agency never resumes, chat never
    lifts a pause the terminal made, and a pause stands until an allowed resume."""
    store = await Store.open(tmp_path / f"w{next(FILES)}.db", FixedClock(START))
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone=TIMEZONE)
            await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
        held: int | None = None  # the strongest pause since the last resume
        for act, channel in steps:
            async with store.write() as tx:
                if act == "pause":
                    await agencies.pause_agency(tx, ACTORS[channel], "Outbound")
                    held = max(held if held is not None else -1, RANK[channel])
                    continue
                allowed = channel != "agency" and (held is None or RANK[channel] >= held)
                try:
                    await agencies.resume_agency(tx, ACTORS[channel], "Outbound")
                except OperatorActRefused:
                    assert not allowed, (act, channel, held)
                else:
                    assert allowed, (act, channel, held)
                    held = None
            async with store.read() as tx:
                row = await agencies.resolve_agency(tx, "Outbound")
            assert agencies.is_paused(row) == (held is not None)
    finally:
        await store.close()
