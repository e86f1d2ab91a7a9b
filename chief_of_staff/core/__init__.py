"""The lowest layer: errors, the clock, ids, field types and money, settings, files, the store, the audit log."""

__all__ = ["anchor", "audit", "clock", "config", "db", "errors", "fields", "files", "ids", "processes"]
