"""Bearer-token authentication: ``Authorization: Bearer <token>`` on every non-public path.

Tokens are compared as SHA-256 digests in constant time by :meth:`HttpConfig.find_token`;
the clear token is never logged, stored or echoed. The matching token's ``name`` is the
request's account: it is written on every message the request creates and scopes its
idempotency keys.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.api.errors import UNAUTHORIZED, ApiError
from gateway.config import HttpConfig

ACCOUNT_KEY: Final = web.RequestKey("account", str)
"""The authenticated token's name, set on the request by the middleware."""

_REALM: Final = 'Bearer realm="smsgw"'


def _refuse(message: str, bearer_error: str | None) -> ApiError:
    # RFC 6750 section 3: a request with no credentials gets the bare challenge; one with a
    # wrong token gets error="invalid_token".
    challenge = _REALM if bearer_error is None else f'{_REALM}, error="{bearer_error}"'
    return ApiError(401, UNAUTHORIZED, message, headers={"WWW-Authenticate": challenge})


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization`` header value, or None when it is not ``Bearer``."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def _is_text(token: str) -> bool:
    # Header bytes that are not UTF-8 arrive as lone surrogates, which cannot be hashed.
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def auth_middleware(http: HttpConfig, public_paths: Collection[str]) -> Middleware:
    """Refuse with 401 every request to a path outside ``public_paths`` without a valid
    token; on success, put the token's name under :data:`ACCOUNT_KEY`."""
    public = frozenset(public_paths)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public:
            return await handler(request)
        header = request.headers.get("Authorization")
        if header is None:
            raise _refuse("send the token as 'Authorization: Bearer <token>'", None)
        token = bearer_token(header)
        if token is None:
            raise _refuse("the Authorization header must be 'Bearer <token>'", "invalid_request")
        entry = http.find_token(token) if _is_text(token) else None
        if entry is None:
            raise _refuse("the bearer token is not valid", "invalid_token")
        request[ACCOUNT_KEY] = entry.name
        return await handler(request)

    return authenticate
