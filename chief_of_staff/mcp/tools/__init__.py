"""The tools, one module per activity."""

__all__ = [
    "authority",
    "blueprints",
    "decisions",
    "goals",
    "inbox",
    "orient",
    "outcomes",
    "review",
    "roster",
    "webhooks",
]
