"""The tools, one module per activity."""

__all__ = ["operator", "work"]
