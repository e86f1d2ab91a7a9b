"""Resources: the workspace's state to attach in the client, each also reachable by a tool."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from pydantic import BaseModel

from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import ChiefOfStaffError
from chief_of_staff.domain import agencies, brief, decisions, goals, inbox
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.review import packet


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


def register_resources(server: MCPServer[Any], state: Callable[[], Store]) -> None:
    @server.resource(
        "cos://brief",
        name="brief",
        title="Brief",
        mime_type="text/markdown",
        description="The operator's brief: changes, decisions, goals, inbox, authority used.",
    )
    async def brief_resource() -> str:
        async def produce(tx: Tx) -> str:
            return brief.render_brief(await brief.build_brief(tx, "operator"))

        return await _read(state(), produce)

    @server.resource(
        "cos://review",
        name="review",
        title="Review packet",
        mime_type="text/markdown",
        description="The operator's weekly review: pace, scorecards, anomalies, decisions, proposals.",
    )
    async def review_resource() -> str:
        async def produce(tx: Tx) -> str:
            return packet.render_packet(await packet.build_packet(tx))

        return await _read(state(), produce)

    @server.resource(
        "cos://goals",
        name="goals",
        title="Goals",
        mime_type="application/json",
        description="Active goals with key results, progress and pace.",
    )
    async def goals_resource() -> str:
        async def produce(tx: Tx) -> str:
            return _json([g.model_dump(mode="json") for g in await goals.list_goals(tx)])

        return await _read(state(), produce)

    @server.resource(
        "cos://authority-letter",
        name="authority-letter",
        title="Authority letter",
        mime_type="text/markdown",
        description="Every active grant as a delegation-of-authority letter.",
    )
    async def letter_resource() -> str:
        return await _read(state(), grants.authority_letter)

    @server.resource(
        "cos://inbox",
        name="inbox",
        title="Inbox",
        mime_type="application/json",
        description="Unfinished tasks in claim order, with the inbox counts.",
    )
    async def inbox_resource() -> str:
        async def produce(tx: Tx) -> str:
            summary = await inbox.inbox_summary(tx)
            tasks = await inbox.list_tasks(tx, status="unfinished", limit=100)
            return _json(
                {"summary": summary.model_dump(mode="json"), "tasks": [t.model_dump(mode="json") for t in tasks]}
            )

        return await _read(state(), produce)

    @server.resource(
        "cos://decisions",
        name="decisions",
        title="Pending decisions",
        mime_type="application/json",
        description="Decisions waiting for the operator.",
    )
    async def decisions_resource() -> str:
        async def produce(tx: Tx) -> str:
            pending = await decisions.list_decisions(tx, status="pending", limit=100)
            return _json([d.model_dump(mode="json") for d in pending])

        return await _read(state(), produce)

    @server.resource(
        "cos://goals/{goal_id}",
        name="goal",
        title="Goal",
        mime_type="application/json",
        description="One goal with its key results and pace.",
    )
    async def goal_resource(goal_id: str) -> str:
        async def produce(tx: Tx) -> str:
            return _json(await goals.get_goal(tx, goal_id))

        return await _read(state(), produce)

    @server.resource(
        "cos://tasks/{task_id}", name="task", title="Task", mime_type="application/json", description="One task."
    )
    async def task_resource(task_id: str) -> str:
        async def produce(tx: Tx) -> str:
            return _json(await inbox.get_task(tx, task_id))

        return await _read(state(), produce)

    @server.resource(
        "cos://agencies/{agency}",
        name="agency",
        title="Agency",
        mime_type="application/json",
        description="One agency's charter, roles and playbook.",
    )
    async def agency_resource(agency: str) -> str:
        async def produce(tx: Tx) -> str:
            name = (await agencies.resolve_agency(tx, agency))["name"]
            found = [a for a in (await agencies.roster(tx)).agencies if a.name == name]
            lessons = await agencies.playbook(tx, name, limit=50)
            return _json(
                {
                    "agency": found[0].model_dump(mode="json"),
                    "playbook": [lesson.model_dump(mode="json") for lesson in lessons],
                }
            )

        return await _read(state(), produce)
