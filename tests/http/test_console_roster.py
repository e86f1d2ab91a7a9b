"""The console's Agencies page in-process over ASGI: the roster with each agency's roles, grants and pause, and
the acts that stop and restart work (pause, resume, retire, reactivate an agency or a role), made as the
console session on the verified channel.

These are the acts an operator without a terminal (Claude Desktop from the one-click bundle) could otherwise
not finish: chat never reactivates, and never lifts a pause made on a verified channel.

The app is the real one over the test's store and fixed clock; the workspace is the Outbound blueprint
(agency A1 with roles R1 SDR and R2 Researcher; GR1 email.send, GR2 spend.tools, GR3 meeting.book).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chief_of_staff.core.audit import OPERATOR_CLI, Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import OperatorActRefused
from chief_of_staff.domain import agencies
from chief_of_staff.domain.authority import ledger
from tests.http.console_support import (
    ESCAPED,
    SCRIPT,
    apply_outbound,
    assert_self_contained,
    flash,
    login,
    part,
    text_of,
)

pytestmark = pytest.mark.anyio

AGENCY = Actor("agency:Outbound", "agency")
CHAT = Actor("operator:chat", "chat")


@pytest.fixture
async def store(store: Store) -> Store:
    return await apply_outbound(store)


async def state(store: Store) -> tuple[Any, ...]:
    """What a roster act could change: agencies, roles, grants, and the audit log."""
    found = []
    async with store.read() as tx:
        for table in ("agencies", "roles", "grants", "audit_log"):
            found.append([tuple(row) for row in await tx.all(f"SELECT * FROM {table} ORDER BY rowid")])
    return tuple(found)


async def audit_rows(store: Store, action: str) -> list[tuple[Any, ...]]:
    async with store.read() as tx:
        rows = await tx.all("SELECT actor, channel, subject FROM audit_log WHERE action = ?", (action,))
    return [tuple(row) for row in rows]


async def email_answer(store: Store, role: str = "SDR") -> str:
    """What authorize answers the agency for a plain email that GR1 allows while Outbound works."""
    async with store.write() as tx:
        answer = await ledger.authorize(
            tx,
            AGENCY,
            agency="Outbound",
            role=role,
            capability="email.send",
            amount_cents=0,
            target="jane@acme.com",
            task_id=None,
            idempotency_key=None,
        )
    return answer.answer


async def outbound(store: Store) -> agencies.AgencyView:
    async with store.read() as tx:
        return await agencies.get_agency(tx, "A1")


# --- the page ----------------------------------------------------------------------------------------------


async def test_the_page_shows_each_agency_with_its_roles_grants_and_acts(
    store: Store, client: httpx.AsyncClient
) -> None:
    await login(store, client, "/agencies")
    page = (await client.get("/agencies")).text
    card = text_of(part(page, "A1", "</article>"))
    assert "Outbound A1, active" in card
    assert "Grants: GR1 email.send (auto), GR2 spend.tools (notify), GR3 meeting.book" in card
    assert "SDR R1 active" in card and "Researcher R2 active" in card
    assert "Pause Outbound" in card and "Retire Outbound" in card and "Reactivate" not in card
    assert 'aria-current="page">Agencies<' in page
    assert_self_contained(page)


async def test_the_page_needs_a_session(client: httpx.AsyncClient) -> None:
    answer = await client.get("/agencies")
    assert answer.status_code == 401 and "Log in" in answer.text


# --- pausing ----------------------------------------------------------------------------------------------


async def test_a_pause_stops_the_agency_and_says_so_with_its_note(store: Store, client: httpx.AsyncClient) -> None:
    csrf = await login(store, client, "/agencies")
    answer = await client.post("/agencies/A1/pause", data={"csrf": csrf, "note": "audit\r\nweek"})
    assert answer.status_code == 303 and answer.headers["location"] == "/agencies#A1"
    assert await email_answer(store) == "denied"
    assert await audit_rows(store, "agency.pause") == [("operator:console-1", "verified", "A1")]
    page = (await client.get("/agencies")).text
    assert flash(page) == "Outbound is paused: nothing is claimed or allowed for it."
    card = text_of(part(page, "A1", "</article>"))
    assert 'Paused 2026-11-23 09:00 by the operator on a verified channel ("audit week").' in card
    assert "Resume Outbound" in card and "Pause Outbound" not in card


async def test_a_pause_the_operator_made_at_a_terminal_is_lifted_here_and_never_in_chat(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await agencies.pause_agency(tx, OPERATOR_CLI, "Outbound", note="hold")
    with pytest.raises(OperatorActRefused) as refused:
        async with store.write() as tx:
            await agencies.resume_agency(tx, CHAT, "Outbound")
    assert str(refused.value).endswith("chief-of-staff agency resume Outbound, or in the console (open_console)")
    csrf = await login(store, client, "/agencies")
    await client.post("/agencies/A1/resume", data={"csrf": csrf})
    assert flash((await client.get("/agencies")).text) == "Outbound is resumed: its grants allow again what they allow."
    assert await email_answer(store) == "allowed"
    assert await audit_rows(store, "agency.resume") == [("operator:console-1", "verified", "A1")]


async def test_a_pause_the_agency_made_is_shown_as_its_own(store: Store, client: httpx.AsyncClient) -> None:
    async with store.write() as tx:
        await agencies.pause_agency(tx, AGENCY, "Outbound", note=SCRIPT)
    await login(store, client, "/agencies")
    page = (await client.get("/agencies")).text
    assert "<script" not in page and ESCAPED in page
    assert "Paused 2026-11-23 09:00 by the agency itself" in text_of(part(page, "A1", "</article>"))


async def test_today_says_what_is_paused_and_leads_to_where_it_is_resumed(
    store: Store, client: httpx.AsyncClient
) -> None:
    await login(store, client)
    assert 'id="paused"' not in (await client.get("/")).text
    async with store.write() as tx:
        await agencies.pause_agency(tx, AGENCY, "Outbound", note=SCRIPT)
    page = (await client.get("/")).text
    paused = part(page, "paused", "</section>")
    assert "Paused (1)" in text_of(paused) and "Outbound is paused since 2026-11-23 09:00" in text_of(paused)
    assert 'href="/agencies"' in paused and "<script" not in page and ESCAPED in paused


# --- retiring and reactivating ----------------------------------------------------------------------------


async def test_an_agency_is_retired_and_reactivated_only_with_the_box_ticked(
    store: Store, client: httpx.AsyncClient
) -> None:
    csrf = await login(store, client, "/agencies")
    await client.post("/agencies/A1/retire", data={"csrf": csrf})
    assert (await outbound(store)).status == "retired"
    assert await email_answer(store) == "denied"
    page = (await client.get("/agencies")).text
    assert flash(page).startswith("Outbound is retired: nothing is claimed or allowed for it")
    card = text_of(part(page, "A1", "</article>"))
    assert "I know this brings back every grant Outbound holds: GR1 email.send (auto)" in card

    before = await state(store)
    for unticked in ({}, {"confirm": "no"}, {"confirm": ""}):
        await client.post("/agencies/A1/reactivate", data={"csrf": csrf, **unticked})
        said = flash((await client.get("/agencies")).text)
        assert said.startswith("Reactivating A1: tick the box") and "Nothing was changed." in said
    assert await state(store) == before

    await client.post("/agencies/A1/reactivate", data={"csrf": csrf, "confirm": "yes"})
    assert flash((await client.get("/agencies")).text) == "Outbound is active again, with the grants it held."
    assert await email_answer(store) == "allowed"
    updates = await audit_rows(store, "agency.update")
    assert updates == [("operator:console-1", "verified", "A1")] * 2


async def test_chat_cannot_reactivate_and_its_refusal_names_the_console(store: Store) -> None:
    async with store.write() as tx:
        await agencies.update_agency(tx, OPERATOR_CLI, "Outbound", status="retired")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", status="retired")
    for act in (
        lambda tx: agencies.update_agency(tx, CHAT, "Outbound", status="active"),
        lambda tx: agencies.set_role(tx, CHAT, agency="Outbound", name="SDR", status="active"),
    ):
        with pytest.raises(OperatorActRefused) as refused:
            async with store.write() as tx:
                await act(tx)
        assert "cannot be done in chat" in str(refused.value)
        assert str(refused.value).endswith(", or in the console (open_console)")


async def test_a_role_is_retired_and_reactivated_with_the_box_ticked(store: Store, client: httpx.AsyncClient) -> None:
    researcher = await email_answer(store, "Researcher")
    csrf = await login(store, client, "/agencies")
    await client.post("/agencies/A1/roles/R1/retire", data={"csrf": csrf})
    page = (await client.get("/agencies")).text
    assert flash(page) == "SDR (Outbound) is retired: nothing is claimed or allowed for this role."
    assert "SDR R1 retired" in text_of(part(page, "R1", "</tr>"))
    assert await email_answer(store, "SDR") == "denied"
    assert await email_answer(store, "Researcher") == researcher != "denied"  # the agency's other seats go on

    before = await state(store)
    await client.post("/agencies/A1/roles/R1/reactivate", data={"csrf": csrf})
    assert flash((await client.get("/agencies")).text).startswith("Reactivating R1: tick the box")
    assert await state(store) == before

    await client.post("/agencies/A1/roles/R1/reactivate", data={"csrf": csrf, "confirm": "yes"})
    assert (
        flash((await client.get("/agencies")).text) == "SDR (Outbound) is active again, with the grants that name it."
    )
    assert await email_answer(store, "SDR") == "allowed"
    assert await audit_rows(store, "role.update") == [("operator:console-1", "verified", "R1")] * 2


async def test_ids_that_do_not_name_an_agency_or_its_role_are_refused_and_change_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        other = await agencies.create_agency(tx, OPERATOR_CLI, name="Support", purpose="Answer customers.")
        await agencies.set_role(tx, OPERATOR_CLI, agency="Support", name="Agent", charter="Answers tickets.")
    assert other.id == "A2"
    csrf = await login(store, client, "/agencies")
    before = await state(store)
    refusals = {
        "/agencies/A9/pause": "there is no agency 'A9'",
        "/agencies/R1/pause": "'R1' is not a agency id",
        "/agencies/A0/retire": "ids are positive",
        "/agencies/Outbound/retire": "'Outbound' is not a agency id",
        "/agencies/A2/roles/R1/retire": "agency Support has no role 'R1'",  # R1 is Outbound's
        "/agencies/A1/roles/GR1/retire": "'GR1' is not a role id",
        "/agencies/A1/roles/R99/reactivate": "agency Outbound has no role 'R99'",
        "/agencies/A99999999999999999999/resume": "is not a agency id",
    }
    for path, said in refusals.items():
        answer = await client.post(path, data={"csrf": csrf, "confirm": "yes"})
        assert answer.status_code == 303, path
        assert said in flash((await client.get("/agencies")).text), path
    assert await state(store) == before


async def test_every_post_without_the_csrf_token_is_refused_and_changes_nothing(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await agencies.pause_agency(tx, OPERATOR_CLI, "Outbound")
    await login(store, client, "/agencies")
    before = await state(store)
    for path in (
        "/agencies/A1/pause",
        "/agencies/A1/resume",
        "/agencies/A1/retire",
        "/agencies/A1/reactivate",
        "/agencies/A1/roles/R1/retire",
        "/agencies/A1/roles/R1/reactivate",
    ):
        for token in ({}, {"csrf": "guessed"}):
            answer = await client.post(path, data={"confirm": "yes", **token})
            assert answer.status_code == 403 and "Nothing was changed" in answer.text, path
    assert await state(store) == before


async def test_script_in_an_agencys_purpose_and_a_roles_charter_is_shown_escaped(
    store: Store, client: httpx.AsyncClient
) -> None:
    async with store.write() as tx:
        await agencies.update_agency(tx, OPERATOR_CLI, "Outbound", purpose=SCRIPT)
        await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter=SCRIPT)
    await login(store, client, "/agencies")
    page = (await client.get("/agencies")).text
    assert "<script" not in page and page.count(ESCAPED) == 2
