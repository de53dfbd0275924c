"""The HTTP layer (aiohttp): every route of the API, its OpenAPI document, token auth and the
middlewares. It depends on the core (``gateway.core``) and the edges; only the daemon and the
web console (``gateway.console``) import it (tests/test_layering.py)."""
