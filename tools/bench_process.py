"""Process-level figures for tools/bench.py: cold start and peak memory of a stdio server.

Cold start is the wall time from spawning the server to its `tools/list` answer, through the
same client for every server, so the client's own cost is alike on both sides of a ratio, and
the CPU time the server had spent by then.
Peak memory is the kernel's high-water mark of the server's resident set (VmHWM), read from
/proc while the server still runs; on a system without /proc it is reported as unknown.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

PROC = Path("/proc")


async def cold_start(params: StdioServerParameters, errlog: TextIO, marker: str) -> tuple[float, float | None]:
    """Wall seconds from spawn to `tools/list` answered (legacy handshake, as Claude Desktop connects), and
    the CPU seconds the server (the child whose command line holds `marker`) had used by then.

    CPU time is the steadier figure on a shared machine: another tenant's load stretches the wall
    clock but not the work the server did.
    """
    started = time.perf_counter()
    async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
        await client.list_tools()
        wall = time.perf_counter() - started
        return wall, cpu_seconds(child_pid(marker))


def child_pid(marker: str) -> int | None:
    """The pid of this process's child whose command line contains `marker`, if /proc can tell."""
    me = str(os.getpid())
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            # Field 4 is the parent pid; the command name in field 2 may hold spaces, so split after ')'.
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
            if parent == me and marker in (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                return int(stat.parent.name)
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU seconds the process has used, or None when /proc cannot tell."""
    if pid is None:
        return None
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime and stime, in clock ticks


def peak_rss_mb(pid: int | None) -> float | None:
    """The process's peak resident set size in MB (VmHWM), or None when it cannot be read."""
    if pid is None:
        return None
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
