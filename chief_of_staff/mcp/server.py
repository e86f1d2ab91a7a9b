"""The MCP server: the tools by activity, resources, prompts and completions over one store per process.

Wiring only: no SQL here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.tools import Tool

from chief_of_staff import __version__
from chief_of_staff.core import anchor, processes
from chief_of_staff.core.audit import SYSTEM
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import WorkspaceSealed
from chief_of_staff.domain import workspace
from chief_of_staff.mcp import schema_cache, subscriptions
from chief_of_staff.mcp.completions import register_completions
from chief_of_staff.mcp.prompts import register_prompts
from chief_of_staff.mcp.resources import register_resources
from chief_of_staff.mcp.toolkit import ToolSpec, build_tool, published_schemas
from chief_of_staff.mcp.tools import (
    authority,
    blueprints,
    console,
    decisions,
    goals,
    inbox,
    orient,
    outcomes,
    review,
    roster,
    webhooks,
)
from chief_of_staff.mcp.tools.console import ConsoleOpener
from chief_of_staff.notify import runner

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Chief of Staff runs the operator's AI agency: goals, bounded authority, a task inbox, an outcome log "
    "and reviews. Start each session with `brief`. Call `authorize` before any action with a cost or a "
    "reputation risk, and `log_outcome` or `complete_task` after. Operator acts (grants, goal targets, "
    "roster, approvals) need the operator's yes in this conversation and confirm=true."
)


@dataclass
class AppState:
    store: Store


class SharedStore:
    """One store per server process, however many sessions enter the lifespan: one writer per file."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: Store | None = None
        self._users = 0
        self._lock = anyio.Lock()

    def get(self) -> Store:
        if self._store is None:
            raise ResourceError("The workspace is not open yet; try again in a moment.")
        return self._store

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Store]:
        async with self._lock:
            if self._store is None:
                store = await Store.open(self._settings.db_path, self._settings.clock)
                try:
                    async with store.write() as tx:
                        await workspace.ensure(tx, SYSTEM)
                        await processes.register(tx)  # so `doctor` sees how many processes write this file
                except WorkspaceSealed as sealed:
                    # A workspace that refuses changes still serves reads; each write tool says why and how to repair.
                    log.warning("%s", sealed)
                self._store = store
            self._users += 1
        try:
            yield self._store
        finally:
            async with self._lock:
                self._users -= 1
                if self._users == 0 and self._store is not None:
                    # Shutdown often arrives as a cancellation: shield the last writes.
                    with anyio.CancelScope(shield=True):
                        try:
                            with contextlib.suppress(WorkspaceSealed):
                                async with self._store.write() as tx:
                                    await processes.unregister(tx)
                            await anchor.export_if_stale(self._store, self._settings)
                        finally:
                            await self._store.close()
                            self._store = None


# The tool modules in the README's order of activities: what tools/list shows, in that order.
TOOL_MODULES = (orient, goals, roster, authority, decisions, console, inbox, outcomes, review, blueprints, webhooks)


def tool_specs(console_opener: ConsoleOpener | None = None) -> list[ToolSpec[Any, Any]]:
    """Every tool the server registers, by activity; open_console opens through `console_opener`."""
    return [
        spec
        for module in TOOL_MODULES
        for spec in (console.tools(console_opener) if module is console else module.TOOLS)
    ]


def _tools(console_opener: ConsoleOpener | None) -> list[Tool]:
    specs = {spec.name: spec for spec in tool_specs(console_opener)}
    schemas = schema_cache.tool_schemas(list(specs), lambda name: published_schemas(specs[name]))
    return [build_tool(spec, schemas[name]) for name, spec in specs.items()]


def build_server(
    settings: Settings,
    *,
    shared: SharedStore | None = None,
    auth: AuthSettings | None = None,
    token_verifier: TokenVerifier | None = None,
    deliveries: bool = True,
    console_opener: ConsoleOpener | None = None,
) -> MCPServer[AppState]:
    """The Chief of Staff MCP server over the workspace at settings.db_path.

    Over HTTP (`http_server`) the caller passes the store it holds open for the server's life,
    the resource-server settings and token verifier that authenticate every request, and
    deliveries=False: it runs one webhook delivery loop per workspace itself, not one per session.

    A stdio server on the operator's machine is given a `console_opener` (chief_of_staff.http.console_opener),
    so `open_console` can open the operator's browser there; it stops the console it started when the
    session ends. Without one, `open_console` says where the console can be opened instead.
    """
    shared = shared or SharedStore(settings)

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        async with shared.session() as store, anyio.create_task_group() as group:
            if deliveries:
                group.start_soon(partial(runner.run_deliveries, store, interval=settings.webhook_tick))
            try:
                yield AppState(store=store)
            finally:
                group.cancel_scope.cancel()
                if console_opener is not None:
                    with anyio.CancelScope(shield=True):  # shutdown arrives as a cancellation; the store is still open
                        await console_opener.close()

    state = shared.get

    server: MCPServer[AppState] = MCPServer(
        "chief-of-staff",
        title="Chief of Staff",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
        tools=_tools(console_opener),
        auth=auth,
        token_verifier=token_verifier,
    )
    register_resources(server, state)
    register_prompts(server, state)
    register_completions(server, state)
    subscriptions.install(server)
    return server
