"""A real Streamable HTTP server on a loopback port, in-process, for tests that need HTTP itself.

The server runs under uvicorn on a socket bound to port 0, with the test's fixed clock, so
expiry can be tested by moving the clock instead of waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from chief_of_staff.core.audit import OPERATOR_CLI
from chief_of_staff.core.clock import FixedClock
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.domain import tokens, workspace
from chief_of_staff.domain.blueprints import loader
from chief_of_staff.http.server import HttpOptions, ServedWorkspace, bind, build_http_app, uvicorn_server
from tests.conftest import TIMEZONE


async def make_workspace(path: Path, clock: FixedClock, *, blueprint: bool = True) -> None:
    store = await Store.open(path, clock)
    try:
        async with store.write() as tx:
            await workspace.ensure(tx, OPERATOR_CLI, name=path.stem, timezone=TIMEZONE)
            if blueprint:
                await loader.apply_blueprint(tx, OPERATOR_CLI, "outbound")
    finally:
        await store.close()


async def make_token(path: Path, clock: FixedClock, kind: str = "operator", **holder: object) -> str:
    store = await Store.open(path, clock)
    try:
        async with store.write() as tx:
            _, secret = await tokens.create_token(tx, OPERATOR_CLI, kind=kind, **holder)  # type: ignore[arg-type]
        return secret
    finally:
        await store.close()


@asynccontextmanager
async def serving(
    paths: Sequence[Path], clock: FixedClock, options: HttpOptions | None = None, names: Sequence[str] | None = None
) -> AsyncIterator[str]:
    """Serve the workspaces on a free loopback port; yields the base URL."""
    options = options or HttpOptions(port=0)
    served = [
        ServedWorkspace(name=(names[i] if names else path.stem), settings=Settings(db_path=path, clock=clock))
        for i, path in enumerate(paths)
    ]
    sock = bind(options)
    port = sock.getsockname()[1]
    server = uvicorn_server(build_http_app(served, options, port))
    with sock:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)  # readiness, not timing: uvicorn offers no event to wait on
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True


@asynccontextmanager
async def http_client(url: str, token: str | None, mode: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client
