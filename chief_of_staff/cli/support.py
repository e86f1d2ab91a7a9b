"""What every command module shares: opening the workspace for one command, and registering commands."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Awaitable, Callable

import anyio

from chief_of_staff.core.config import Settings
from chief_of_staff.core.db import Store

# The parser's `add(name, handler, help)`: a subcommand that already takes --db.
Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


async def _with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[int]]) -> int:
    """Open the workspace named by --db (or the environment, or the default), run `work`, close it."""
    settings = Settings.load(args.db)
    store = await Store.open(settings.db_path, settings.clock)
    try:
        return await work(store)
    finally:
        await store.close()


def workspace_command(
    work: Callable[[argparse.Namespace, Store], Awaitable[int]],
) -> Callable[[argparse.Namespace], int]:
    """A command that runs `work(args, store)` on the workspace named by --db, and closes it after.

    Every command that reads or changes the workspace has this shape; the handler the parser calls
    is the synchronous wrapper.
    """

    @functools.wraps(work)
    def command(args: argparse.Namespace) -> int:
        return anyio.run(_with_store, args, functools.partial(work, args))

    return command


def add_nested(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Callable[[argparse.Namespace], int],
    help_text: str,
) -> argparse.ArgumentParser:
    """An action under a command with actions (`token create`, `notify add`), taking --db too."""
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    # SUPPRESS: `token --db F create` and `token create --db F` both work; neither default clobbers the other.
    parser.add_argument("--db", default=argparse.SUPPRESS, help="workspace database file")
    return parser
