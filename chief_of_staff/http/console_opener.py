"""`open_console` on the operator's machine: the console started in the server process, the browser opened on it.

A stdio server (what Claude Desktop runs, on the operator's own machine) is built with a
`LocalConsoleOpener` (chief_of_staff.cli.main wires it). When the chat asks, it starts the console
inside the server process if none serves the workspace yet (`console.ensure_console`: one already
running, such as `chief-of-staff console` in a terminal, is used instead), mints a fresh one-time
login link and hands it to the operator's default browser. The link goes nowhere else: not back to
the tool (which reports only the page), not to a log.

The browser is opened from a short-lived child process whose stdin, stdout and stderr are not the
server's: a stdio server's stdout is the protocol, and browser launchers (xdg-open, a browser's own
"opening in existing session") print to theirs, sometimes the link with them. A text browser (lynx,
w3m) is never run: it would wait for a terminal the server does not have. Nor is the link in the
launcher's arguments (webbrowser runs `xdg-open <url>`, then `<browser> <url>`, readable by every local
user in /proc while they start): the browser is opened on a private file:// page that redirects to it
(chief_of_staff.http.console_local.handoff_page), removed a minute later or when the opener closes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from chief_of_staff.core.audit import Actor
from chief_of_staff.core.db import Store
from chief_of_staff.http import console_local

if TYPE_CHECKING:  # the console (uvicorn, Jinja2) is imported when first opened: `serve` starts without it
    from chief_of_staff.http.console import ConsoleHandle, ConsoleOptions

# Opens the browser on a link; False when none could be opened. Tests pass their own.
Browser = Callable[[str], Awaitable[bool]]
BROWSER_TIMEOUT = 20.0

# Run as `python -I -c`; the page's URL comes on stdin (the link itself is only in the 0600 page).
_OPEN_BROWSER = """
import sys, webbrowser
link = sys.stdin.readline().strip()
try:
    browser = webbrowser.get()
except webbrowser.Error:
    sys.exit(1)
if type(browser) is webbrowser.GenericBrowser:  # a text browser, or a bare $BROWSER command: both want a terminal
    sys.exit(1)
sys.exit(0 if browser.open(link) else 1)
"""


async def open_in_browser(link: str) -> bool:
    """Open the operator's default graphical browser on `link`; False when there is none here (no display).

    The browser gets the file:// URL of a private page that redirects to the link, never the link itself.
    """
    page = console_local.handoff_page(link)
    try:
        with anyio.fail_after(BROWSER_TIMEOUT):  # a launcher that hangs is killed, and counts as no browser
            done = await anyio.run_process(
                [sys.executable, "-I", "-c", _OPEN_BROWSER],
                input=f"{page.as_uri()}\n".encode(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
    except (OSError, TimeoutError):
        console_local.remove_handoff(page)
        return False
    if done.returncode != 0:
        console_local.remove_handoff(page)
        return False
    console_local.remove_later(page)
    return True


class LocalConsoleOpener:
    """The console opener of a server on the operator's machine (chief_of_staff.mcp.tools.console.ConsoleOpener)."""

    def __init__(self, browser: Browser = open_in_browser, options: ConsoleOptions | None = None) -> None:
        self._browser = browser
        self._options = options
        self._handle: ConsoleHandle | None = None

    async def open(self, store: Store, actor: Actor, page: str) -> bool:
        """Start the console if none serves this workspace, and open the browser on a fresh link to `page`."""
        from chief_of_staff.http import console

        self._handle = await console.ensure_console(store, self._options)
        link = await self._handle.login_url(actor, page=page)
        return await self._browser(link)

    async def close(self) -> None:
        """Stop the console this process started (one another process serves is left running)."""
        handle, self._handle = self._handle, None
        console_local.remove_handoffs()
        if handle is not None:
            await handle.close()
