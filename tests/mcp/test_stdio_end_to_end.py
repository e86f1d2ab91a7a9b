"""The whole operator story through a real `chief-of-staff serve` subprocess over stdio.

The client speaks the 2025-11-25 handshake (mode="legacy"), as Claude Desktop does.
The server's clock is frozen on a Monday morning so weekday routines are due.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.types import TextResourceContents

from chief_of_staff.cli.demo import call, server_parameters

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MONDAY_MORNING = "2026-11-23T08:00:00Z"


async def _error_text(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    return result.content[0].text  # type: ignore[union-attr]


async def _resource_text(client: Client, uri: str) -> str:
    content = (await client.read_resource(uri)).contents[0]
    assert isinstance(content, TextResourceContents)
    return content.text


async def _stand_up_agency(client: Client) -> dict[str, str]:
    plan = await call(client, "apply_blueprint", name="outbound")
    assert plan["applied"] is False and any("role SDR" in line for line in plan["creates"])
    assert "operator" in (await _error_text(client, "apply_blueprint", name="outbound", dry_run=False)).lower()
    applied = await call(client, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
    assert applied["applied"] is True and applied["created_ids"]["agency"] == ["A1"]
    goals = (await call(client, "list_goals", agency="Outbound"))["goals"]
    return {kr["metric"]: kr["id"] for kr in goals[0]["key_results"]}


async def _goals_and_roster(client: Client) -> None:
    goal = await call(
        client,
        "create_goal",
        agency="Outbound",
        title="Grow the pipeline",
        confirm=True,
        key_results=[
            {
                "metric": "pipeline value",
                "unit": "USD",
                "baseline": 0,
                "target": 50000,
                "direction": "up",
                "due_date": "2027-03-31",
            }
        ],
    )
    kr = goal["key_results"][0]["id"]
    adjusted = await call(
        client, "adjust_goal", goal_id=goal["id"], confirm=True, key_results=[{"key_result": kr, "target": 60000}]
    )
    assert adjusted["key_results"][0]["target"] == 60000
    await call(client, "set_agency", name="Content", purpose="Publish one useful article a week.", confirm=True)
    await call(client, "set_role", agency="Content", name="Writer", charter="Drafts and edits articles.", confirm=True)
    roster = await call(client, "roster", agency="Outbound")
    names = {a["name"]: {r["name"] for r in a["roles"]} for a in roster["agencies"]}
    assert names == {"Outbound": {"SDR", "Researcher"}, "Content": {"Writer"}}
    assert roster["playbook"], "the blueprint seeds the playbook"


async def _authority(client: Client) -> None:
    granted = await call(
        client,
        "grant",
        agency="Outbound",
        role="SDR",
        capability="discount.offer",
        mode="auto",
        budgets=[{"period": "week", "max_count": 2}],
        confirm=True,
    )
    # The blueprint's 25.00 a week for data tools drew 50.00 of the chat allowance (7 days touch two weeks).
    costly = await _error_text(
        client,
        "grant",
        agency="Outbound",
        role="SDR",
        capability="gift.send",
        per_action_cap_cents=5000,
        budgets=[{"period": "week", "max_count": 2}],
        confirm=True,
    )
    assert ": 50.00 of the 100.00 chat allowance is left" in costly
    letter = (await call(client, "list_grants", letter=True))["letter"]
    assert "discount.offer" in letter and "Delegation" in letter
    revoked = await call(client, "revoke", grant_id=granted["id"], reason="Not this quarter.")
    assert revoked["status"] == "revoked"
    after = await call(
        client,
        "authorize",
        agency="Outbound",
        role="SDR",
        capability="discount.offer",
        amount_cents=1000,
        target="acme.com",
        idempotency_key=str(uuid.uuid4()),
    )
    assert after["answer"] != "allowed"


async def _work_session(client: Client, metrics: dict[str, str]) -> None:
    claimed = (await call(client, "claim_next_task", agency="Outbound", role="SDR"))["task"]
    assert claimed is not None and claimed["status"] == "claimed"
    allowed = await call(
        client,
        "authorize",
        agency="Outbound",
        role="SDR",
        capability="email.send",
        target="jane@northwind.com",
        task_id=claimed["id"],
        idempotency_key=str(uuid.uuid4()),
    )
    assert allowed["answer"] == "allowed"
    denied = await call(
        client,
        "authorize",
        agency="Outbound",
        role="SDR",
        capability="email.send",
        target="ops@city.gov",
        task_id=claimed["id"],
        idempotency_key=str(uuid.uuid4()),
    )
    assert denied["answer"] == "denied" and denied["grant_id"] == allowed["grant_id"]
    escalated = await call(
        client,
        "authorize",
        agency="Outbound",
        role="SDR",
        capability="contract.sign",
        amount_cents=0,
        target="acme.com",
        idempotency_key=str(uuid.uuid4()),
    )
    assert escalated["answer"] == "needs_approval" and escalated["decision_id"]
    followup = await call(
        client,
        "add_task",
        title="Follow up with Jane in three days",
        agency="Outbound",
        role="SDR",
        priority="P2",
        due_on="2026-11-26",
        depends_on=[claimed["id"]],
    )
    assert followup["blocked_by"] == [claimed["id"]]
    await call(client, "update_task", task_id=followup["id"], note="Only if no reply by Thursday.")
    done = await call(
        client,
        "complete_task",
        task_id=claimed["id"],
        result="success",
        summary="Sent 1 email.",
        metrics=[{"key_result": metrics["emails sent"], "delta": 1}],
        minutes_saved=10,
    )
    assert done["task"]["status"] == "done"
    await call(
        client,
        "log_outcome",
        agency="Outbound",
        role="SDR",
        summary="Jane replied: interested.",
        result="success",
        metrics=[{"key_result": metrics["positive replies"], "delta": 1}],
        evidence=["mailbox://inbox/jane"],
        lesson="Naming their new office in line one got a reply.",
    )


async def _operator_reads(client: Client, metrics: dict[str, str]) -> None:
    goals = (await call(client, "list_goals", agency="Outbound"))["goals"]
    key_results = {kr["id"]: kr for goal in goals for kr in goal["key_results"]}
    assert key_results[metrics["emails sent"]]["current"] == 1
    assert key_results[metrics["positive replies"]]["current"] == 1
    brief = await call(client, "brief", viewer="operator")  # the operator's own look moves the operator's mark
    assert brief["pending_decision_count"] >= 1
    assert brief["changes"]["total"] > 0
    assert any(grant["capability"] == "email.send" for grant in brief["authority"])
    assert brief["inbox"]["done_today"] == 1
    again = await call(client, "brief", viewer="operator")
    assert again["changes"]["total"] < brief["changes"]["total"], "the viewer's mark moved"
    assert "Decisions waiting for you" in await _resource_text(client, "cos://brief")
    assert "email.send" in await _resource_text(client, "cos://authority-letter")
    for uri in ("cos://goals", "cos://inbox", "cos://decisions", "cos://agencies/Outbound"):
        assert await _resource_text(client, uri)
    prompt = await client.get_prompt("work_session", {"agency": "Outbound", "role": "SDR"})
    assert "Outbound" in str(prompt.messages[0].content)
    assert "Naming their new office in line one got a reply." in str(prompt.messages[0].content)


async def _operator_reviews(client: Client) -> None:
    packet = await call(client, "review", days=7)
    assert packet["scorecards"][0]["outcomes"] == 2 and packet["pending_decision_count"] >= 1
    assert "## Proposals" in await _resource_text(client, "cos://review")
    recorded = await call(
        client,
        "record_review",
        confirm=True,
        adjustments=[{"tool": "update_grant", "arguments": {"grant_id": "GR1", "mode": "approve"}}],
    )
    assert [change["subject"] for change in recorded["changes"]] == ["GR1"]
    # Undoing it would move GR1's mode back from approve to auto: a widening chat never makes.
    refused = await _error_text(client, "record_review", revert=recorded["id"], confirm=True)
    assert "cannot be done in chat" in refused
    assert "chief-of-staff grant-update GR1 --restore 1, or in the console (open_console)" in refused


async def test_the_operator_story_over_stdio_in_the_claude_desktop_protocol(tmp_path: Path) -> None:
    db = tmp_path / "workspace.db"
    params = server_parameters(db, env={"CHIEF_OF_STAFF_NOW": MONDAY_MORNING})
    with (tmp_path / "server.log").open("w") as errlog, anyio.fail_after(120):
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            assert client.protocol_version == "2025-11-25"
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert {"chief_of_staff", "daily_brief", "work_session", "setup_agency"} <= prompts
            metrics = await _stand_up_agency(client)
            await _goals_and_roster(client)
            await _authority(client)
            await _work_session(client, metrics)
            await _operator_reads(client, metrics)
            await _operator_reviews(client)
    verify = subprocess.run(
        [sys.executable, "-m", "chief_of_staff", "audit", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr
    assert "verifies" in verify.stdout


def test_the_demo_runs_end_to_end_and_prints_the_brief(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chief_of_staff", "demo"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "denied" in result.stdout
    assert "needs_approval" in result.stdout
    assert "# Brief for operator" in result.stdout
    assert "recorded the review as change set CS1" in result.stdout


async def test_a_decision_opened_in_one_session_is_decided_on_the_command_line_and_redeemed_in_another(
    tmp_path: Path,
) -> None:
    db = tmp_path / "workspace.db"
    env = {"CHIEF_OF_STAFF_NOW": MONDAY_MORNING}
    request = {
        "agency": "Outbound",
        "role": "SDR",
        "capability": "contract.sign",
        "amount_cents": 0,
        "target": "acme.com",
    }
    with (tmp_path / "server.log").open("w") as errlog, anyio.fail_after(120):
        async with Client(stdio_client(server_parameters(db, env=env), errlog=errlog), mode="legacy") as monday:
            await call(monday, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
            asked = await call(monday, "authorize", **request, idempotency_key=str(uuid.uuid4()))
        assert asked["answer"] == "needs_approval"
        approve = subprocess.run(
            [
                sys.executable,
                "-m",
                "chief_of_staff",
                "approve",
                asked["decision_id"],
                "--db",
                str(db),
                "--note",
                "Signed off on the call.",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )
        assert approve.returncode == 0, approve.stderr
        async with Client(stdio_client(server_parameters(db, env=env), errlog=errlog), mode="legacy") as tuesday:
            redeemed = await call(tuesday, "authorize", **request, idempotency_key=str(uuid.uuid4()))
            again = await call(tuesday, "authorize", **request, idempotency_key=str(uuid.uuid4()))
            decided = (await call(tuesday, "list_decisions", status="redeemed"))["decisions"]
    assert redeemed["answer"] == "allowed" and redeemed["decision_id"] == asked["decision_id"]
    assert again["answer"] == "needs_approval", "an approval is used at most once"
    assert [d["id"] for d in decided] == [asked["decision_id"]]
