"""Webhooks for real: a server process, a loopback receiver, signatures checked the way a receiver would.

- An escalated `authorize` through the real stdio server produces exactly one signed
  `decision.opened` delivery.
- A server killed between sending and marking a delivery sends it again after a restart, with
  the same `webhook-id`: at least once, nothing lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from mcp import Client
from mcp.client.stdio import stdio_client
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chief_of_staff.cli import demo
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import FixedClock, format_ts
from chief_of_staff.core.db import Store
from chief_of_staff.domain.authority import ledger
from chief_of_staff.http.server import HttpOptions, bind
from tests.conftest import db_rows

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FAST_TICK = {"CHIEF_OF_STAFF_WEBHOOK_TICK": "0.1"}


class Receiver:
    """Records every request; with hang_first, never answers the first one (its sender is killed meanwhile)."""

    def __init__(self, *, hang_first: bool = False) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived = anyio.Event()
        self._hang_first = hang_first

    async def endpoint(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        self.arrived.set()
        if self._hang_first and len(self.requests) == 1:
            await anyio.sleep_forever()
        return Response(status_code=204)

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(30):
            while len(self.requests) < count:
                self.arrived = anyio.Event()
                await self.arrived.wait()


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    sock = bind(HttpOptions(port=0))
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    with sock:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)  # readiness: uvicorn offers no event to wait on
            try:
                yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
            finally:
                server.should_exit = True
                server.force_exit = True  # the hung request must not hold shutdown


def cli(db: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "chief_of_staff", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def verified(secret: str, request: tuple[dict[str, str], bytes]) -> dict[str, Any]:
    headers, body = request
    payload: dict[str, Any] = Webhook(secret).verify(body, headers)
    return payload


async def test_an_escalated_authorize_produces_exactly_one_signed_decision_opened(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    cli(db, "init", "--blueprint", "outbound", "--timezone", "UTC")
    receiver = Receiver()
    log = (tmp_path / "server.log").open("w")
    try:
        async with receiving(receiver) as url:
            secret = cli(db, "notify", "add", url, "--events", "decision.opened,grant.changed")
            params = demo.server_parameters(db, env=FAST_TICK)
            async with Client(stdio_client(params, errlog=log), mode="legacy") as client:
                asked = await demo.call(
                    client,
                    "authorize",
                    agency="Outbound",
                    role="SDR",
                    capability="spend.ads",
                    amount_cents=12_500,
                    target="linkedin.com",
                )
                assert asked["answer"] == "needs_approval"
                await receiver.wait_for(1)
                with anyio.fail_after(30):
                    while db_rows(db, "SELECT status FROM webhook_deliveries") != [("delivered",)]:
                        await anyio.sleep(0.05)  # the mark lands just after the answer
    finally:
        log.close()
    [request] = receiver.requests
    payload = verified(secret, request)
    assert payload["type"] == "decision.opened"
    assert payload["data"]["decision_id"] == asked["decision_id"] and payload["data"]["amount_cents"] == 12_500
    assert request[0]["webhook-id"].startswith("msg_")


async def test_a_server_killed_between_send_and_mark_sends_again_with_the_same_id(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    start = datetime.now(UTC).replace(microsecond=0)  # near real time, so signatures verify for a receiver
    cli(db, "init", "--blueprint", "outbound", "--timezone", "UTC", env={"CHIEF_OF_STAFF_NOW": format_ts(start)})
    receiver = Receiver(hang_first=True)
    async with receiving(receiver) as url:
        secret = cli(
            db, "notify", "add", url, "--events", "decision.opened", env={"CHIEF_OF_STAFF_NOW": format_ts(start)}
        )
        store = await Store.open(db, FixedClock(start))
        try:
            async with store.write() as tx:
                await ledger.authorize(
                    tx,
                    Actor("agency:Outbound/SDR", "agency"),
                    agency="Outbound",
                    role="SDR",
                    capability="spend.ads",
                    amount_cents=7_000,
                    target="x.com",
                    task_id=None,
                    idempotency_key=None,
                )
        finally:
            await store.close()

        serve = [sys.executable, "-m", "chief_of_staff", "serve", "--db", str(db)]
        first_env = {**os.environ, **FAST_TICK, "CHIEF_OF_STAFF_NOW": format_ts(start)}
        with subprocess.Popen(
            serve, env=first_env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as first:
            try:
                await receiver.wait_for(1)
            finally:
                first.send_signal(signal.SIGKILL)  # mid-send: the answer never came, the mark never landed
                first.wait(timeout=30)
        assert db_rows(db, "SELECT status, delivered_at FROM webhook_deliveries") == [("pending", None)]

        # The first sender's claim runs for a minute; the restarted server's clock is past it.
        later = {**os.environ, **FAST_TICK, "CHIEF_OF_STAFF_NOW": format_ts(start + timedelta(seconds=61))}
        with subprocess.Popen(
            serve, env=later, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as second:
            try:
                await receiver.wait_for(2)
                with anyio.fail_after(30):
                    while db_rows(db, "SELECT status FROM webhook_deliveries") != [("delivered",)]:
                        await anyio.sleep(0.05)
            finally:
                second.terminate()
                second.wait(timeout=30)
    before, after = receiver.requests
    assert before[0]["webhook-id"] == after[0]["webhook-id"]
    assert before[1] == after[1], "the same bytes, signed anew"
    assert before[0]["webhook-timestamp"] != after[0]["webhook-timestamp"]
    assert verified(secret, before)["type"] == verified(secret, after)["type"] == "decision.opened"
    assert db_rows(db, "SELECT count(*) FROM webhook_deliveries") == [(1,)]
