"""The tools, one module per activity."""

__all__ = [
    "authority",
    "blueprints",
    "console",
    "decisions",
    "goals",
    "inbox",
    "orient",
    "outcomes",
    "review",
    "roster",
    "webhooks",
]
