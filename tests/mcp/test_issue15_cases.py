"""Issue 15's cases, re-run as written through the MCP surface in Claude Desktop's protocol.

Each test names the stumble it re-runs; each now behaves as the issue's Build section says. Deeper
tests of each rule live beside the code (tests/domain/test_deciding.py, test_key_results.py,
tests/domain/review/test_honest_early.py, tests/mcp/test_agency_view.py, test_verbs.py).
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
MODE = "legacy"  # Claude Desktop: protocol 2025-11-25, no elicitation, no sampling


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHIEF_OF_STAFF_NOW", START.isoformat())  # a terminal in the same week as the server
    return tmp_path / "w.db"


async def terminal(*arguments: str) -> None:
    """The operator at a terminal (the verified channel), in its own thread and event loop."""
    assert await anyio.to_thread.run_sync(main, list(arguments)) == 0


def send(task_id: str | None, target: str = "ceo@fintech.io", amount: int = 100) -> dict[str, Any]:
    """ "Outbound asks to email.send for 1.00": a paid send (say, through a deliverability service)."""
    return {
        "agency": "Outbound",
        "capability": "email.send",
        "amount_cents": amount,
        "target": target,
        **({"task_id": task_id} if task_id else {}),
    }


async def sdr_task(client: Client, title: str = "Email the fintech CEO") -> str:
    task = await call(client, "add_task", title=title, agency="Outbound", role="SDR", priority="P0")
    return str(task["id"])


async def test_a_decision_shows_its_target_task_and_grant_and_the_arguments_to_resend(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        task_id = await sdr_task(client)
        asked = await call(client, "authorize", **send(task_id), idempotency_key="a1")
        assert asked["answer"] == "needs_approval"  # the SDR's email.send grant sets no money limit
        [shown] = (await call(client, "list_decisions"))["decisions"]
    assert (shown["target"], shown["task_id"], shown["grant_id"]) == ("ceo@fintech.io", task_id, "GR1")
    assert shown["exceeds"] and shown["redeem_with"] == {**send(task_id), "role": "SDR"}


async def test_a_redeem_without_its_task_is_pointed_at_the_approval_instead_of_lost(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        task_id = await sdr_task(client)
        asked = await call(client, "authorize", **send(task_id), idempotency_key="a1")
        await call(client, "decide", decision_id=asked["decision_id"], approve=True, confirm=True)
        slipped = await call(client, "authorize", **send(None), idempotency_key="a2")
        assert f"{asked['decision_id']} is an unused approval" in slipped["reason"]
        [approved] = (await call(client, "list_decisions", status="approved"))["decisions"]
        redeemed = await call(client, "authorize", **approved["redeem_with"], idempotency_key="a3")
    assert redeemed["answer"] == "allowed" and redeemed["decision_id"] == asked["decision_id"]


async def test_approving_reopens_the_waiting_task_and_claim_returns_it(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        task_id = await sdr_task(client)
        asked = await call(client, "authorize", **send(task_id), idempotency_key="a1")
        brief = await call(client, "brief", viewer="operator")
        assert brief["inbox"]["waiting"] == 1 and brief["pending_decision_count"] == 1  # the counts agree
        assert (await call(client, "claim_next_task", agency="Outbound", role="SDR"))["task"]["id"] != task_id
        await terminal("approve", asked["decision_id"], "--db", str(db_path))
        brief = await call(client, "brief", viewer="operator")
        assert brief["inbox"]["waiting"] == 0 and brief["pending_decision_count"] == 0
        await call(client, "update_task", task_id="T1", status="open")  # put the blueprint task back
        claimed = (await call(client, "claim_next_task", agency="Outbound", role="SDR"))["task"]
    assert claimed["id"] == task_id and "authorize(" in claimed["note"]


async def test_a_denial_is_the_answer_to_the_same_request_and_nobody_is_asked_again(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        task_id = await sdr_task(client)
        asked = await call(client, "authorize", **send(task_id), idempotency_key="a1")
        await call(client, "decide", decision_id=asked["decision_id"], approve=False, note="Not this CEO", confirm=True)
        before = count_rows(db_path, "decisions")
        again = await call(client, "authorize", **send(task_id), idempotency_key="a2")
    assert again["answer"] == "denied" and again["decision_id"] == asked["decision_id"]
    assert "Not this CEO" in again["reason"] and count_rows(db_path, "decisions") == before


async def test_an_ad_spend_over_its_cap_is_approved_once_past_every_bound_it_showed(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        await terminal(
            "grant",
            *("--agency", "Outbound", "--capability", "spend.ads", "--cap-cents", "5000", "--month-cents", "9000"),
            *("--db", str(db_path)),
        )
        spent = await call(client, "authorize", agency="Outbound", capability="spend.ads", amount_cents=4000)
        assert spent["answer"] == "allowed"
        asked = await call(client, "authorize", agency="Outbound", capability="spend.ads", amount_cents=15000)
        [decision] = (await call(client, "list_decisions"))["decisions"]
        assert len(decision["exceeds"]) == 2  # the 50.00 cap and the 90.00 month, named before anyone decides
        await terminal("approve", asked["decision_id"], "--db", str(db_path))
        redeemed = await call(client, "authorize", agency="Outbound", capability="spend.ads", amount_cents=15000)
    assert redeemed["answer"] == "allowed" and "operator exception" in redeemed["reason"]


async def test_approving_a_proposal_applies_its_ready_change_or_says_what_to_run(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        bare = await call(
            client,
            "request_decision",
            agency="Outbound",
            kind="proposal",
            title="Raise the freelance budget to 500/month",
        )
        ready = await call(
            client,
            "request_decision",
            agency="Outbound",
            kind="proposal",
            title="Send 60 a day, not 50",
            adjustment={
                "tool": "update_grant",
                "arguments": {"grant_id": "GR1", "budgets": [{"period": "day", "max_count": 60}]},
            },
        )
        await terminal("approve", bare["id"], "--db", str(db_path))
        await terminal("approve", ready["id"], "--db", str(db_path))
        closed = {d["id"]: d for d in (await call(client, "list_decisions", status="approved"))["decisions"]}
        letter = (await call(client, "list_grants", agency="Outbound"))["grants"]
    assert "changed nothing" in closed[bare["id"]]["next_step"] and "chief-of-staff" in closed[bare["id"]]["next_step"]
    assert closed[ready["id"]]["change_set"] is not None
    assert next(g for g in letter if g["id"] == "GR1")["budgets"][0]["max_count"] == 60


async def test_key_results_by_name_level_values_and_retries_count_once(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        logged = {
            "agency": "Outbound",
            "summary": "Sent the first touches",
            "result": "success",
            "metrics": [{"key_result": "emails sent", "delta": 12}],
            "idempotency_key": "monday-sends",
        }
        first = await call(client, "log_outcome", **logged)
        again = await call(client, "log_outcome", **logged)  # the retried call
        assert first["id"] == again["id"]
        goal = (await call(client, "list_goals", agency="Outbound"))["goals"][0]
        sent = next(kr for kr in goal["key_results"] if kr["metric"] == "emails sent")
    assert sent["current"] == 12


async def test_authorize_takes_the_tasks_role_and_a_typo_is_an_input_error(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        task_id = await sdr_task(client)
        free = await call(client, "authorize", **send(task_id, amount=0), idempotency_key="a1")
        assert free["answer"] == "allowed"  # judged as the task's SDR, whose grant covers it
        message = await refused(client, "authorize", {**send(task_id, amount=0), "capability": "email_send"})
    assert "did you mean email.send" in message


async def test_a_work_sessions_brief_does_not_move_the_operators_mark(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        await call(client, "brief", viewer="operator")  # the operator looked
        await sdr_task(client, "Something the agency did")
        await call(client, "brief")  # a work session's look without a viewer
        await call(client, "brief", viewer="agency:Outbound/SDR")
        operator = await call(client, "brief", viewer="operator")
    assert operator["changes"]["total"] >= 1


async def test_the_missing_verbs_exist(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        routines = await call(client, "routines", action="list", agency="Outbound")
        assert routines["routines"]
        await call(client, "log_outcome", agency="Outbound", summary="Booked a demo", result="success")
        found = await call(client, "list_outcomes", agency="Outbound", text="demo")
        assert [o["summary"] for o in found["outcomes"]] == ["Booked a demo"]
        paused = await call(client, "set_agency", name="Outbound", status="paused", note="Holiday")
        assert paused["status"] == "paused"
        held = await call(client, "authorize", **send(None, amount=0))
        assert held["answer"] == "denied" and "paused" in held["reason"]
        assert await client.list_tools()  # the surface still lists
        rid = routines["routines"][0]["id"]
        edited = await call(client, "routines", action="edit", routine_id=rid, title="Research 25 leads")
        assert [r["title"] for r in edited["routines"]] == ["Research 25 leads"]


async def test_settle_repeated_with_the_same_arguments_returns_the_same_answer(db_path: Path) -> None:
    async with connect(db_path, MODE) as client:
        await stand_up(client)
        held = await call(client, "authorize", **send(None, amount=0), role="SDR", idempotency_key="a1")
        first = await call(client, "settle", authorization_id=held["authorization_id"], actual_cents=0)
        again = await call(client, "settle", authorization_id=held["authorization_id"], actual_cents=0)
    assert first == again
