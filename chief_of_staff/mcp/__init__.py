"""The MCP surface: the only package that imports the MCP SDK. Wiring only; no SQL."""

__all__ = [
    "caller",
    "completions",
    "prompts",
    "resources",
    "schema_cache",
    "server",
    "subscriptions",
    "toolkit",
    "tools",
]
