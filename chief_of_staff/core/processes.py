"""Which server processes have the workspace open, so `doctor` can tell one writing process from several.

A server registers its process when it opens the store and removes it at shutdown. A
process that dies first leaves its row behind; `live_servers` prunes rows whose process
is gone. Liveness can only be tested on this host, so rows of other hosts are left alone
and not counted. This is bookkeeping, not a change to the business, so it is not audited.
"""

from __future__ import annotations

import os
import socket
import sys

from chief_of_staff.core.db import Tx


def _here(pid: int | None) -> tuple[str, int]:
    return socket.gethostname(), os.getpid() if pid is None else pid


async def register(tx: Tx, *, pid: int | None = None) -> None:
    """Record a server process (this one by default) on this host as having the workspace open."""
    host, number = _here(pid)
    await tx.run(
        "INSERT OR REPLACE INTO server_processes (pid, host, started_at) VALUES (?, ?, ?)", (number, host, tx.now_text)
    )


async def unregister(tx: Tx, *, pid: int | None = None) -> None:
    """Remove a server process's row (this one by default)."""
    host, number = _here(pid)
    await tx.run("DELETE FROM server_processes WHERE host = ? AND pid = ?", (host, number))


async def live_servers(tx: Tx) -> int:
    """How many registered server processes on this host are still alive; rows of dead ones are removed."""
    host = socket.gethostname()
    rows = await tx.all("SELECT pid FROM server_processes WHERE host = ?", (host,))
    dead = [row["pid"] for row in rows if not is_alive(row["pid"])]
    await tx.run_many("DELETE FROM server_processes WHERE host = ? AND pid = ?", [(host, pid) for pid in dead])
    return len(rows) - len(dead)


def is_alive(pid: int) -> bool:
    """Does a process with this id exist on this host? (A reused id reads as alive: good enough for a warning.)"""
    if pid <= 0:  # 0 and negative ids name process groups, never one server
        return False
    if sys.platform == "win32":
        # os.kill on Windows terminates the process whatever the signal; never probe that way there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
