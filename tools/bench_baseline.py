"""The yardstick for tools/bench.py: a bare MCPServer on the same SDK with one do-nothing tool.

`noop` is async like every Chief of Staff tool: a sync tool would hop to a worker thread and
make the baseline slower than "nothing", flattering the ratio.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("noop-baseline", log_level="WARNING")


@server.tool()
async def noop() -> dict[str, bool]:
    """Do nothing."""
    return {"ok": True}


if __name__ == "__main__":
    server.run("stdio")
