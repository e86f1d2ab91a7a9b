"""The review ritual: scorecards, anomalies, proposals, adjustments, change sets and the packet."""

__all__ = ["adjustments", "changesets", "packet", "proposals", "scorecards"]
