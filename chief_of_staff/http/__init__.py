"""Streamable HTTP: the same server for clients that cannot start a local command; and the operator's console."""

__all__ = ["console", "console_charts", "console_local", "console_opener", "console_tables", "server"]
