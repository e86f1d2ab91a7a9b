"""Console: one click from the chat to the operator's console in their browser.

The model may open the door, never walk through it. `open_console` asks the server process, when it
runs on the operator's own machine (stdio, as Claude Desktop starts it), to start the console if it is
not running and open the operator's default browser on a fresh one-time login link. The link and its
secret go from the http layer's opener to the browser only: this module never sees them, so no tool
result, log or resource can carry them. Acting in the console takes the person at that browser.

The mcp layer cannot import the http layer, so the opener comes in through `build_server` as a
`ConsoleOpener` (chief_of_staff.http.console_opener provides the real one; the stdio `serve` wires it).
A server without one (over HTTP, in tests) says what to do instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import Field

from chief_of_staff.core import ids
from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput, OperatorActRefused, Unavailable
from chief_of_staff.core.fields import Model, ShortText, View
from chief_of_staff.domain import decisions
from chief_of_staff.mcp.caller import Caller
from chief_of_staff.mcp.toolkit import ToolSpec

ELSEWHERE = (
    "On the operator's own machine, `chief-of-staff console` opens it in the browser "
    "(`chief-of-staff console --link` gives a fresh link to one already running)."
)
NOT_WIRED = (
    "This server cannot open the operator's browser: it is not a local server on the operator's machine "
    f"(it runs over HTTP, in a sandbox or elsewhere). Nothing was opened. {ELSEWHERE}"
)
NO_BROWSER = (
    "The console is running, but no browser could be opened where this server runs (no display, a sandbox, "
    f"or only a text browser). Nothing was opened. {ELSEWHERE}"
)
_PAGES = {
    "today": "/",
    "goals": "/goals",
    "inbox": "/inbox",
    "outcomes": "/outcomes",
    "authority": "/authority",
    "agencies": "/agencies",
    "review": "/review",
    "audit": "/audit",
    "settings": "/settings",
}
# A model told by what it reads to open the console again and again would flood the operator's screen
# with tabs: a few opens a minute is more than a person asks for.
OPENS_PER_WINDOW, OPEN_WINDOW = 5, timedelta(minutes=1)
TOO_OFTEN = (
    f"The console was opened {OPENS_PER_WINDOW} times in the last minute, so it was not opened again: "
    "the operator has it in their browser already. Nothing was opened; ask them to look at that tab."
)


class ConsoleOpener(Protocol):
    """What the http layer gives a server on the operator's machine: the console, started and opened there."""

    async def open(self, store: Store, actor: Actor, page: str) -> bool:
        """Start the console for `store` if none is running, and open the operator's browser on a fresh
        one-time login link landing on `page` ("/", "/goals", "/decisions/D7"), minted for `actor`.

        Returns whether a browser was opened. The link never comes back to the caller.
        """
        ...

    async def close(self) -> None:
        """Stop the console this opener started, if any (the server is shutting down)."""
        ...


class OpenConsoleIn(Model):
    page: ShortText = Field(
        "today",
        description="today, goals, inbox, outcomes, authority, agencies, review, audit, settings, or a decision (D7)",
    )


class OpenConsoleOut(View):
    page: str
    message: str


async def _landing(store: Store, page: str) -> tuple[str, str]:
    """The console path for a page the model names, and the name it is reported under."""
    named = page.strip().casefold()
    if named in _PAGES:
        return _PAGES[named], named
    try:
        number = ids.parse_id("decision", page.strip(), field="page")
    except InvalidInput:
        pages = ", ".join(_PAGES)
        raise InvalidInput(f"page: send one of {pages}, or a decision id such as D7, not {page!r}.") from None
    async with store.read() as tx:
        found = await decisions.get_decision(tx, ids.format_id("decision", number))
    return f"/decisions/{found.id}", found.id


def _handler(opener: ConsoleOpener | None) -> Callable[[Store, Caller, OpenConsoleIn], Awaitable[OpenConsoleOut]]:
    opened: deque[datetime] = deque()  # this server's recent opens, oldest first

    def _not_too_often(now: datetime) -> None:
        while opened and now - opened[0] >= OPEN_WINDOW:
            opened.popleft()
        if len(opened) >= OPENS_PER_WINDOW:
            raise Unavailable(TOO_OFTEN)
        opened.append(now)

    async def open_console(store: Store, caller: Caller, args: OpenConsoleIn) -> OpenConsoleOut:
        if caller.is_agency_token:
            raise OperatorActRefused("An agency token never opens the operator's console. Nothing was opened.")
        if opener is None:
            raise Unavailable(NOT_WIRED)
        path, shown = await _landing(store, args.page)
        _not_too_often(store.clock.now())
        if not await opener.open(store, caller.actor, path):
            raise Unavailable(NO_BROWSER)
        return OpenConsoleOut(
            page=shown,
            message=(
                f"Opened the console ({shown}) in the operator's browser, on a one-time link that works only "
                "there, once, within minutes. The operator decides there; you cannot."
            ),
        )

    return open_console


def tools(opener: ConsoleOpener | None) -> list[ToolSpec[Any, Any]]:
    """The console's tools, opening the console through `opener` (None: they say where it can be opened)."""
    return [
        ToolSpec(
            "open_console",
            "Open console",
            "Open the operator's console (decide with buttons, see charts) in their browser on this machine. "
            "Returns no link: only the operator, at that browser, can use it.",
            OpenConsoleIn,
            OpenConsoleOut,
            _handler(opener),
            open_world=True,  # it starts a web server and opens the operator's browser
        )
    ]


# What tools/list shows, and the tool of a server that has no opener.
TOOLS = tools(None)
