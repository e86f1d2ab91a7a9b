"""The business: plain async functions over the store. No MCP, no HTTP."""

__all__ = [
    "agencies",
    "authority",
    "blueprints",
    "brief",
    "deciding",
    "decisions",
    "doctor",
    "goals",
    "inbox",
    "lookup",
    "outbox",
    "outcomes",
    "pace",
    "review",
    "routines",
    "task_fields",
    "tokens",
    "trust",
    "viewers",
    "workspace",
]
