"""The MCP surface: the only package that imports the MCP SDK. Wiring only; no SQL."""
