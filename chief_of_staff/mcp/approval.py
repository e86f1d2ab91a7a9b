"""Operator approval in the client's own UI: the verified channel inside a conversation.

When the client declares form elicitation, an operator act is put to the human
directly, outside the model's reach: the model cannot answer it, so an approval
given there is `verified`. The SDK's resolver carries the question in either
protocol era (a mid-call request on 2025-11-25, an input_required round trip on
2026-07-28). Clients without elicitation, Claude Desktop among them, are never
asked; their operator acts fall back to the chat channel (confirm=true) and its
ceiling.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field, ValidationError

from chief_of_staff.core.audit import Channel
from chief_of_staff.core.errors import OperatorActRefused
from chief_of_staff.mcp.access import principal_of

# The channel an operator act was approved through, for the duration of one tool call.
approved_channel: ContextVar[Channel | None] = ContextVar("approved_channel", default=None)


class OperatorApproval(BaseModel):
    approve: bool = Field(description="Approve this change")


# Free text the operator wrote goes last, so a long note can never push the changes out of view.
_FREE_TEXT = ("note", "rationale", "description", "details", "charter", "operating_spec", "purpose")
MESSAGE_LIMIT = 3000


def _message(title: str, arguments: dict[str, Any]) -> str:
    shown = {key: value for key, value in arguments.items() if key != "confirm" and key not in _FREE_TEXT}
    shown |= {key: arguments[key] for key in _FREE_TEXT if key in arguments}
    text = json.dumps(shown, ensure_ascii=False, default=str)
    if len(text) > MESSAGE_LIMIT:
        text = (f"{text[:MESSAGE_LIMIT]} ... ({len(text) - MESSAGE_LIMIT} more characters not shown: if you cannot "
                "see every change, decline and make it from the command line)")
    return f"{title}: {text}\nApprove this change?"


def make_resolver(title: str, validate: Callable[[dict[str, Any]], Any],
                  wanted: Callable[[Any], bool]) -> Callable[..., Any]:
    """A resolver that asks the operator only when the client can be asked and the act is real and valid."""

    async def ask_operator(arguments: dict[str, Any], ctx: Context[Any, Any]) -> Elicit[OperatorApproval] | None:
        capabilities = ctx.client_capabilities
        if capabilities is None or capabilities.elicitation is None:
            return None
        if principal_of(ctx) is not None:
            return None  # a token already settled who may act: the operator's is verified, an agency's never is
        try:
            parsed = validate(arguments)
        except (ValidationError, Exception):
            return None  # the tool body reports the invalid arguments; never ask about them
        return Elicit(_message(title, arguments), OperatorApproval) if wanted(parsed) else None

    return ask_operator


def channel_of(outcome: ElicitationResult[OperatorApproval]) -> Channel | None:
    """`verified` when the operator approved in the prompt; None when nobody was asked."""
    if isinstance(outcome, AcceptedElicitation):
        if outcome.data is None:
            return None  # the resolver did not ask (no elicitation, or nothing to approve)
        if outcome.data.approve:
            return "verified"
    raise OperatorActRefused("The operator declined this change in the approval prompt. Nothing was changed.")


class using_channel:
    """Make `channel` the approved channel for the rest of this tool call."""

    def __init__(self, channel: Channel | None) -> None:
        self._channel = channel

    def __enter__(self) -> None:
        self._token = approved_channel.set(self._channel)

    def __exit__(self, *_: object) -> None:
        approved_channel.reset(self._token)
