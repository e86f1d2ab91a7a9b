"""The MCP surface: the only package that imports the MCP SDK. Wiring only; no SQL."""

__all__ = [
    "access",
    "approval",
    "completions",
    "prompts",
    "resources",
    "schema_cache",
    "server",
    "subscriptions",
    "toolkit",
    "tools",
]
