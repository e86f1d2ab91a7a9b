"""Two simulated weeks of one Outbound agency over a real stdio subprocess, as Claude Desktop speaks.

Each session is its own `chief-of-staff serve` process with its clock frozen on that day; the
operator decides one decision from the command line (another process) and one in chat. Between the
sessions the waiting tasks come back or close, the agency redeems with the arguments the decision
shows, a request the operator denied is answered from the denial, and the brief's counts agree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from chief_of_staff.cli.demo import call, server_parameters

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DAYS = {
    "mon": "2026-11-23T08:00:00Z",
    "tue": "2026-11-24T08:30:00Z",
    "wed": "2026-11-25T09:00:00Z",
    "next_mon": "2026-11-30T08:00:00Z",
    "next_fri": "2026-12-04T08:00:00Z",
}


@asynccontextmanager
async def session(db: Path, log: Path, day: str) -> AsyncIterator[Client]:
    params = server_parameters(db, env={"CHIEF_OF_STAFF_NOW": DAYS[day]})
    with log.open("a") as errlog, anyio.fail_after(120):
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            assert client.protocol_version == "2025-11-25"
            yield client


def operator_cli(db: Path, day: str, *arguments: str) -> str:
    """The operator at a terminal: the verified channel, in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "chief_of_staff", *arguments, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHIEF_OF_STAFF_NOW": DAYS[day]},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def counts_agree(client: Client) -> dict[str, Any]:
    """The brief's inbox and decisions tell one story: every waiting task waits on a decision it lists."""
    brief = await call(client, "brief", viewer="operator", mark_seen=False)
    pending = {d["id"] for d in brief["pending_decisions"]}
    assert len(pending) == brief["pending_decision_count"]
    waiting = (await call(client, "list_tasks", status="waiting"))["tasks"]
    assert brief["inbox"]["waiting"] == len(waiting)
    assert {t["waiting_on"] for t in waiting} <= pending
    return brief


def purchase(task_id: str | None, amount: int, target: str) -> dict[str, Any]:
    return {
        "agency": "Outbound",
        "role": "Researcher",
        "capability": "spend.tools",
        "amount_cents": amount,
        "target": target,
        **({"task_id": task_id} if task_id else {}),
    }


async def test_two_weeks_of_asking_deciding_and_redeeming(tmp_path: Path) -> None:
    db, log = tmp_path / "workspace.db", tmp_path / "server.log"

    # Monday: the agency asks twice past its bounds, each for a task; both tasks wait on the operator.
    async with session(db, log, "mon") as monday:
        await call(monday, "apply_blueprint", name="outbound", dry_run=False, confirm=True)
        export = await call(
            monday, "add_task", title="Buy the fintech export", agency="Outbound", role="Researcher", priority="P0"
        )
        verify = await call(
            monday, "add_task", title="Verify 500 addresses", agency="Outbound", role="Researcher", priority="P0"
        )
        asked = await call(monday, "authorize", **purchase(export["id"], 4000, "clearbit.com"), idempotency_key="m1")
        other = await call(monday, "authorize", **purchase(verify["id"], 3000, "zerobounce.net"), idempotency_key="m2")
        assert (asked["answer"], other["answer"]) == ("needs_approval", "needs_approval")
        brief = await counts_agree(monday)
        assert brief["inbox"]["waiting"] == 2 and brief["pending_decision_count"] == 2

    # Tuesday: the operator approves one from a terminal and denies the other in chat.
    listed = operator_cli(db, "tue", "decisions")
    assert "capability spend.tools" in listed and "target clearbit.com" in listed and export["id"] in listed
    approved = operator_cli(db, "tue", "approve", asked["decision_id"], "--note", "Fine for the launch")
    assert "approved" in approved and "Redeem with: authorize(" in approved
    async with session(db, log, "tue") as tuesday:
        denied = await call(
            tuesday,
            "decide",
            decision_id=other["decision_id"],
            approve=False,
            note="Verify with the free tier",
            confirm=True,
        )
        assert denied["status"] == "denied"
        brief = await counts_agree(tuesday)
        assert brief["inbox"]["waiting"] == 0 and brief["pending_decision_count"] == 0

    # Wednesday: the agency's session claims the reopened task, redeems exactly as the decision shows,
    # and the denied request is answered from the denial without a new decision.
    async with session(db, log, "wed") as wednesday:
        claimed = (await call(wednesday, "claim_next_task", agency="Outbound", role="Researcher"))["task"]
        assert claimed is not None and claimed["id"] in (export["id"], verify["id"])
        [decision] = (await call(wednesday, "list_decisions", status="approved"))["decisions"]
        redeemed = await call(wednesday, "authorize", **decision["redeem_with"], idempotency_key="w1")
        assert redeemed["answer"] == "allowed" and redeemed["decision_id"] == asked["decision_id"]
        await call(wednesday, "settle", authorization_id=redeemed["authorization_id"], actual_cents=3900)
        again = await call(
            wednesday, "authorize", **purchase(verify["id"], 3000, "zerobounce.net"), idempotency_key="w2"
        )
        assert again["answer"] == "denied" and again["decision_id"] == other["decision_id"]
        assert "Verify with the free tier" in again["reason"]
        assert (await call(wednesday, "list_decisions", status="pending"))["decisions"] == []
        done = await call(wednesday, "complete_task", task_id=export["id"], result="success", summary="Export bought")
        assert done["task"]["status"] == "done"
        await counts_agree(wednesday)

    # The next Monday the agency asks again for a task; nobody answers, and by Friday it has run out:
    # the task is back in the inbox, with a note that says so, and nothing waits on a closed decision.
    async with session(db, log, "next_mon") as next_monday:
        third = await call(next_monday, "authorize", **purchase(verify["id"], 2600, "neverbounce.com"))
        assert third["answer"] == "needs_approval"
        assert (await counts_agree(next_monday))["inbox"]["waiting"] == 1
    async with session(db, log, "next_fri") as friday:
        brief = await counts_agree(friday)
        assert brief["inbox"]["waiting"] == 0 and brief["pending_decision_count"] == 0
        task = next(t for t in (await call(friday, "list_tasks"))["tasks"] if t["id"] == verify["id"])
        assert task["status"] == "open" and "closed without approval" in task["note"]
