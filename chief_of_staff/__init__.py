"""Chief of Staff: the operating system of an AI agency, served over MCP."""

from __future__ import annotations

__all__ = ["__version__", "cli", "core", "domain", "http", "mcp", "notify"]

__version__ = "0.1.0"
