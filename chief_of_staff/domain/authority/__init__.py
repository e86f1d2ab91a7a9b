"""Bounded authority: grants, their terms, and the ledger that draws on them."""

__all__ = ["grants", "ledger", "terms"]
