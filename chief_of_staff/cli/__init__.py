"""The command line: a thin shell over the library, the operator's verified channel."""

__all__ = ["access", "demo", "install", "main", "notify", "review", "support"]
