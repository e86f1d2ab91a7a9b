"""Bounded authority: grants, their terms, targets in one spelling, and the ledger that draws on them."""

__all__ = ["grants", "ledger", "targets", "terms"]
