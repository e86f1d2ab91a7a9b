"""The trust rule of the design brief: the agency never widens its own authority.

Operator-only acts (creating or widening a grant, approving a decision, changing
a goal's target, changing the roster) need an operator channel. `verified` (the
command line) may make any of them. `chat` (the model called the tool with
confirm=true after the operator agreed in the conversation) may make them only
under the workspace's chat ceiling. The agency channel may make none.
"""

from __future__ import annotations

from chief_of_staff.core.audit import Actor
from chief_of_staff.core.errors import OperatorActRefused
from chief_of_staff.core.fields import money


def require_operator(actor: Actor, act: str, cli_hint: str) -> None:
    """Refuse an operator-only act that does not come through an operator channel."""
    if actor.is_operator:
        return
    raise OperatorActRefused(
        f"{act} is an operator decision. Ask the operator; if they agree in this conversation, call the "
        f"tool again with confirm=true. The operator can also do it from a terminal: {cli_hint}"
    )


def check_chat_amount(actor: Actor, act: str, cents: int | None, ceiling_cents: int, cli_hint: str) -> None:
    """A chat-channel act must stay bounded and at or under the ceiling; the command line has no ceiling."""
    if actor.channel != "chat":
        return
    if cents is None:
        raise OperatorActRefused(
            f"{act} has no money limit, and chat approvals must stay within the workspace's chat ceiling "
            f"({money(ceiling_cents)}). Set a limit at or under the ceiling, or have the operator run: {cli_hint}"
        )
    if cents > ceiling_cents:
        raise OperatorActRefused(
            f"{act} involves {money(cents)}, above the chat ceiling of {money(ceiling_cents)}, so it cannot "
            f"be approved in chat. The operator can do it from a terminal: {cli_hint}"
        )
