"""The review ritual: scorecards, anomalies, proposals, adjustments, change sets and the packet."""
