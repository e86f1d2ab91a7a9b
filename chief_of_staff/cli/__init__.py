"""The command line: a thin shell over the library, the operator's verified channel."""

__all__ = [
    "access",
    "authority",
    "console",
    "decisions",
    "demo",
    "goals",
    "install",
    "main",
    "notify",
    "outcomes",
    "review",
    "roster",
    "support",
    "tasks",
    "workspace",
]
