"""Bearer-token authentication and authorisation.

``Authorization: Bearer <token>`` on every non-public path. Tokens are compared as SHA-256
digests in constant time by :meth:`HttpConfig.find_token`; the clear token is never logged,
stored or echoed.

A token acts for an **account** (``[[http.tokens]] account``, by default its name): the
messages its requests create are written under that account, its idempotency keys are scoped
by it, and it sees and changes only that account's messages, lists and campaigns. What it
may do is its **scopes**: each route needs one, listed in :data:`ROUTE_SCOPES` (and shown in
the OpenAPI document as ``x-scope``); ``admin`` passes every check, on every account. A route
registered without an entry there makes :func:`check_routes` refuse to build the app, so no
route ships without an authorisation decision. A token without the route's scope gets 403
``forbidden``; an object of another account is answered 404, as if it did not exist (its id
tells nothing).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final, Literal

from aiohttp import web

from gateway.config import HttpConfig, Scope
from gateway.http.errors import FORBIDDEN, UNAUTHORIZED, ApiError


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: the token's name (logs), its account and its scopes."""

    token: str
    account: str
    scopes: frozenset[Scope]

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def may(self, scope: Scope) -> bool:
        return self.admin or scope in self.scopes

    def owns(self, account: str | None) -> bool:
        """Whether an object of ``account`` is this principal's to see and change."""
        return self.admin or account == self.account


ACCOUNT_KEY: Final = web.RequestKey("account", str)
"""The authenticated token's account, set on the request by the middleware."""
PRINCIPAL_KEY: Final = web.RequestKey("principal", Principal)
"""The authenticated token's :class:`Principal`."""

ROUTE_SCOPES: Final[dict[tuple[str, str], Scope]] = {
    ("POST", "/v1/messages"): "send",
    ("POST", "/v1/messages/batch"): "send",
    ("GET", "/v1/messages/{id}"): "read",
    ("GET", "/v1/messages"): "read",
    ("POST", "/v1/lists"): "campaigns",
    ("GET", "/v1/lists"): "campaigns",
    ("GET", "/v1/lists/{id}"): "campaigns",
    ("POST", "/v1/lists/{id}/import"): "campaigns",
    ("GET", "/v1/imports/{id}"): "campaigns",
    ("DELETE", "/v1/lists/{id}"): "campaigns",
    # Contacts and opt-outs are seen (and changed) only through the account's own lists.
    ("GET", "/v1/contacts"): "campaigns",
    ("GET", "/v1/contacts/{number}"): "campaigns",
    ("PATCH", "/v1/contacts/{number}"): "campaigns",
    ("DELETE", "/v1/contacts/{number}"): "campaigns",
    ("GET", "/v1/opt-outs"): "campaigns",
    ("GET", "/v1/opt-outs/export.csv"): "campaigns",
    # Adding an opt-out only ever stops messages; lifting one overrides a subscriber's STOP
    # for every account: the operator's call.
    ("POST", "/v1/opt-outs"): "campaigns",
    ("DELETE", "/v1/opt-outs"): "admin",
    ("POST", "/v1/campaigns"): "campaigns",
    ("GET", "/v1/campaigns"): "campaigns",
    ("GET", "/v1/campaigns/{id}"): "campaigns",
    ("PUT", "/v1/campaigns/{id}"): "campaigns",
    ("POST", "/v1/campaigns/{id}/start"): "campaigns",
    ("POST", "/v1/campaigns/{id}/pause"): "campaigns",
    ("POST", "/v1/campaigns/{id}/resume"): "campaigns",
    ("POST", "/v1/campaigns/{id}/cancel"): "campaigns",
    ("GET", "/v1/campaigns/{id}/stats"): "campaigns",
    ("GET", "/v1/campaigns/{id}/clicks.csv"): "campaigns",
    ("POST", "/v1/campaigns/{id}/send-to-responders"): "campaigns",
    ("POST", "/v1/templates"): "campaigns",
    ("GET", "/v1/templates"): "campaigns",
    ("GET", "/v1/templates/{id}"): "campaigns",
    ("PUT", "/v1/templates/{id}"): "campaigns",
    ("DELETE", "/v1/templates/{id}"): "campaigns",
    ("POST", "/v1/templates/{id}/preview"): "campaigns",
    # Inbound numbers and the MO log belong to the gateway, not to an account: the numbers
    # receive for every account, and an MO names no account.
    ("GET", "/v1/numbers"): "admin",
    ("GET", "/v1/numbers/{number}"): "admin",
    ("PUT", "/v1/numbers/{number}"): "admin",
    ("DELETE", "/v1/numbers/{number}"): "admin",
    ("GET", "/v1/interactions"): "admin",
    ("GET", "/v1/interactions/export.csv"): "admin",
    ("POST", "/v1/interactions/email"): "admin",
    ("POST", "/v1/interactions/{id}/reply"): "admin",
    ("POST", "/v1/interactions/{id}/retry"): "admin",
    ("GET", "/v1/interactions/{id}"): "admin",
    ("PATCH", "/v1/interactions/{id}"): "admin",
    ("GET", "/v1/conversations"): "admin",
    # The callback outbox is the gateway's (its rows name no account): the operator's.
    ("GET", "/v1/callbacks"): "admin",
    ("POST", "/v1/callbacks/retry"): "admin",
    ("POST", "/v1/callbacks/{id}/retry"): "admin",
}
"""The scope each authenticated route needs, by (method, path template)."""

CONSOLE_PREFIX: Final = "/console"
"""The web console's paths (gateway.console): they take no bearer token; the console signs
its users in with one and checks its own session on each request."""

ConsoleAccess = Literal["public", "session"]

CONSOLE_ROUTES: Final[dict[tuple[str, str], ConsoleAccess]] = {
    # The way in: the sign-in form, the console's own files, the redirect from "/".
    ("GET", "/"): "public",
    ("GET", "/console"): "public",
    ("GET", "/console/signin"): "public",
    ("POST", "/console/signin"): "public",
    ("GET", "/console/static/{filename}"): "public",
    # A signed-in token. What a page shows of messages, lists and campaigns it asks the API
    # for with that token, so ROUTE_SCOPES and the account checks apply as for any client.
    # The overview shows only what /healthz and /metrics show without a token.
    ("GET", "/console/"): "session",
    ("GET", "/console/overview.json"): "session",
    ("GET", "/console/overview/minutes.svg"): "session",
    ("GET", "/console/messages"): "session",
    ("GET", "/console/messages/{id}"): "session",
    ("GET", "/console/campaigns"): "session",
    ("GET", "/console/campaigns/new"): "session",
    ("POST", "/console/campaigns/new"): "session",
    ("GET", "/console/campaigns/{id}"): "session",
    ("GET", "/console/campaigns/{id}/edit"): "session",
    ("POST", "/console/campaigns/{id}/edit"): "session",
    ("GET", "/console/interactions"): "session",
    ("GET", "/console/lists"): "session",
    ("POST", "/console/lists"): "session",
    ("POST", "/console/lists/{id}/import"): "session",
    ("POST", "/console/campaigns/{id}/{action}"): "session",
    ("POST", "/console/signout"): "session",
    ("GET", "/console/contacts"): "session",
    ("GET", "/console/contacts/{number}"): "session",
    ("GET", "/console/opt-outs"): "session",
    ("GET", "/console/opt-outs.csv"): "session",
    ("POST", "/console/opt-outs"): "session",
    ("POST", "/console/opt-outs/lift"): "session",
    ("GET", "/console/numbers"): "session",
    ("POST", "/console/numbers"): "session",
    ("GET", "/console/numbers/{number}"): "session",
    ("POST", "/console/numbers/{number}"): "session",
    ("POST", "/console/numbers/{number}/delete"): "session",
    ("GET", "/console/interactions.csv"): "session",
    ("POST", "/console/interactions/selected.csv"): "session",
    ("POST", "/console/interactions/email"): "session",
    ("POST", "/console/interactions/send-to-responders"): "session",
    ("GET", "/console/interactions/{id}"): "session",
    ("POST", "/console/interactions/{id}/reply"): "session",
    ("POST", "/console/interactions/{id}/care"): "session",
}
"""The console's routes, each with its decision: ``public`` or a signed-in ``session``."""


def check_routes(routes: Iterable[tuple[str, str]], public: Collection[str]) -> None:
    """Raise RuntimeError naming every (method, path) outside ``public`` that has no entry
    in :data:`ROUTE_SCOPES` (or, for the console, :data:`CONSOLE_ROUTES`): a route without
    an authorisation decision does not ship."""
    missing = sorted(
        f"{method} {path}"
        for method, path in routes
        if path not in public
        and (method, path) not in ROUTE_SCOPES
        and (method, path) not in CONSOLE_ROUTES
    )
    if missing:
        raise RuntimeError(f"routes without an entry in ROUTE_SCOPES: {', '.join(missing)}")


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]


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


class Authenticator:
    """The auth step of the request middleware (gateway.http.pipeline): refuse with 401
    every request to a path outside ``public_paths`` without a valid token, and with 403
    one whose token lacks the route's scope; on success, put the :class:`Principal` under
    :data:`PRINCIPAL_KEY` and its account under :data:`ACCOUNT_KEY`."""

    __slots__ = ("_http", "_principals", "public")

    def __init__(self, http: HttpConfig, public_paths: Collection[str]) -> None:
        self._http = http
        self.public = frozenset(public_paths)
        # One Principal per configured token, made once (its scopes are a new frozenset
        # each time they are asked for).
        self._principals = {
            id(entry): Principal(entry.name, entry.effective_account, entry.effective_scopes)
            for entry in http.tokens
        }

    @staticmethod
    def route_decision(method: str, canonical: str) -> tuple[bool, Scope | None]:
        """For a matched route: whether the console answers it (it checks its own
        session: never an API route), and else the scope it needs (None: the route has no
        entry, refused to every token; :func:`check_routes` keeps that from shipping)."""
        if (method, canonical) in CONSOLE_ROUTES:
            return True, None
        return False, ROUTE_SCOPES.get((method, canonical))

    def check(self, request: web.Request, matched: bool, scope: Scope | None) -> None:
        """Raise the 401 or 403 for ``request`` (not a public path, not a console route),
        whose route needs ``scope`` (``matched``: a route was found; else the 404 or 405
        follows a valid token)."""
        header = request.headers.get("Authorization")
        if header is None:
            raise _refuse("send the token as 'Authorization: Bearer <token>'", None)
        token = bearer_token(header)
        if token is None:
            raise _refuse("the Authorization header must be 'Bearer <token>'", "invalid_request")
        who = self._principal(token)
        if who is None:
            raise _refuse("the bearer token is not valid", "invalid_token")
        request[PRINCIPAL_KEY] = who
        request[ACCOUNT_KEY] = who.account
        if matched and (scope is None or not who.may(scope)):
            # No entry: check_routes keeps that from shipping; refuse all the same.
            raise ApiError(
                403,
                FORBIDDEN,
                f"this token may not do this: the route needs the {scope or 'admin'!r} scope",
            )

    def principal_of(self, header: str) -> Principal | None:
        """Who an ``Authorization`` header value authenticates (None where :meth:`check`
        answers 401), for a caller that answers refusals elsewhere (gateway.http.fastlane)."""
        token = bearer_token(header)
        return self._principal(token) if token is not None else None

    def _principal(self, token: str) -> Principal | None:
        entry = self._http.find_token(token) if _is_text(token) else None
        if entry is None:
            return None
        who = self._principals.get(id(entry))
        if who is None:
            who = Principal(entry.name, entry.effective_account, entry.effective_scopes)
        return who
