"""The trust rules of the design brief: the agency never widens its own authority.

Every change comes through one channel, recorded on its audit row:

- `verified` (the command line, an operator token, an approval the client's own prompt put to the
  human) may make any operator act;
- `chat` (the model called the tool with confirm=true, its word that the operator agreed in the
  conversation) may make operator acts, but bounded in total: every act that adds money exposure
  draws on the workspace's rolling **chat allowance** (default 100.00 per 7 days), and some acts are
  never possible through it at any amount (widening a count, a scope, a mode, an expiry; removing a
  budget; letting silence approve; handing a revoked grant's space over; removing a notification
  endpoint);
- `agency`, everything else, makes no operator act at all. Its acts are monotone: no act on the
  agency channel ever makes a request `allowed` that was not allowed before it. The grants module
  keeps that true for revoking, narrowing and expiring (a grant that stops keeps governing its space);
  the ledger for naming roles and tasks.
"""

from __future__ import annotations

from datetime import timedelta

from chief_of_staff.core.audit import Actor
from chief_of_staff.core.clock import format_ts
from chief_of_staff.core.db import Tx
from chief_of_staff.core.errors import OperatorActRefused
from chief_of_staff.core.fields import View, money
from chief_of_staff.domain import workspace

# The other verified channel a refusal can name: the operator's console, which the chat can open for them.
IN_CONSOLE = "or in the console (open_console)"


def _verified_channels(cli_hint: str, console: bool) -> str:
    """Where the operator can make the act: the terminal command, and the console when it makes this act."""
    return f"{cli_hint}, {IN_CONSOLE}" if console else cli_hint


def require_operator(actor: Actor, act: str, cli_hint: str, *, console: bool = False) -> None:
    """Refuse an operator-only act that does not come through an operator channel.

    `console`: the console makes this act too (deciding), so the refusal names it beside the terminal.
    """
    if actor.is_operator:
        return
    raise OperatorActRefused(
        f"{act} is an operator decision. Ask the operator; if they agree in this conversation, call the "
        f"tool again with confirm=true. The operator can also do it from a terminal: "
        f"{_verified_channels(cli_hint, console)}"
    )


def refuse_in_chat(actor: Actor, act: str, why: str, cli_hint: str, *, console: bool = False) -> None:
    """Refuse an act chat may never make, at any amount; say where the operator can make it."""
    if actor.channel == "chat":
        raise OperatorActRefused(
            f"{act} cannot be done in chat: {why}. Nothing was changed. The operator can do it on a verified "
            f"channel, from a terminal: {_verified_channels(cli_hint, console)}"
        )


class Allowance(View):
    """The chat allowance: what chat acts (confirm=true) may add in money exposure per window, and what is left."""

    allowance_cents: int
    window_days: int
    used_cents: int
    left_cents: int

    def words(self) -> str:
        return (
            f"{money(self.left_cents)} of the {money(self.allowance_cents)} chat allowance is left "
            f"(the last {self.window_days} days' chat approvals drew {money(self.used_cents)})"
        )


async def chat_allowance(tx: Tx) -> Allowance:
    """The allowance as it stands now: one indexed sum over the window."""
    space = await workspace.get(tx)
    used = await tx.scalar(
        "SELECT coalesce(sum(cents), 0) FROM chat_draws WHERE at > ?", (_window_start(tx, space.chat_window_days),)
    )
    return Allowance(
        allowance_cents=space.chat_allowance_cents,
        window_days=space.chat_window_days,
        used_cents=int(used),
        left_cents=max(space.chat_allowance_cents - int(used), 0),
    )


def _window_start(tx: Tx, days: int) -> str:
    return format_ts(tx.now - timedelta(days=days))


async def draw_chat(
    tx: Tx, actor: Actor, act: str, cents: int | None, cli_hint: str, *, subject: str = "", console: bool = False
) -> None:
    """A chat act adds `cents` of money exposure: draw it from the allowance, or refuse the act.

    None means nothing bounds the exposure, which chat never accepts. The draw is one conditional
    INSERT over the window's sum, inside the act's own write transaction, so two chat acts can never
    both fit in the same room. Other channels draw nothing.
    """
    if actor.channel != "chat":
        return
    if cents is None:
        raise OperatorActRefused(
            f"{act} would let money go out with no period limit, which chat never accepts. Add an amount or a "
            f"count budget (max_cents or max_count per day, week or month), or have the operator run: "
            f"{_verified_channels(cli_hint, console)}"
        )
    if cents == 0:
        return
    space = await workspace.get(tx)
    drawn = await tx.one(
        "INSERT INTO chat_draws (at, cents, act, subject) SELECT :now, :cents, :act, :subject "
        "WHERE (SELECT coalesce(sum(cents), 0) FROM chat_draws WHERE at > :since) + :cents <= :allowance "
        "RETURNING id",
        {
            "now": tx.now_text,
            "cents": cents,
            "act": act[:200],
            "subject": subject[:80],
            "since": _window_start(tx, space.chat_window_days),
            "allowance": space.chat_allowance_cents,
        },
    )
    if drawn is None:
        left = await chat_allowance(tx)
        raise OperatorActRefused(
            f"{act} adds {money(cents)} of money exposure, more than chat may add now: {left.words()}. "
            f"Nothing was changed. The operator can do it on a verified channel, from a terminal: "
            f"{_verified_channels(cli_hint, console)}"
        )
