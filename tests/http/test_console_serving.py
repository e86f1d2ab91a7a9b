"""Serving the console for real: `chief-of-staff console` as its own process, and `ensure_console` in this one.

Both listen on a free loopback port and are reached over real HTTP. The one-time link goes to the
terminal (or the caller) only: never to a log.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.db import Store
from chief_of_staff.http import console
from chief_of_staff.notify import endpoints
from tests.http_support import make_workspace

pytestmark = pytest.mark.anyio

NOW = "2026-11-23T08:00:00Z"


async def login(client: httpx.AsyncClient, url: str) -> None:
    """Log a browser-like client in through the link."""
    answer = await client.get(url)
    prefix = urlsplit(url).path.removesuffix("/login")
    assert answer.status_code == 303 and answer.headers["location"] == prefix + "/", answer.text
    assert f"Path={prefix}/" in answer.headers["set-cookie"]  # other ports of 127.0.0.1 are not sent it


def secret_prefix(url: str) -> str:
    """The console's per-run path prefix, `/c/<32 random characters>`."""
    path = urlsplit(url).path
    assert re.fullmatch(r"/c/[A-Za-z0-9_-]{32}", path), url
    return path


async def test_ensure_console_serves_the_workspace_in_process_and_hands_out_fresh_links(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handle = await console.ensure_console(store)
    try:
        assert handle.url.startswith("http://127.0.0.1:") and handle.running
        prefix = secret_prefix(handle.url)
        assert await console.ensure_console(store) is handle
        announced = console.state_path(store.path)
        assert stat.S_IMODE(announced.stat().st_mode) == 0o600
        assert console.running_console_url(store.path) == handle.url
        first, second = await handle.login_url(OPERATOR_CLI), await handle.login_url(OPERATOR_CLI, page="/goals")
        assert first != second and first.startswith(handle.url + "/login?token=")
        async with httpx.AsyncClient(timeout=10) as client:
            await login(client, first)
            today = await client.get(handle.url + "/")
            assert today.status_code == 200 and "Decisions waiting for you" in today.text
            assert (await client.get(first)).status_code == 401  # once
            # Outside its secret prefix the console is not there: not even the stylesheet, nor with the cookie.
            origin = handle.url.removesuffix(prefix)
            for elsewhere in ("/", "/goals", "/static/console.css", "/c/", prefix[:-1] + "/"):
                assert (await client.get(origin + elsewhere)).status_code == 404, elsewhere
        # The server's own logs (the test's HTTP client logs the URLs it fetches, as a browser's history would).
        logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
        assert "Started server process" in logged
        for secret in (first, second):
            assert secret.split("=", 1)[1] not in logged
    finally:
        await handle.close()
    assert not handle.running and not console.state_path(store.path).exists()


async def _line(stream: BufferedByteReceiveStream) -> str:
    with anyio.fail_after(60):
        return (await stream.receive_until(b"\n", 4096)).decode()


async def _link(db: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "chief_of_staff", "console", "--link", "--db", str(db)]
    with anyio.fail_after(60):
        return await anyio.run_process(command, env=env, check=False)


@pytest.mark.slow
async def test_the_console_command_prints_a_link_that_logs_in_once_and_console_link_mints_another(
    tmp_path: Path, clock: FixedClock
) -> None:
    db = tmp_path / "acme.db"
    await make_workspace(db, clock)
    env = {**os.environ, "CHIEF_OF_STAFF_NOW": NOW, "PYTHONUNBUFFERED": "1"}
    nothing = await _link(db, env)
    assert nothing.returncode == 2 and b"No console is running" in nothing.stderr

    command = [sys.executable, "-m", "chief_of_staff", "console", "--no-browser", "--db", str(db)]
    async with await anyio.open_process(command, env=env, stderr=subprocess.PIPE) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            lines = BufferedByteReceiveStream(process.stdout)
            assert "works once" in await _line(lines)
            link = (await _line(lines)).strip()
            assert link.startswith("http://127.0.0.1:") and "/login?token=cosl_" in link
            async with httpx.AsyncClient(timeout=10) as browser:
                await login(browser, link)
                assert (await browser.get(link.split("/login")[0] + "/goals")).status_code == 200
                assert (await browser.get(link)).status_code == 401

            minted = await _link(db, env)
            assert minted.returncode == 0, minted.stderr
            fresh = minted.stdout.decode().strip()
            assert fresh != link and fresh.split("/login")[0] == link.split("/login")[0]  # the run keeps its prefix
            secret_prefix(fresh.split("/login")[0])
            async with httpx.AsyncClient(timeout=10) as browser:
                await login(browser, fresh)

            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                assert await process.wait() == 0
            errors = (await process.stderr.receive(65536)).decode()
        finally:
            if process.returncode is None:  # a failed assertion must not leave it running
                process.kill()
    assert "the console for" in errors
    assert link.split("=", 1)[1] not in errors and fresh.split("=", 1)[1] not in errors
    assert not console.state_path(db).exists()


@pytest.mark.slow
async def test_the_console_command_sends_queued_webhook_messages_with_no_server_running(
    tmp_path: Path, clock: FixedClock
) -> None:
    """An approval in the console queues its messages; with Desktop closed there is no server to send them."""
    received: list[str] = []  # the webhook-id of each message the hook was sent

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            received.append(self.headers["webhook-id"])
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    db = tmp_path / "acme.db"
    await make_workspace(db, clock)
    store = await Store.open(db, clock)
    try:
        async with store.write() as tx:
            url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
            await endpoints.add_endpoint(tx, OPERATOR_CLI, url=url, events=["decision.opened"])
            queued = await endpoints.queue_test(tx, OPERATOR_CLI, "NE1")
    finally:
        await store.close()
    env = {**os.environ, "CHIEF_OF_STAFF_NOW": NOW, "CHIEF_OF_STAFF_WEBHOOK_TICK": "0.1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "chief_of_staff", "console", "--no-browser", "--db", str(db)]
    try:
        async with await anyio.open_process(command, env=env, stderr=subprocess.PIPE) as process:
            try:
                with anyio.fail_after(60):
                    while not received:
                        await anyio.sleep(0.05)
                process.send_signal(signal.SIGTERM)
                with anyio.fail_after(30):
                    assert await process.wait() == 0
            finally:
                if process.returncode is None:
                    process.kill()
    finally:
        hook.shutdown()
        hook.server_close()
    assert received == [queued]
