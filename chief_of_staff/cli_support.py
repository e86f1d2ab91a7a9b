"""What every command module shares: opening the workspace for one command, and registering commands."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from chief_of_staff.config import Settings
from chief_of_staff.db import Store

__all__ = ["Add", "with_store"]

# The parser's `add(name, handler, help)`: a subcommand that already takes --db.
Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


async def with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[int]]) -> int:
    """Open the workspace named by --db (or the environment, or the default), run `work`, close it."""
    settings = Settings.load(args.db)
    store = await Store.open(settings.db_path, settings.clock)
    try:
        return await work(store)
    finally:
        await store.close()
