"""MCP wiring: tools, resources, prompts and completions over the domain. No SQL here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.prompts import Prompt
from mcp.server.mcpserver.prompts.base import PromptArgument
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, Completion, PromptReference, ResourceTemplateReference
from pydantic import BaseModel

from chief_of_staff import __version__
from chief_of_staff.core import anchor, processes
from chief_of_staff.core.audit import SYSTEM
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import ChiefOfStaffError
from chief_of_staff.domain import agencies, brief, decisions, goals, inbox, lookup, workspace
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.review import packet
from chief_of_staff.mcp import schema_cache, subscriptions
from chief_of_staff.mcp.prompts import LIVE_PLACEHOLDERS, PromptTemplate, load_prompts, render_prompt
from chief_of_staff.mcp.toolkit import build_tool, published_schemas
from chief_of_staff.mcp.tools.operator import OPERATOR_TOOLS
from chief_of_staff.mcp.tools.work import WORK_TOOLS
from chief_of_staff.notify import runner

INSTRUCTIONS = (
    "Chief of Staff runs the operator's AI agency: goals, bounded authority, a task inbox, an outcome log "
    "and reviews. Start each session with `brief`. Call `authorize` before any action with a cost or a "
    "reputation risk, and `log_outcome` or `complete_task` after. Operator acts (grants, goal targets, "
    "roster, approvals) need the operator's yes in this conversation and confirm=true."
)


@dataclass
class AppState:
    store: Store


def _json(model: BaseModel | list[Any] | dict[str, Any]) -> str:
    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    return json.dumps(data, ensure_ascii=False, indent=1)


async def _read(store: Store, produce: Callable[[Tx], Coroutine[Any, Any, str]]) -> str:
    """Run a resource read in one snapshot; domain errors reach the client as resource errors."""
    try:
        async with store.read() as tx:
            return await produce(tx)
    except ChiefOfStaffError as exc:
        raise ResourceError(str(exc)) from None


def _register_resources(server: MCPServer[AppState], state: Callable[[], Store]) -> None:
    @server.resource("cos://brief", name="brief", title="Brief", mime_type="text/markdown",
                     description="The operator's brief: changes, decisions, goals, inbox, authority used.")
    async def brief_resource() -> str:
        async def produce(tx: Tx) -> str:
            return brief.render_brief(await brief.build_brief(tx, "operator"))
        return await _read(state(), produce)

    @server.resource("cos://review", name="review", title="Review packet", mime_type="text/markdown",
                     description="The operator's weekly review: pace, scorecards, anomalies, decisions, proposals.")
    async def review_resource() -> str:
        async def produce(tx: Tx) -> str:
            return packet.render_packet(await packet.build_packet(tx))
        return await _read(state(), produce)

    @server.resource("cos://goals", name="goals", title="Goals", mime_type="application/json",
                     description="Active goals with key results, progress and pace.")
    async def goals_resource() -> str:
        async def produce(tx: Tx) -> str:
            return _json([g.model_dump(mode="json") for g in await goals.list_goals(tx)])
        return await _read(state(), produce)

    @server.resource("cos://authority-letter", name="authority-letter", title="Authority letter",
                     mime_type="text/markdown", description="Every active grant as a delegation-of-authority letter.")
    async def letter_resource() -> str:
        return await _read(state(), grants.authority_letter)

    @server.resource("cos://inbox", name="inbox", title="Inbox", mime_type="application/json",
                     description="Unfinished tasks in claim order, with the inbox counts.")
    async def inbox_resource() -> str:
        async def produce(tx: Tx) -> str:
            summary = await inbox.inbox_summary(tx)
            tasks = await inbox.list_tasks(tx, status="unfinished", limit=100)
            return _json({"summary": summary.model_dump(mode="json"),
                          "tasks": [t.model_dump(mode="json") for t in tasks]})
        return await _read(state(), produce)

    @server.resource("cos://decisions", name="decisions", title="Pending decisions", mime_type="application/json",
                     description="Decisions waiting for the operator.")
    async def decisions_resource() -> str:
        async def produce(tx: Tx) -> str:
            pending = await decisions.list_decisions(tx, status="pending", limit=100)
            return _json([d.model_dump(mode="json") for d in pending])
        return await _read(state(), produce)

    @server.resource("cos://goals/{goal_id}", name="goal", title="Goal", mime_type="application/json",
                     description="One goal with its key results and pace.")
    async def goal_resource(goal_id: str) -> str:
        async def produce(tx: Tx) -> str:
            return _json(await goals.get_goal(tx, goal_id))
        return await _read(state(), produce)

    @server.resource("cos://tasks/{task_id}", name="task", title="Task", mime_type="application/json",
                     description="One task.")
    async def task_resource(task_id: str) -> str:
        async def produce(tx: Tx) -> str:
            return _json(await inbox.get_task(tx, task_id))
        return await _read(state(), produce)

    @server.resource("cos://agencies/{agency}", name="agency", title="Agency", mime_type="application/json",
                     description="One agency's charter, roles and playbook.")
    async def agency_resource(agency: str) -> str:
        async def produce(tx: Tx) -> str:
            name = (await agencies.resolve_agency(tx, agency))["name"]
            found = [a for a in (await agencies.roster(tx)).agencies if a.name == name]
            lessons = await agencies.playbook(tx, name, limit=50)
            return _json({"agency": found[0].model_dump(mode="json"),
                          "playbook": [lesson.model_dump(mode="json") for lesson in lessons]})
        return await _read(state(), produce)


class _TemplatePrompt(Prompt):
    """A prompt whose argument errors reach the client as invalid-params errors carrying our message.

    The SDK reports a missing argument as a ValueError and wraps any other exception from the
    render function in a generic "Error rendering prompt"; on 2026-07-28 connections a ValueError
    even becomes a bare "Internal server error". An MCPError passes through both unchanged.
    """

    async def render(self, arguments: dict[str, Any] | None, context: Any) -> Any:
        given = arguments or {}
        missing = [arg.name for arg in self.arguments or [] if arg.required and not given.get(arg.name)]
        if missing:
            raise MCPError(INVALID_PARAMS, f"{', '.join(missing)}: required by the {self.name} prompt; send it.")
        return await super().render(arguments, context)


async def _live_values(template: PromptTemplate, arguments: dict[str, str], store: Store) -> dict[str, str]:
    """The workspace's part of a prompt: today, the agency's playbook for a work session."""
    wanted = [name for name in LIVE_PLACEHOLDERS if f"{{{name}}}" in template.body]
    if not wanted:
        return {}
    async with store.read() as tx:
        return {"playbook": await agencies.playbook_digest(tx, arguments.get("agency", "").strip())}


def _prompt(template: PromptTemplate, state: Callable[[], Store]) -> Prompt:
    async def render(**arguments: str) -> str:
        try:
            render_prompt(template, arguments)  # the caller's arguments are checked before the workspace is read
            return render_prompt(template, arguments, await _live_values(template, arguments, state()))
        except ChiefOfStaffError as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None

    return _TemplatePrompt(
        name=template.name,
        title=template.title,
        description=template.description,
        arguments=[PromptArgument(name=a.name, description=a.description, required=a.required)
                   for a in template.arguments],
        fn=render,
        context_kwarg=None,
    )


def _register_completions(server: MCPServer[AppState], state: Callable[[], Store]) -> None:
    @server.completion()  # type: ignore[untyped-decorator, no-untyped-call]  # the SDK leaves it untyped
    async def complete(
        ref: PromptReference | ResourceTemplateReference, argument: Any, context: Any
    ) -> Completion:
        known = (context.arguments if context is not None else None) or {}
        async with state().read() as tx:
            values = await lookup.complete(tx, argument.name, argument.value, known)
        return Completion(values=values, total=len(values), has_more=False)


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
                async with store.write() as tx:
                    await workspace.ensure(tx, SYSTEM)
                    await processes.register(tx)  # so `doctor` sees how many processes write this file
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
                            async with self._store.write() as tx:
                                await processes.unregister(tx)
                            await anchor.export_if_stale(self._store, self._settings)
                        finally:
                            await self._store.close()
                            self._store = None


def _tools() -> list[Tool]:
    specs = {spec.name: spec for spec in [*WORK_TOOLS, *OPERATOR_TOOLS]}
    schemas = schema_cache.tool_schemas(list(specs), lambda name: published_schemas(specs[name]))
    return [build_tool(spec, schemas[name]) for name, spec in specs.items()]


def build_server(settings: Settings, *, shared: SharedStore | None = None, auth: AuthSettings | None = None,
                 token_verifier: TokenVerifier | None = None, deliveries: bool = True) -> MCPServer[AppState]:
    """The Chief of Staff MCP server over the workspace at settings.db_path.

    Over HTTP (`http_server`) the caller passes the store it holds open for the server's life,
    the resource-server settings and token verifier that authenticate every request, and
    deliveries=False: it runs one webhook delivery loop per workspace itself, not one per session.
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

    state = shared.get

    server: MCPServer[AppState] = MCPServer(
        "chief-of-staff",
        title="Chief of Staff",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
        tools=_tools(),
        auth=auth,
        token_verifier=token_verifier,
    )
    _register_resources(server, state)
    for template in load_prompts():
        server.add_prompt(_prompt(template, state))
    _register_completions(server, state)
    subscriptions.install(server)
    return server
