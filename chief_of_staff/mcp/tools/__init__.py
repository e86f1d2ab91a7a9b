"""The tools, one module per activity."""
