"""The agency's view is the agency's: with three agencies, an agency reads its own and never the operator's.

Every MCP test runs in both client modes. The workspace holds Outbound, a second outbound agency
("Prospecting") and an inbox agency ("Triage Desk"), each with work done, so anything another agency owns would show.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import TextResourceContents

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.domain import tokens, workspace
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.mcp.server import build_server
from tests.conftest import START, TIMEZONE, db_rows
from tests.http_support import http_client, make_token, serving
from tests.mcp.test_mcp_surface import call, refused

pytestmark = pytest.mark.anyio

OTHERS = ("Prospecting", "Triage Desk")
# The operator's own acts: an agency never reads them, not even about itself (see domain/viewers.py).
OPERATORS_OWN = ("workspace.", "token.", "webhook.", "review.", "grant.", "goal.", "agency.", "role.", "blueprint.")


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
async def db(tmp_path: Path, clock: FixedClock) -> Path:
    """Three agencies stood up from the terminal (the verified channel)."""
    path = tmp_path / "w.db"
    store = await Store.open(path, clock)
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Acme", timezone=TIMEZONE)
            await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
            await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound", agency_name="Prospecting")
            await loader.apply_blueprint(tx, OPERATOR_CLI, "inbox_triage", agency_name="Triage Desk")
    finally:
        await store.close()
    return path


@asynccontextmanager
async def connect(db: Path, clock: FixedClock, mode: str) -> AsyncIterator[Client]:
    async with Client(build_server(Settings(db_path=db, clock=clock)), mode=mode) as client:
        yield client


async def work(client: Client, agency: str, role: str, capability: str) -> dict[str, Any]:
    """One task claimed, one allowed action, one action that escalates, the task completed."""
    task = (await call(client, "claim_next_task", agency=agency, role=role))["task"]
    await call(client, "check", agency=agency, role=role, capability=capability, target="jane@acme.com")
    asked = await call(
        client,
        "authorize",
        agency=agency,
        role=role,
        capability="spend.ads",
        amount_cents=900,
        target="ads.example.com",
        task_id=task["id"],
    )
    await call(client, "log_outcome", agency=agency, role=role, summary=f"{agency} did a thing", result="success")
    return asked


async def operator_at_the_terminal(db: Path, clock: FixedClock) -> None:
    """The operator's own acts from the command line: a workspace setting and a new token."""
    store = await Store.open(db, clock)
    try:
        async with store.write() as tx:
            await workspace.update_settings(tx, OPERATOR_CLI, chat_window_days=3)
            await tokens.create_token(tx, OPERATOR_CLI, kind="agency", agency="Outbound")
    finally:
        await store.close()


async def busy(client: Client) -> dict[str, str]:
    """Work in all three agencies; the decision each one's escalation opened, by agency."""
    opened = {}
    for agency, role, capability in (
        ("Outbound", "SDR", "email.send"),
        ("Prospecting", "SDR", "email.send"),
        ("Triage Desk", "Triager", "email.reply"),
    ):
        opened[agency] = (await work(client, agency, role, capability))["decision_id"]
    return opened


def mentions_another_agency(data: Any) -> list[str]:
    text = json.dumps(data, ensure_ascii=False)
    return [name for name in OTHERS if name in text]


async def test_an_agency_brief_holds_its_own_agency_only(db: Path, clock: FixedClock, mode: str) -> None:
    async with connect(db, clock, mode) as client:
        await busy(client)
        seen = await call(client, "brief", viewer="agency:Outbound/SDR")
        everything = await call(client, "brief", viewer="operator", mark_seen=False)
    assert mentions_another_agency(seen) == []
    assert seen["viewer"] == "agency:Outbound/SDR" and seen["chat_allowance"] is None
    assert {goal["agency"] for goal in seen["goals"]} == {"Outbound"}
    assert {grant["agency"] for grant in seen["authority"]} == {"Outbound"}
    assert [d["agency"] for d in seen["pending_decisions"]] == ["Outbound"] and seen["pending_decision_count"] == 1
    assert {o["agency"] for o in seen["recent_outcomes"]} == {"Outbound"}
    assert {t["agency"] for t in seen["inbox"]["next_up"]} == {"Outbound"}
    # The operator's brief still holds everything, and the agency's is a fraction of it.
    assert set(mentions_another_agency(everything)) == set(OTHERS)
    assert everything["pending_decision_count"] == 3
    assert len(json.dumps(seen)) < len(json.dumps(everything)) / 2


async def test_an_agency_sees_its_own_work_and_the_operators_answer_but_not_the_operators_own_acts(
    db: Path, clock: FixedClock, mode: str
) -> None:
    async with connect(db, clock, mode) as client:
        await call(client, "brief", viewer="agency:Outbound")  # the agency has looked: a clean slate
        opened = await busy(client)
        await call(client, "decide", decision_id=opened["Outbound"], approve=True, confirm=True)
        await call(client, "decide", decision_id=opened["Prospecting"], approve=False, confirm=True)
        grant = (await call(client, "list_grants", agency="Outbound"))["grants"][0]["id"]
        await call(client, "update_grant", grant_id=grant, budgets=[{"period": "day", "max_count": 40}])  # narrower
        await operator_at_the_terminal(db, clock)
        changes = (await call(client, "brief", viewer="agency:Outbound"))["changes"]
    actions = changes["by_action"]
    assert actions["decision.open"] == 1 and actions["decision.approve"] == 1, "the operator's answer is seen"
    assert "decision.deny" not in actions, "another agency's decision is not"
    assert actions["outcome.log"] == 1 and actions["task.claim"] == 1
    assert [action for action in actions if action.startswith(OPERATORS_OWN)] == []
    assert f"decision.approve {opened['Outbound']}" in changes["latest"]


async def test_a_brief_without_a_viewer_never_moves_the_operators_mark(db: Path, clock: FixedClock, mode: str) -> None:
    """A work session's brief over stdio must not hide from the operator what the agency just did."""
    async with connect(db, clock, mode) as client:
        await call(client, "brief", viewer="operator")
        await busy(client)
        peeked = await call(client, "brief")
        again = await call(client, "brief")
        as_agency = await call(client, "brief", viewer="agency:Outbound/SDR")
        operator = await call(client, "brief", viewer="operator")
        after = await call(client, "brief", viewer="operator")
    assert peeked["viewer"] == "operator" and peeked["changes"]["total"] > 0
    assert again["changes"] == peeked["changes"], "a brief with no viewer moved a mark"
    assert as_agency["changes"]["total"] > 0
    assert operator["changes"] == peeked["changes"], "the agency's look moved the operator's mark"
    assert after["changes"]["total"] == 0, "the operator's own look moves the operator's mark"


async def test_an_unknown_viewer_is_refused_with_what_to_send(db: Path, clock: FixedClock, mode: str) -> None:
    async with connect(db, clock, mode) as client:
        for viewer in ("Outbound", "agency:Nobody", "agency:Outbound/Janitor"):
            message = await refused(client, "brief", {"viewer": viewer})
            assert "agency:" in message or "roster" in message.lower(), message
    assert db_rows(db, "SELECT count(*) FROM viewers") == [(0,)]


async def test_list_decisions_and_the_review_are_one_agencys_when_asked(db: Path, clock: FixedClock, mode: str) -> None:
    async with connect(db, clock, mode) as client:
        opened = await busy(client)
        listed = await call(client, "list_decisions", agency="Prospecting")
        packet = await call(client, "review", viewer="agency:Triage Desk", mark_seen=False)
    assert [d["id"] for d in listed["decisions"]] == [opened["Prospecting"]]
    assert [d["id"] for d in packet["pending_decisions"]] == [opened["Triage Desk"]]
    assert {card["agency"] for card in packet["scorecards"]} == {"Triage Desk"}
    assert {goal["agency"] for goal in packet["goals"]} == {"Triage Desk"}
    assert packet["last_review"] is None
    assert "Outbound" not in json.dumps(packet) and "Prospecting" not in json.dumps(packet)


# --- over HTTP, with an agency token --------------------------------------------------------------


async def resource(client: Client, uri: str) -> str:
    contents = (await client.read_resource(uri)).contents[0]
    assert isinstance(contents, TextResourceContents)
    return contents.text


async def test_an_agency_token_reads_its_own_agency_in_every_tool_and_resource(
    db: Path, clock: FixedClock, mode: str
) -> None:
    token = await make_token(db, clock, kind="agency", agency="Prospecting", role="SDR")
    async with connect(db, clock, mode) as local:
        await call(local, "brief", viewer="operator")
        opened = await busy(local)
        outbound_goal = (await call(local, "list_goals", agency="Outbound"))["goals"][0]["id"]
        outbound_task = (await call(local, "list_tasks", agency="Outbound"))["tasks"][0]["id"]
    async with serving([db], clock) as url, http_client(f"{url}/mcp", token, mode) as client:
        brief = await call(client, "brief")  # no viewer: the token's own, whatever is sent
        decisions = await call(client, "list_decisions", status="all")
        review = await call(client, "review", mark_seen=False)
        letter = (await call(client, "list_grants", letter=True))["letter"]
        texts = {uri: await resource(client, uri) for uri in ("cos://brief", "cos://review", "cos://goals")}
        texts |= {uri: await resource(client, uri) for uri in ("cos://inbox", "cos://decisions")}
        texts["cos://authority-letter"] = await resource(client, "cos://authority-letter")
        for uri in (f"cos://goals/{outbound_goal}", f"cos://tasks/{outbound_task}", "cos://agencies/Outbound"):
            with pytest.raises(MCPError, match="another agency"):
                await resource(client, uri)
    assert brief["viewer"] == "agency:Prospecting/SDR"
    assert [d["id"] for d in decisions["decisions"]] == [opened["Prospecting"]]
    for shown in (brief, review, letter, *texts.values()):
        text = shown if isinstance(shown, str) else json.dumps(shown)
        assert "Outbound" not in text and "Triage Desk" not in text, text[:300]
    assert "Prospecting" in texts["cos://brief"] and "Prospecting" in letter
    # The token's look moved its own mark and nobody else's.
    marks = dict(db_rows(db, "SELECT name, last_audit_id FROM viewers"))
    assert set(marks) == {"operator", "agency:Prospecting/SDR"}
    assert marks["operator"] < marks["agency:Prospecting/SDR"]
