"""Many clients on one workspace: three over HTTP and one over stdio, each its own connection.

The HTTP server and the stdio server are separate processes writing one file, the way an
operator runs Cowork and Claude Desktop side by side. Every client claims, authorizes,
settles and completes at once; afterwards every write a client was told about is in the
file, no task was claimed twice, the budget admitted exactly what it allows, and the audit
chain verifies.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from chief_of_staff.cli import demo
from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock, format_ts
from chief_of_staff.core.db import Store
from chief_of_staff.domain import inbox, tokens
from tests.conftest import START, db_rows
from tests.domain.authority.test_concurrency import grant_spend_ads, init_outbound, verify_audit
from tests.http_support import http_client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROUNDS = 8
PRICE = 300
BUDGET = 2_000  # six purchases of 3.00 fit; the seventh would overspend


async def seed(db: Path) -> list[str]:
    """Forty tasks to claim and one agency token per HTTP client."""
    store = await Store.open(db, FixedClock(START))
    try:
        async with store.write() as tx:
            for number in range(40):
                await inbox.add_task(tx, OPERATOR_CLI, title=f"Prospect {number}", agency="Outbound", role="SDR")
            return [
                (
                    await tokens.create_token(
                        tx, OPERATOR_CLI, kind="agency", agency="Outbound", role="SDR", label=f"client {n}"
                    )
                )[1]
                for n in range(3)
            ]
    finally:
        await store.close()


@asynccontextmanager
async def http_server_process(db: Path, env: dict[str, str]) -> AsyncIterator[str]:
    """`chief-of-staff serve --http --port 0` as its own process; yields the endpoint it announces."""
    command = [sys.executable, "-m", "chief_of_staff", "serve", "--http", "--port", "0", "--db", str(db)]
    async with await anyio.open_process(command, env=env, stderr=subprocess.PIPE) as process:
        assert process.stderr is not None
        seen = ""
        try:
            with anyio.fail_after(30):
                async for chunk in process.stderr:
                    seen += chunk.decode()
                    found = re.search(r" at (http://\S+/mcp)", seen)
                    if found:
                        break
            assert found, seen
            async with anyio.create_task_group() as group:
                group.start_soon(_drain, process.stderr)
                yield found.group(1)
                group.cancel_scope.cancel()
        finally:
            process.terminate()


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


async def work(client: Client, ledger: dict[str, list[str]]) -> None:
    """The agency's loop, ROUNDS times: claim, authorize, settle or not, complete."""
    for _ in range(ROUNDS):
        claimed = await demo.call(client, "claim_next_task", agency="Outbound", role="SDR")
        task = claimed["task"]["id"]
        ledger["tasks"].append(task)
        asked = await demo.call(
            client,
            "authorize",
            agency="Outbound",
            role="SDR",
            capability="spend.ads",
            amount_cents=PRICE,
            target="ads.example.com",
            task_id=task,
            idempotency_key=str(uuid.uuid4()),
        )
        ledger["authorizations"].append(asked["authorization_id"])
        if asked["answer"] == "allowed":
            ledger["allowed"].append(asked["authorization_id"])
            await demo.call(client, "settle", authorization_id=asked["authorization_id"], actual_cents=PRICE)
        done = await demo.call(
            client,
            "complete_task",
            task_id=task,
            summary="Sent the ad",
            result="success" if asked["answer"] == "allowed" else "partial",
        )
        ledger["outcomes"].append(done["outcome"]["id"])


async def test_three_http_clients_and_a_stdio_process_lose_nothing_and_never_overspend(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    env = {**os.environ, "CHIEF_OF_STAFF_NOW": format_ts(START)}
    init_outbound(db, env)
    await grant_spend_ads(db, BUDGET)
    secrets = await seed(db)
    ledger: dict[str, list[str]] = {"tasks": [], "authorizations": [], "allowed": [], "outcomes": []}
    log = (tmp_path / "stdio.log").open("w")
    try:
        with anyio.fail_after(120):
            stdio = stdio_client(demo.server_parameters(db, env={"CHIEF_OF_STAFF_NOW": format_ts(START)}), errlog=log)
            async with (
                http_server_process(db, env) as url,
                http_client(url, secrets[0], "legacy") as one,
                http_client(url, secrets[1], "auto") as two,
                http_client(url, secrets[2], "legacy") as three,
                Client(stdio, mode="legacy") as four,
                anyio.create_task_group() as group,
            ):
                for client in (one, two, three, four):
                    group.start_soon(work, client, ledger)
    finally:
        log.close()

    rounds = 4 * ROUNDS
    assert len(ledger["tasks"]) == len(set(ledger["tasks"])) == rounds, "a task was claimed twice"
    assert len(ledger["allowed"]) == BUDGET // PRICE
    assert db_rows(db, "SELECT count(*) FROM authorizations") == [(rounds,)]
    assert {row[0] for row in db_rows(db, "SELECT id FROM authorizations")} == {
        int(a.removeprefix("AU")) for a in ledger["authorizations"]
    }
    assert {row[0] for row in db_rows(db, "SELECT id FROM outcomes")} >= {
        int(o.removeprefix("O")) for o in ledger["outcomes"]
    }
    done = db_rows(
        db,
        "SELECT count(*) FROM tasks WHERE status = 'done' AND id IN ({})".format(
            ",".join(t.removeprefix("T") for t in ledger["tasks"])
        ),
    )
    assert done == [(rounds,)]
    assert db_rows(
        db,
        "SELECT u.used_count, u.used_cents FROM budget_usage u JOIN grant_budgets b "
        "ON b.id = u.budget_id JOIN grants g ON g.id = b.grant_id WHERE g.capability = 'spend.ads'",
    ) == [(BUDGET // PRICE, BUDGET // PRICE * PRICE)]
    verify_audit(db)
