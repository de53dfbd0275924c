"""The gateway's HTTP API (aiohttp)."""
