"""Completions: ids and names that start with what the client has typed so far."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.types import Completion, PromptReference, ResourceTemplateReference

from chief_of_staff.core.db import Store
from chief_of_staff.domain import lookup


def register_completions(server: MCPServer[Any], state: Callable[[], Store]) -> None:
    @server.completion()  # type: ignore[untyped-decorator, no-untyped-call]  # the SDK leaves it untyped
    async def complete(ref: PromptReference | ResourceTemplateReference, argument: Any, context: Any) -> Completion:
        known = (context.arguments if context is not None else None) or {}
        async with state().read() as tx:
            values = await lookup.complete(tx, argument.name, argument.value, known)
        return Completion(values=values, total=len(values), has_more=False)
