"""The review over MCP, on both protocol eras: the packet as a tool and a resource, and record_review."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from mcp.types import TextResourceContents

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.domain.review import changesets
from tests.conftest import START
from tests.mcp.test_mcp_surface import call, connect, count_rows, refused, stand_up

pytestmark = pytest.mark.anyio

NARROW = {"tool": "update_grant", "arguments": {"grant_id": "GR1", "mode": "approve"}}
RETARGET = {"tool": "adjust_goal", "arguments": {"goal_id": "G1", "key_results": [{"key_result": "KR1", "target": 15}]}}


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "w.db"


async def test_the_packet_is_a_tool_and_a_resource(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        packet = await call(client, "review", viewer="operator", days=7)
        assert packet["since"] == "2026-11-17" and packet["until"] == "2026-11-23"
        assert [card["agency"] for card in packet["scorecards"]] == ["Outbound"]
        assert packet["last_review"] is None and packet["changes"]["total"] > 0
        assert {"goals", "anomalies", "pending_decisions", "proposals"} <= set(packet)
        again = await call(client, "review", viewer="operator")
        assert again["changes"]["total"] == 0  # the operator's own look moved the operator's mark
        (content,) = (await client.read_resource("cos://review")).contents
        assert isinstance(content, TextResourceContents) and content.mime_type == "text/markdown"
        for heading in ("## Goals: progress, pace and forecast", "## Scorecards", "## Anomalies", "## Proposals"):
            assert heading in content.text


async def revert_in_a_terminal(db: Path, change_set: str) -> changesets.ChangeSetView:
    store = await Store.open(db, FixedClock(START))
    try:
        async with store.write() as tx:
            return await changesets.revert_change_set(tx, OPERATOR_CLI, change_set)
    finally:
        await store.close()


async def test_record_review_applies_a_change_set_and_reverts_it(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        recorded = await call(client, "record_review", adjustments=[NARROW, RETARGET], note="Week 48", confirm=True)
        assert recorded["id"] == "CS1" and recorded["channel"] == "chat"
        assert [c["subject"] for c in recorded["changes"]] == ["GR1", "G1"]
        grants = {g["id"]: g["mode"] for g in (await call(client, "list_grants"))["grants"]}
        assert grants["GR1"] == "approve"
        packet = await call(client, "review")
        assert packet["last_review"]["id"] == "CS1" and packet["last_review"]["changes"] == 2

        # Undoing the narrowing moves GR1 back to auto: a widening chat never makes; the terminal may.
        refused = await client.call_tool("record_review", {"revert": "CS1", "confirm": True})
        assert refused.is_error and "cannot be done in chat" in refused.content[0].text  # type: ignore[union-attr]
        reverted = await revert_in_a_terminal(db_path, "CS1")
        assert reverted.id == "CS2" and reverted.reverts == "CS1"
        grants = {g["id"]: g["mode"] for g in (await call(client, "list_grants"))["grants"]}
        goal = (await call(client, "list_goals"))["goals"][0]
    assert grants["GR1"] == "auto" and goal["key_results"][0]["target"] == 12
    actions = _audit_actions(db_path, "CS1")
    assert actions == ["grant.update", "goal.adjust", "review.record"]


async def test_record_review_without_the_operators_yes_changes_nothing(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        before = count_rows(db_path, "audit_log")
        message = await refused(client, "record_review", {"adjustments": [NARROW]})
        assert "Recording a review is an operator decision" in message and "confirm=true" in message
        message = await refused(
            client, "record_review", {"adjustments": [{"tool": "drop_tables", "arguments": {}}], "confirm": True}
        )
        assert "adjustments.0.tool" in message or "adjustments[0].tool" in message
        message = await refused(client, "record_review", {"adjustments": [NARROW], "revert": "CS1", "confirm": True})
        assert "revert: send it without adjustments" in message
    assert count_rows(db_path, "audit_log") == before and count_rows(db_path, "change_sets") == 0


def _audit_actions(db_path: Path, change_set: str) -> list[str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT action, detail FROM audit_log ORDER BY id").fetchall()
    finally:
        conn.close()
    return [action for action, detail in rows if json.loads(detail).get("change_set") == change_set]


async def test_the_review_returns_when_stored_numbers_are_absurd(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        conn = sqlite3.connect(db_path)
        with conn:  # what deltas of 1e308, logged before deltas were bounded, left behind
            conn.execute("UPDATE key_results SET current = 1e308, start_date = '2026-11-01'")  # old enough to forecast
            conn.execute(
                "INSERT INTO key_result_days (key_result_id, day, delta_sum, outcomes) "
                "SELECT id, '2026-11-23', 1e308, 3 FROM key_results"
            )
        conn.close()
        packet = await call(client, "review", days=7)
        (content,) = (await client.read_resource("cos://review")).contents
    assert packet["problems"] and [card["agency"] for card in packet["scorecards"]] == ["Outbound"]
    assert isinstance(content, TextResourceContents) and "## Not shown" in content.text
