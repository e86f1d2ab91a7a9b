"""The review ritual: scorecards, anomalies, proposals, adjustments, change sets and the packet."""

__all__ = ["adjustments", "anomalies", "changesets", "packet", "proposals", "scorecards"]
