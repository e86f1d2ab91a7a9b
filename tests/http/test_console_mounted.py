"""The console mounted on `serve --http --console`: beside each workspace's MCP endpoint, under a secret
path, reached with a link from `chief-of-staff console --link` run on the server's machine.

The HTTP server is the real one (tests/http_support.serving) on a loopback port; the link comes from the
real command in a subprocess, which believes the server's announcement only because this process holds
the port it names.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput
from chief_of_staff.http import console
from chief_of_staff.http.server import HttpOptions, ServedWorkspace, build_http_app
from tests.http_support import make_workspace, serving

pytestmark = pytest.mark.anyio

NOW = "2026-11-23T08:00:00Z"


async def console_link(db: Path) -> str:
    """What the operator runs on the server's machine: a fresh one-time link for the mounted console."""
    command = [sys.executable, "-m", "chief_of_staff", "console", "--link", "--db", str(db)]
    env = {**os.environ, "CHIEF_OF_STAFF_NOW": NOW}
    with anyio.fail_after(60):
        done = await anyio.run_process(command, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().strip()


@pytest.mark.slow
async def test_serve_http_mounts_each_workspaces_console_under_a_secret_path(tmp_path: Path, clock: FixedClock) -> None:
    acme, beta = tmp_path / "acme.db", tmp_path / "beta.db"
    for db in (acme, beta):
        await make_workspace(db, clock)
    async with serving([acme, beta], clock, HttpOptions(port=0, console=True)) as base:
        link = await console_link(acme)
        prefix = urlsplit(link).path.removesuffix("/login")
        assert link.startswith(base + "/acme/console/") and re.fullmatch(r"/acme/console/[\w-]{32}", prefix)
        other = await console_link(beta)
        assert urlsplit(other).path.startswith("/beta/console/") and not other.startswith(base + prefix)
        async with httpx.AsyncClient(timeout=10) as browser:
            answer = await browser.get(link)
            assert answer.status_code == 303 and f"Path={prefix}/" in answer.headers["set-cookie"]
            today = await browser.get(base + prefix + "/")
            assert today.status_code == 200 and "Decisions waiting for you" in today.text
            assert (await browser.get(link)).status_code == 401  # once
            # The MCP endpoints are as before: a token, not the console's cookie, opens them.
            assert (await browser.post(base + "/acme/mcp", json={})).status_code == 401
            # Beside the secret path, and at a foreign Host, nothing answers.
            for elsewhere in ("/acme/console", "/acme/console/", prefix[:-1] + "/"):
                assert (await browser.get(base + elsewhere)).status_code == 404, elsewhere
            assert (await browser.get(base + prefix + "/", headers={"host": "evil.example"})).status_code == 421
    assert not console.state_path(acme).exists() and not console.state_path(beta).exists()


async def test_without_console_no_console_is_served_or_announced(tmp_path: Path, clock: FixedClock) -> None:
    db = tmp_path / "acme.db"
    await make_workspace(db, clock)
    async with serving([db], clock) as base, httpx.AsyncClient(timeout=10) as browser:
        assert console.running_console_url(db) is None
        assert (await browser.get(base + "/console/")).status_code == 404


async def test_a_public_url_with_a_path_is_refused_for_the_console_with_what_to_send(
    tmp_path: Path, clock: FixedClock
) -> None:
    served = [ServedWorkspace(name="acme", settings=Settings(db_path=tmp_path / "acme.db", clock=clock))]
    options = HttpOptions(port=0, console=True, public_url="https://cos.example.com/agency")
    with pytest.raises(InvalidInput, match=r"without a path \(e.g. https://cos.example.com\)"):
        build_http_app(served, options, 8765)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("cos.example.com:8443", 401),  # allowed by name at any port: on to the page, which wants a login
        ("cos.example.com", 401),  # the public URL's own host
        ("cos.example.com.evil.example:8443", 421),
        ("cos.example.com:*", 421),
        ("evil.example:8443", 421),
    ],
)
async def test_a_host_allowed_at_any_port_is_matched_by_name_and_a_numeric_port_only(
    tmp_path: Path, clock: FixedClock, host: str, status: int
) -> None:
    db = tmp_path / "acme.db"
    await make_workspace(db, clock)
    store = await Store.open(db, clock)
    try:
        url = "https://cos.example.com/console/" + "a" * 32
        app = console.build_console_app(store, base_url=url, allowed_hosts=("cos.example.com:*",))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://cos.example.com") as c:
            answer = await c.get("/console/" + "a" * 32 + "/", headers={"host": host})
        assert answer.status_code == status, answer.text
    finally:
        await store.close()
