"""The missing verbs through the MCP surface, in both protocol eras: routines, list_outcomes, pausing an agency,
moving a task; and over HTTP, an agency token held to its own agency's routines, outcomes and pause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.domain import agencies, routines
from chief_of_staff.mcp.server import build_server
from chief_of_staff.mcp.subscriptions import BRIEF, GOALS, INBOX
from tests.conftest import START, db_rows
from tests.http_support import http_client, make_token, make_workspace, serving
from tests.mcp.test_mcp_surface import call, connect, count_rows, refused, stand_up
from tests.mcp.test_notifications import Heard, legacy, subscribe
from tests.mcp.test_notifications import call as notified_call

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "w.db"


async def test_routines_are_listed_added_edited_paused_and_resumed(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        listed = (await call(client, "routines"))["routines"]
        assert [(r["id"], r["schedule"]) for r in listed] == [
            ("RT1", "weekdays"),
            ("RT2", "weekdays"),
            ("RT3", "weekdays"),
        ]
        added = await call(
            client, "routines", action="add", agency="Outbound", title="Clean the CRM", schedule="weekly:fri"
        )
        assert added["routines"][0]["id"] == "RT4"
        edited = await call(client, "routines", action="edit", routine_id="RT4", schedule="monthly:1", priority="P3")
        assert (edited["routines"][0]["schedule"], edited["routines"][0]["priority"]) == ("monthly:1", "P3")
        paused = await call(client, "routines", action="pause", routine_id="RT4")
        assert paused["routines"][0]["active"] is False
        resumed = await call(client, "routines", action="resume", routine_id="RT4")
        assert resumed["routines"][0]["active"] is True
        message = await refused(client, "routines", {"action": "edit"})
        assert 'routine_id: edit needs the routine, e.g. "RT2"' in message


async def test_moving_a_routine_or_a_task_to_another_role_needs_the_operators_yes(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        audit = count_rows(db_path, "audit_log")
        message = await refused(client, "routines", {"action": "edit", "routine_id": "RT1", "role": "SDR"})
        assert "Moving RT1 to another agency or role" in message and "confirm=true" in message
        message = await refused(client, "update_task", {"task_id": "T1", "to_role": "SDR"})
        assert "Moving T1 to another agency or role" in message
        assert count_rows(db_path, "audit_log") == audit
        moved = await call(client, "update_task", task_id="T1", to_role="SDR", confirm=True)
        assert moved["role"] == "SDR"
        anyone = await call(client, "update_task", task_id="T1", to_role=None, confirm=True)
        assert anyone["role"] is None
        edited = await call(client, "routines", action="edit", routine_id="RT1", role="SDR", confirm=True)
        assert edited["routines"][0]["role"] == "SDR"


async def test_a_tasks_dependencies_goal_and_key_result_change_by_name_and_by_null(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        task = await call(client, "update_task", task_id="T2", depends_on=["T1"], key_result_id="emails sent")
        assert (task["depends_on"], task["blocked_by"], task["key_result"]) == (["T1"], ["T1"], "KR3")
        message = await refused(client, "update_task", {"task_id": "T1", "depends_on": ["T2"]})
        assert "T2 already waits on T1" in message
        cleared = await call(client, "update_task", task_id="T2", depends_on=[], goal_id=None)
        assert (cleared["depends_on"], cleared["goal"], cleared["key_result"]) == ([], None, None)


async def test_list_outcomes_filters_by_key_result_name_and_pages(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        for n in range(3):
            await call(
                client,
                "log_outcome",
                agency="Outbound",
                role="SDR",
                summary=f"Sent batch {n}",
                result="success",
                metrics=[{"key_result": "emails sent", "delta": 20}],
            )
        await call(client, "log_outcome", agency="Outbound", summary="Booked", result="success")
        first = await call(client, "list_outcomes", key_result="Emails Sent", limit=2)
        assert ([o["summary"] for o in first["outcomes"]], first["next"]) == (["Sent batch 2", "Sent batch 1"], "O2")
        rest = await call(client, "list_outcomes", key_result="Emails Sent", limit=2, before=first["next"])
        assert ([o["summary"] for o in rest["outcomes"]], rest["next"]) == (["Sent batch 0"], None)
        found = await call(client, "list_outcomes", text="book", since="2026-11-23", until="2026-11-23")
        assert [o["id"] for o in found["outcomes"]] == ["O4"]


async def test_a_paused_agency_claims_and_is_allowed_nothing_until_the_operator_resumes_it(
    db_path: Path, mode: str
) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        paused = await call(client, "set_agency", name="Outbound", status="paused", note="bounces spiked")
        assert (paused["status"], paused["paused_by"]) == ("paused", "agency")
        message = await refused(client, "claim_next_task", {"agency": "Outbound", "role": "SDR"})
        assert 'Outbound is paused ("bounces spiked"), so nothing is claimed for it' in message
        asked = await call(
            client, "authorize", agency="Outbound", role="SDR", capability="email.send", target="jane@acme.com"
        )
        assert asked["answer"] == "denied" and "chief-of-staff agency resume Outbound" in asked["reason"]
        message = await refused(client, "set_agency", {"name": "Outbound", "status": "active"})
        assert "Resuming the agency Outbound is an operator decision" in message
        resumed = await call(client, "set_agency", name="Outbound", status="active", confirm=True)
        assert resumed["status"] == "active"
        assert (await call(client, "claim_next_task", agency="Outbound", role="SDR"))["task"] is not None


# --- over HTTP: an agency token is held to its own agency ------------------------------------------------


@pytest.fixture
async def two_agencies(tmp_path: Path, clock: FixedClock) -> Path:
    """The Outbound blueprint (routines RT1-RT3) and Support, with routine RT4 and one outcome (O1)."""
    path = tmp_path / "acme.db"
    await make_workspace(path, clock)
    store = await Store.open(path, clock)
    try:
        async with store.write() as tx:
            await agencies.create_agency(tx, OPERATOR_CLI, name="Support", purpose="Answer customers")
            await routines.add_routine(tx, OPERATOR_CLI, agency="Support", title="Triage", schedule="daily")
    finally:
        await store.close()
    return path


async def test_an_agency_token_sees_and_changes_only_its_own_agencys_routines_outcomes_and_pause(
    two_agencies: Path, clock: FixedClock
) -> None:
    token = await make_token(two_agencies, clock, kind="agency", agency="Support")
    async with serving([two_agencies], clock) as url, http_client(f"{url}/mcp", token, "legacy") as client:
        await call(client, "log_outcome", summary="Answered", result="success")
        assert [r["id"] for r in (await call(client, "routines"))["routines"]] == ["RT4"]
        assert [o["agency"] for o in (await call(client, "list_outcomes"))["outcomes"]] == ["Support"]
        denied: list[tuple[str, dict[str, Any], str]] = [
            ("routines", {"action": "pause", "routine_id": "RT1"}, "belongs to another agency or role"),
            ("routines", {"action": "list", "agency": "Outbound"}, "cannot act as 'Outbound'"),
            ("list_outcomes", {"agency": "Outbound"}, "cannot act as 'Outbound'"),
            ("set_agency", {"name": "Outbound", "status": "paused"}, "Outbound is another agency"),
        ]
        for tool, arguments, expected in denied:
            assert expected in await refused(client, tool, arguments), tool
        assert (await call(client, "set_agency", name="Support", status="paused"))["paused_by"] == "agency"
        message = await refused(client, "set_agency", {"name": "Support", "status": "active", "confirm": True})
        assert "never makes operator acts" in message
    assert db_rows(two_agencies, "SELECT name, paused_by FROM agencies ORDER BY id") == [
        ("Outbound", None),
        ("Support", "agency"),
    ]


async def test_subscribers_hear_of_a_pause_but_not_of_a_routines_listing(tmp_path: Path) -> None:
    """A pause asks nobody and still changes the brief; a listing changes nothing: the outcome logged after it
    announces the goals before the inbox, so an inbox update from the listing would arrive ahead of it."""
    server = build_server(Settings(db_path=tmp_path / "w.db", clock=FixedClock(START)))
    listing, pausing = Heard(), Heard()
    async with legacy(server, listing) as client:
        await notified_call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        await subscribe(client, GOALS, INBOX)
        await notified_call(client, "routines")
        await notified_call(client, "log_outcome", agency="Outbound", summary="Marker", result="success")
        assert (await listing.until(GOALS))[0] == GOALS
    async with legacy(server, pausing) as client:
        await subscribe(client, BRIEF)
        await notified_call(client, "set_agency", name="Outbound", status="paused")
        assert BRIEF in await pausing.until(BRIEF)
