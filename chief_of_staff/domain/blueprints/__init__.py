"""Starter agencies: the blueprint file format, the loader, and the TOML files beside them."""

__all__ = ["loader", "schema"]
