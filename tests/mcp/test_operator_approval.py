"""Operator acts approved in the client's own prompt (elicitation) are verified; never asked otherwise."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitResult

from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.mcp.server import build_server
from tests.conftest import START

pytestmark = pytest.mark.anyio

# No period bounds its money, so chat never accepts it: only a verified channel may grant it.
BIG_GRANT = {"agency": "Outbound", "capability": "spend.ads", "per_action_cap_cents": 500_000}


class Prompter:
    """Stands in for the human at the client's approval prompt, and counts the questions."""

    def __init__(self, action: str = "accept", approve: bool = True) -> None:
        self.action, self.approve, self.asked = action, approve, []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.asked.append(params.message)
        content = {"approve": self.approve} if self.action == "accept" else None
        return ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _audit(db: Path, action: str) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT actor, channel FROM audit_log WHERE action = ?", (action,)).fetchall()


async def _workspace_with_outbound(db: Path) -> None:
    server = build_server(Settings(db_path=db, clock=FixedClock(START)))
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("apply_blueprint", {"name": "outbound", "dry_run": False, "confirm": True})
        assert not result.is_error


async def _call(db: Path, mode: str, prompter: Prompter | None, tool: str, arguments: dict[str, Any]) -> Any:
    server = build_server(Settings(db_path=db, clock=FixedClock(START)))
    async with Client(server, mode=mode, elicitation_callback=prompter) as client:
        return await client.call_tool(tool, arguments)


async def test_an_act_approved_in_the_prompt_is_verified_even_above_the_chat_ceiling(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "w.db"
    await _workspace_with_outbound(db)
    prompter = Prompter()
    result = await _call(db, mode, prompter, "grant", BIG_GRANT)
    assert not result.is_error, result.content
    assert len(prompter.asked) == 1 and "spend.ads" in prompter.asked[0]
    assert _audit(db, "grant.create")[-1] == ("operator", "verified")


@pytest.mark.parametrize(("action", "approve"), [("decline", True), ("cancel", True), ("accept", False)])
async def test_an_act_the_operator_turns_down_in_the_prompt_changes_nothing(
    tmp_path: Path, mode: str, action: str, approve: bool
) -> None:
    db = tmp_path / "w.db"
    await _workspace_with_outbound(db)
    before = len(_audit(db, "grant.create"))
    result = await _call(db, mode, Prompter(action, approve), "grant", {**BIG_GRANT, "confirm": True})
    assert result.is_error
    assert "declined" in result.content[0].text
    assert len(_audit(db, "grant.create")) == before


async def test_a_client_without_elicitation_is_never_asked_and_falls_back_to_the_chat_allowance(
    tmp_path: Path, mode: str
) -> None:
    db = tmp_path / "w.db"
    await _workspace_with_outbound(db)
    result = await _call(db, mode, None, "grant", {**BIG_GRANT, "confirm": True})
    assert result.is_error and "chat never accepts" in result.content[0].text
    small = await _call(
        db,
        mode,
        None,
        "grant",
        # No money, so no exposure: applying the blueprint in chat drew the whole allowance.
        {
            "agency": "Outbound",
            "capability": "spend.ads",
            "budgets": [{"period": "week", "max_count": 3}],
            "confirm": True,
        },
    )
    assert not small.is_error
    assert _audit(db, "grant.create")[-1] == ("operator", "chat")


async def test_a_dry_run_and_an_invalid_act_are_never_put_to_the_operator(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "w.db"
    prompter = Prompter()
    dry = await _call(db, mode, prompter, "apply_blueprint", {"name": "outbound", "dry_run": True})
    invalid = await _call(db, mode, prompter, "grant", {**BIG_GRANT, "per_action_cap_cents": -5})
    assert not dry.is_error and invalid.is_error
    assert prompter.asked == []


def test_the_approval_prompt_shows_the_changes_before_any_long_note() -> None:
    from chief_of_staff.mcp.caller import MESSAGE_LIMIT, approval_message

    note = "Weekly review: all on track. " * 200
    shown = approval_message(
        "Record review",
        {
            "note": note,
            "confirm": True,
            "adjustments": [{"tool": "update_grant", "arguments": {"grant_id": "GR2", "mode": "auto"}}],
        },
    )
    assert shown.index("GR2") < shown.index("Weekly review")
    assert "more characters not shown" in shown and len(shown) < MESSAGE_LIMIT + 300


# --- the prompt is built from the server's records (issue 14, item 6) ----------------------------


async def test_approving_a_decision_shows_its_recorded_terms_before_the_assistants_note(
    tmp_path: Path, mode: str
) -> None:
    """Once the prompt showed only {"decision_id": "D1", "note": "the 10.00 coffee order you mentioned"}."""
    db = tmp_path / "w.db"
    await _workspace_with_outbound(db)
    asked = await _call(
        db,
        mode,
        None,
        "authorize",
        {
            "agency": "Outbound",
            "role": "SDR",
            "capability": "travel.book",
            "amount_cents": 5_000_000,
            "target": "acme.com",
        },
    )
    decision = asked.structured_content["decision_id"]
    prompter = Prompter()
    note = "the 10.00 coffee order you mentioned"
    result = await _call(
        db, mode, prompter, "decide", {"decision_id": decision, "approve": True, "note": note, "confirm": True}
    )
    assert not result.is_error, result.content
    (message,) = prompter.asked
    facts, assistant = message.index("From the server's records"), message.index("Written by the assistant")
    assert facts < assistant and message.index(note) > assistant
    assert "amount 50,000.00" in message and "target acme.com" in message and "travel.book" in message


async def test_changing_a_grant_shows_its_bounds_before_and_after(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "w.db"
    await _workspace_with_outbound(db)
    prompter = Prompter()
    result = await _call(
        db, mode, prompter, "update_grant", {"grant_id": "GR2", "per_action_cap_cents": 4_000, "confirm": True}
    )
    assert not result.is_error, result.content
    (message,) = prompter.asked
    assert 'Bounds now: mode "notify", per_action_cap_cents 2500' in message
    assert 'After: mode "notify", per_action_cap_cents 4000' in message
    assert "This widens authority: raises the per-action cap from 25.00 to 40.00" in message
    restored = Prompter()
    back = await _call(db, mode, restored, "update_grant", {"grant_id": "GR2", "restore_version": 1, "confirm": True})
    assert not back.is_error, back.content
    assert 'After: mode "notify", per_action_cap_cents 2500' in restored.asked[0]


async def test_a_revert_shows_every_change_it_will_undo(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "w.db"
    await _workspace_with_outbound(db)
    adjustment = {"tool": "update_grant", "arguments": {"grant_id": "GR1", "mode": "approve"}}
    recorded = await _call(db, mode, None, "record_review", {"adjustments": [adjustment], "confirm": True})
    assert not recorded.is_error, recorded.content
    prompter = Prompter()
    result = await _call(db, mode, prompter, "record_review", {"revert": "CS1", "confirm": True})
    assert not result.is_error, result.content
    assert "Reverting CS1 (review by operator via chat) undoes: update_grant GR1" in prompter.asked[0]
