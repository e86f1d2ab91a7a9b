"""The business: plain async functions over the store. No MCP, no HTTP."""
