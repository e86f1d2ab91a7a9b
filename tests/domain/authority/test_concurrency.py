"""Budgets and approvals hold under concurrency: in one server, and across two servers on one file.

Every test fires its authorize calls at once from an anyio task group and then counts
what was allowed against what the grant permits, reading the database from outside.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from chief_of_staff.cli import demo
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock, format_ts
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.domain import agencies, workspace
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.authority.grants import GrantSpec
from chief_of_staff.domain.authority.terms import BudgetSpec
from chief_of_staff.mcp.server import build_server
from tests.conftest import START, TIMEZONE, db_rows

pytestmark = pytest.mark.anyio

ASK = {"agency": "Outbound", "role": "SDR", "capability": "spend.ads"}


async def set_up(db: Path, budget: BudgetSpec | None, *, mode: Literal["auto", "approve"] = "auto") -> None:
    """Workspace, agency Outbound with role SDR, and (unless None) a spend.ads grant with one budget."""
    store = await Store.open(db, FixedClock(START))
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name="Test Co", timezone=TIMEZONE)
            await agencies.create_agency(tx, OPERATOR_CLI, name="Outbound", purpose="Book meetings")
            await agencies.set_role(tx, OPERATOR_CLI, agency="Outbound", name="SDR", charter="Sends")
            if budget is not None:
                await grants.create_grant(
                    tx,
                    OPERATOR_CLI,
                    GrantSpec(agency="Outbound", role="SDR", capability="spend.ads", mode=mode, budgets=[budget]),
                )
    finally:
        await store.close()


@asynccontextmanager
async def in_process(db: Path) -> AsyncIterator[Client]:
    async with Client(build_server(Settings(db_path=db, clock=FixedClock(START))), mode="legacy") as client:
        yield client


async def authorize_at_once(clients: list[Client], per_client: int, amount: int) -> list[dict[str, Any]]:
    """Fire `per_client` authorize calls from every client at once, each with a fresh idempotency key."""
    answers: list[dict[str, Any]] = []

    async def one(client: Client) -> None:
        answers.append(
            await demo.call(client, "authorize", **ASK, amount_cents=amount, idempotency_key=str(uuid.uuid4()))
        )

    async with anyio.create_task_group() as group:
        for _ in range(per_client):
            for client in clients:
                group.start_soon(one, client)
    return answers


def verify_audit(db: Path) -> None:
    verify = subprocess.run(
        [sys.executable, "-m", "chief_of_staff", "audit", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


# --- one server ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "calls", "amount", "allowed", "used"),
    [
        (BudgetSpec(period="day", max_cents=1_000), 24, 300, 3, (3, 900)),
        (BudgetSpec(period="day", max_count=5), 12, 0, 5, (5, 0)),
    ],
    ids=["cents", "count"],
)
async def test_concurrent_authorize_calls_in_one_server_admit_exactly_the_budget(
    tmp_path: Path,
    budget: BudgetSpec,
    calls: int,
    amount: int,
    allowed: int,
    used: tuple[int, int],
) -> None:
    db = tmp_path / "w.db"
    await set_up(db, budget)
    with anyio.fail_after(30):
        async with in_process(db) as client:
            answers = await authorize_at_once([client], calls, amount)
    assert sorted(a["answer"] for a in answers) == ["allowed"] * allowed + ["denied"] * (calls - allowed)
    assert all(a["grant_id"] == "GR1" for a in answers)
    assert db_rows(db, "SELECT used_count, used_cents FROM budget_usage") == [used]
    assert db_rows(db, "SELECT count(*) FROM authorizations") == [(calls,)]


async def test_an_approval_is_redeemed_once_by_concurrent_identical_requests(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    await set_up(db, BudgetSpec(period="day", max_cents=10_000), mode="approve")
    with anyio.fail_after(30):
        async with in_process(db) as client:
            asked = await demo.call(client, "authorize", **ASK, amount_cents=500, idempotency_key="first")
            assert asked["answer"] == "needs_approval"
            await demo.call(client, "decide", decision_id=asked["decision_id"], approve=True, confirm=True)
            answers = await authorize_at_once([client], 10, 500)
    allowed = [a for a in answers if a["answer"] == "allowed"]
    assert len(allowed) == 1 and allowed[0]["decision_id"] == asked["decision_id"]
    assert sorted({a["answer"] for a in answers}) == ["allowed", "needs_approval"]
    assert {a["decision_id"] for a in answers if a["answer"] == "needs_approval"} == {"D2"}, "one new ask"
    decision = int(asked["decision_id"].removeprefix("D"))
    assert db_rows(db, "SELECT status FROM decisions WHERE id = ?", (decision,)) == [("redeemed",)]
    assert db_rows(
        db, "SELECT count(*) FROM authorizations WHERE decision_id = ? AND answer = 'allowed'", (decision,)
    ) == [(1,)]
    assert db_rows(db, "SELECT count(*) FROM audit_log WHERE action = 'decision.redeem'") == [(1,)]
    assert db_rows(db, "SELECT used_count, used_cents FROM budget_usage") == [(1, 500)]


# --- two server processes on one file -----------------------------------------------------------


def init_outbound(db: Path, env: dict[str, str]) -> None:
    """The operator's `chief-of-staff init --blueprint outbound`, for real."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chief_of_staff",
            "init",
            "--blueprint",
            "outbound",
            "--db",
            str(db),
            "--timezone",
            TIMEZONE,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def grant_spend_ads(db: Path, max_cents: int) -> None:
    store = await Store.open(db, FixedClock(START))
    try:
        async with store.write() as tx:
            await grants.create_grant(
                tx,
                OPERATOR_CLI,
                GrantSpec(
                    agency="Outbound",
                    role="SDR",
                    capability="spend.ads",
                    budgets=[BudgetSpec(period="day", max_cents=max_cents)],
                ),
            )
    finally:
        await store.close()


@pytest.mark.slow
async def test_two_server_processes_on_one_file_never_overspend_a_budget(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    now = {"CHIEF_OF_STAFF_NOW": format_ts(START)}
    init_outbound(db, {**os.environ, **now})
    await grant_spend_ads(db, 2_000)
    budget_id = db_rows(
        db, "SELECT b.id FROM grant_budgets b JOIN grants g ON g.id = b.grant_id WHERE g.capability = 'spend.ads'"
    )[0][0]
    with anyio.fail_after(60):
        logs = [(tmp_path / f"server{i}.log").open("w") for i in (1, 2)]
        try:
            async with (
                Client(stdio_client(demo.server_parameters(db, env=now), errlog=logs[0]), mode="legacy") as first,
                Client(stdio_client(demo.server_parameters(db, env=now), errlog=logs[1]), mode="legacy") as second,
            ):
                answers = await authorize_at_once([first, second], 15, 300)
        finally:
            for log in logs:
                log.close()
    assert [a["answer"] for a in answers].count("allowed") == 6
    assert db_rows(db, "SELECT used_count, used_cents FROM budget_usage WHERE budget_id = ?", (budget_id,)) == [
        (6, 1_800)
    ]
    assert db_rows(db, "SELECT answer, count(*) FROM authorizations GROUP BY answer ORDER BY answer") == [
        ("allowed", 6),
        ("denied", 24),
    ]
    verify_audit(db)
