"""`chief-of-staff console`: the operator's console in the browser, on this machine.

It serves the console for the workspace on 127.0.0.1 (a free port unless --port), mints a one-time
login link and opens the browser on it (`--no-browser` prints it instead, on stdout). The link is a
secret for a few minutes: it goes to the browser or the terminal, never to a log. While it runs, the
console announces its address beside the workspace file (`<db>.console.json`, readable by its owner
only), so `chief-of-staff console --link` can mint a fresh link for it from another terminal; and it
sends the workspace's queued webhook messages, as a server does. The browser is opened on a private
file:// page that redirects to the link, not on the link: a browser's command line is readable by every
local user while it starts (chief_of_staff.http.console_local).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import webbrowser
from functools import partial

import anyio

from chief_of_staff.cli.support import Add
from chief_of_staff.core import anchor, processes
from chief_of_staff.core.audit import OPERATOR_CLI, SYSTEM
from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store
from chief_of_staff.core.errors import InvalidInput, WorkspaceSealed
from chief_of_staff.domain import console_access, workspace
from chief_of_staff.http import console, console_local
from chief_of_staff.http.console import ConsoleHandle, ConsoleOptions
from chief_of_staff.notify import runner

log = logging.getLogger(__name__)

NONE_RUNNING = (
    "No console is running for this workspace, so there is nothing to log in to. "
    "Start one with `chief-of-staff console` (it opens your browser), or `chief-of-staff console --no-browser`."
)


def cmd_console(args: argparse.Namespace) -> int:
    settings = Settings.load(args.db)
    if args.link:
        return anyio.run(_print_link, settings)
    if args.port is not None and not 1 <= args.port <= 65535:
        raise InvalidInput(f"--port: send a port from 1 to 65535 (or leave it out for a free one), not {args.port}.")
    return anyio.run(_serve, settings, ConsoleOptions(port=args.port or 0), not args.no_browser)


async def _print_link(settings: Settings) -> int:
    url = console.running_console_url(settings.db_path)
    if url is None:
        raise InvalidInput(NONE_RUNNING)
    store = await Store.open(settings.db_path, settings.clock)
    try:
        link = await ConsoleHandle(url, store).login_url(OPERATOR_CLI)
    finally:
        await store.close()
    print(link)
    _say(f"a one-time login link for the console at {url}: it works once, for a few minutes")
    return 0


async def _serve(settings: Settings, options: ConsoleOptions, browser: bool) -> int:
    store = await Store.open(settings.db_path, settings.clock)
    try:
        try:
            async with store.write() as tx:
                await workspace.ensure(tx, SYSTEM)
                await processes.register(tx)  # so `doctor` sees how many processes write this file
        except WorkspaceSealed as sealed:
            log.warning("%s", sealed)  # the console still shows the workspace; logging in needs a repair first

        async def ready(handle: ConsoleHandle) -> None:
            link = await handle.login_url(OPERATOR_CLI)
            _say(f"the console for {settings.db_path} is at {handle.url}; stop it with Ctrl-C")
            minutes = int(console_access.LOGIN_TTL.total_seconds() // 60)
            if browser and _open_browser(link):
                _say(f"opened your browser on a one-time login link (it works once, within {minutes} minutes)")
                return
            print(f"Open the console (this link works once, within {minutes} minutes):", flush=True)
            print(link, flush=True)

        async with anyio.create_task_group() as group:
            # What the operator does here (approving, changing a grant) queues webhook messages; with no server
            # running beside the console (Desktop closed), they would wait for the next one. Delivery claims
            # each message, so a server running too never sends one twice.
            group.start_soon(partial(runner.run_deliveries, store, interval=settings.webhook_tick))
            await console.serve_console(store, options, ready)
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(WorkspaceSealed):
                async with store.write() as tx:
                    await processes.unregister(tx)
            await anchor.export_if_stale(store, settings)
            await store.close()
            console_local.remove_handoffs()
    return 0


def _open_browser(link: str) -> bool:
    """Open the operator's default browser on the link; False when there is none to open (then it is printed).

    The browser is given the file:// URL of a private page that redirects to the link, never the link itself.
    """
    page = console_local.handoff_page(link)
    try:
        opened = webbrowser.open(page.as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        console_local.remove_handoff(page)
        return False
    console_local.remove_later(page)
    return True


def _say(text: str) -> None:
    print(f"chief-of-staff: {text}", file=sys.stderr, flush=True)


def register(add: Add) -> None:
    sub = add(
        "console",
        cmd_console,
        "Open the operator's console in your browser: decisions with Approve / Deny, goals with charts.",
    )
    sub.add_argument("--port", type=int, default=None, help="listen on this port of 127.0.0.1 (default: a free one)")
    sub.add_argument(
        "--no-browser", action="store_true", help="print the one-time login link instead of opening the browser"
    )
    sub.add_argument(
        "--link",
        action="store_true",
        help="only mint and print a fresh login link for the console already running for this workspace",
    )
