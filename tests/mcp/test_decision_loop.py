"""The decision loop through the MCP surface, in Claude Desktop's protocol and the current one.

The agency asks past its bounds, the operator decides in chat, and the work comes back: the task
reopens with the redeem call, the redeem is allowed once, a "no" is answered from the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from chief_of_staff.cli.main import main
from tests.conftest import START
from tests.mcp.test_mcp_surface import call, connect, count_rows, refused, stand_up

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "w.db"


async def buying_task(client: Client) -> str:
    task = await call(
        client, "add_task", title="Buy the fintech contact export", agency="Outbound", role="Researcher", priority="P1"
    )
    return str(task["id"])


def ask(task_id: str | None, amount: int = 4000, target: str = "clearbit.com") -> dict[str, Any]:
    """The Researcher's purchase: 40.00 is past the 25.00 cap and the 25.00 week of spend.tools."""
    return {
        "agency": "Outbound",
        "capability": "spend.tools",
        "amount_cents": amount,
        "target": target,
        **({"task_id": task_id} if task_id else {}),
    }


async def test_an_approved_escalation_brings_its_task_back_and_is_redeemed_once(
    db_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHIEF_OF_STAFF_NOW", START.isoformat())  # the terminal shares the server's clock
    async with connect(db_path, mode) as client:
        await stand_up(client)
        task_id = await buying_task(client)
        asked = await call(client, "authorize", **ask(task_id), idempotency_key="buy-1")
        assert asked["answer"] == "needs_approval" and f"{task_id} waits on it" in asked["reason"]

        [decision] = (await call(client, "list_decisions"))["decisions"]
        assert (decision["capability"], decision["target"], decision["task_id"]) == (
            "spend.tools",
            "clearbit.com",
            task_id,
        )
        assert decision["grant_id"] and len(decision["exceeds"]) == 2
        assert decision["waiting_tasks"] == [task_id]
        assert decision["redeem_with"] == {**ask(task_id), "role": "Researcher"}
        waiting = await call(client, "list_tasks", status="waiting")
        assert [t["id"] for t in waiting["tasks"]] == [task_id]

        # Past the week's budget: chat never widens a budget, so the operator approves it at a terminal.
        refusal = await refused(client, "decide", {"decision_id": decision["id"], "approve": True, "confirm": True})
        assert f"chief-of-staff approve {decision['id']}" in refusal
        assert await anyio.to_thread.run_sync(main, ["approve", decision["id"], "--db", str(db_path)]) == 0
        [decided] = (await call(client, "list_decisions", status="approved"))["decisions"]
        assert decided["status"] == "approved"
        reopened = await call(client, "list_tasks", status="open")
        note = next(t["note"] for t in reopened["tasks"] if t["id"] == task_id)
        assert "authorize(" in note and '"clearbit.com"' in note

        redeemed = await call(client, "authorize", **decided["redeem_with"], idempotency_key="buy-2")
        assert redeemed["answer"] == "allowed" and redeemed["decision_id"] == decision["id"]
        again = await call(client, "authorize", **decided["redeem_with"], idempotency_key="buy-3")
        assert again["answer"] == "needs_approval" and again["decision_id"] != decision["id"]


async def test_a_denied_request_is_answered_from_the_denial(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        task_id = await buying_task(client)
        asked = await call(client, "authorize", **ask(task_id), idempotency_key="buy-1")
        await call(
            client,
            "decide",
            decision_id=asked["decision_id"],
            approve=False,
            note="Use the free tier this month",
            task_on_deny="fail",
            confirm=True,
        )
        failed = await call(client, "list_tasks", status="failed")
        assert [t["id"] for t in failed["tasks"]] == [task_id]
        decisions_before = count_rows(db_path, "decisions")
        again = await call(client, "authorize", **ask(None), idempotency_key="buy-2")
        asked_again = await call(client, "authorize", **ask(task_id), idempotency_key="buy-3")
        assert asked_again["answer"] == "denied" and asked_again["decision_id"] == asked["decision_id"]
        assert "Use the free tier this month" in asked_again["reason"]
        assert again["answer"] == "needs_approval"  # another request (no task): the operator is asked about it
        assert count_rows(db_path, "decisions") == decisions_before + 1


async def test_a_capability_typo_is_an_input_error_that_writes_nothing(db_path: Path, mode: str) -> None:
    async with connect(db_path, mode) as client:
        await stand_up(client)
        before = count_rows(db_path, "authorizations"), count_rows(db_path, "decisions")
        message = await refused(client, "authorize", {**ask(None), "capability": "spend_tools"})
        assert "did you mean spend.tools" in message
        assert (count_rows(db_path, "authorizations"), count_rows(db_path, "decisions")) == before
