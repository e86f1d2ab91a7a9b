"""Streamable HTTP: the same server for clients that cannot start a local command."""

__all__ = ["server"]
