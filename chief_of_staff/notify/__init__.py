"""Telling the operator: webhook delivery, the events a running server raises, and its delivery loop."""

__all__ = ["delivery", "endpoints", "events", "runner"]
