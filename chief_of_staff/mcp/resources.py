"""Resources: the workspace's state to attach in the client, each also reachable by a tool.

Over stdio (and with an operator token) they are the operator's. Read with an agency token, each
shows that agency only, as its brief does (chief_of_staff.domain.viewers): its brief and review,
goals, letter of authority, inbox and decisions; one goal, task or agency of another agency is
refused. Resources get no call context, so the token is read where the SDK keeps it for the
request being served.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from pydantic import BaseModel

from chief_of_staff.core import ids
from chief_of_staff.core.db import Store, Tx
from chief_of_staff.core.errors import ChiefOfStaffError, Conflict
from chief_of_staff.domain import agencies, brief, decisions, goals, inbox, lookup, viewers
from chief_of_staff.domain.authority import grants
from chief_of_staff.domain.review import packet
from chief_of_staff.domain.tokens import Principal
from chief_of_staff.mcp.caller import PRINCIPAL_CLAIM


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


def _agency_token() -> Principal | None:
    """The agency token behind this read, if it is one: resources get no context, so it is read from the SDK's."""
    token = get_access_token()
    principal = None if token is None else (token.claims or {}).get(PRINCIPAL_CLAIM)
    return principal if isinstance(principal, Principal) and principal.kind == "agency" else None


def _viewer() -> str:
    token = _agency_token()
    return viewers.OPERATOR if token is None else token.viewer


def _scope() -> tuple[int | None, str | None]:
    """The agency an agency token reads for (its id, and as the domain takes it), or (None, None): everything."""
    token = _agency_token()
    if token is None or token.agency_id is None:
        return None, None
    return token.agency_id, ids.format_id("agency", token.agency_id)


def _require_own(agency_id: int | None, what: str) -> None:
    """Refuse another agency's object to an agency token; objects with no agency belong to every agency."""
    token = _agency_token()
    if token is not None and agency_id is not None and agency_id != token.agency_id:
        raise Conflict(
            f"{what} belongs to another agency; this connection's token reads for "
            f"{token.viewer.removeprefix(viewers.AGENCY_PREFIX)} only."
        )


def register_resources(server: MCPServer[Any], state: Callable[[], Store]) -> None:
    @server.resource(
        "cos://brief",
        name="brief",
        title="Brief",
        mime_type="text/markdown",
        description="The brief: changes, decisions, goals, inbox, authority used (an agency token: its agency's).",
    )
    async def brief_resource() -> str:
        async def produce(tx: Tx) -> str:
            return brief.render_brief(await brief.build_brief(tx, _viewer()))

        return await _read(state(), produce)

    @server.resource(
        "cos://review",
        name="review",
        title="Review packet",
        mime_type="text/markdown",
        description="The weekly review: pace, scorecards, anomalies, decisions, proposals (an agency token: its own).",
    )
    async def review_resource() -> str:
        async def produce(tx: Tx) -> str:
            return packet.render_packet(await packet.build_packet(tx, viewer=_viewer()))

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
            return _json([g.model_dump(mode="json") for g in await goals.list_goals(tx, agency=_scope()[1])])

        return await _read(state(), produce)

    @server.resource(
        "cos://authority-letter",
        name="authority-letter",
        title="Authority letter",
        mime_type="text/markdown",
        description="Every active grant as a delegation-of-authority letter.",
    )
    async def letter_resource() -> str:
        async def produce(tx: Tx) -> str:
            return await grants.authority_letter(tx, agency=_scope()[1])

        return await _read(state(), produce)

    @server.resource(
        "cos://inbox",
        name="inbox",
        title="Inbox",
        mime_type="application/json",
        description="Unfinished tasks in claim order, with the inbox counts.",
    )
    async def inbox_resource() -> str:
        async def produce(tx: Tx) -> str:
            agency_id, agency = _scope()
            summary = await inbox.inbox_summary(tx, agency_id=agency_id)
            tasks = await inbox.list_tasks(tx, status="unfinished", agency=agency, limit=100)
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
            pending = await decisions.list_decisions(tx, status="pending", limit=100, agency_id=_scope()[0])
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
            _require_own((await goals.resolve_goal(tx, goal_id, field="goal_id"))["agency_id"], goal_id)
            return _json(await goals.get_goal(tx, goal_id))

        return await _read(state(), produce)

    @server.resource(
        "cos://tasks/{task_id}", name="task", title="Task", mime_type="application/json", description="One task."
    )
    async def task_resource(task_id: str) -> str:
        async def produce(tx: Tx) -> str:
            owner = await lookup.owner(tx, "task", task_id, field="task_id")
            _require_own(None if owner is None else owner[0], task_id)
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
            row = await agencies.resolve_agency(tx, agency)
            _require_own(row["id"], f"agency {row['name']}")
            name = row["name"]
            found = [a for a in (await agencies.roster(tx)).agencies if a.name == name]
            lessons = await agencies.playbook(tx, name, limit=50)
            return _json(
                {
                    "agency": found[0].model_dump(mode="json"),
                    "playbook": [lesson.model_dump(mode="json") for lesson in lessons],
                }
            )

        return await _read(state(), produce)
