"""Streamable HTTP: the same server for clients that cannot start a local command; and the operator's console."""

__all__ = [
    "console",
    "console_audit",
    "console_authority",
    "console_charts",
    "console_gauges",
    "console_kit",
    "console_local",
    "console_opener",
    "console_review",
    "console_roster",
    "console_settings",
    "console_tables",
    "server",
    "sockets",
]
