"""``[http]`` and its ``[[http.tokens]]``: the HTTP API and who may call it."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.common import MAX_PORT, _name_check, _unique
from gateway.config.loader import check, in_range, non_empty, regex
from gateway.signing import secrets_problem

MIN_HTTP_BODY = 1024
"""Smallest useful limit: a one-message request (a number, a 160-character text, the JSON
around them) stays well under 1 KiB."""

DEFAULT_HTTP_BODY = 16 * 1024 * 1024
"""16 MiB: room for a bulk request of a few hundred thousand recipients (~40 bytes of JSON
each) while bounding what one request can make the gateway hold in memory."""


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of a bearer token, as ``[[http.tokens]] sha256`` stores it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


Scope = Literal["send", "read", "campaigns", "admin"]
"""What a token may do on the HTTP API (see ``gateway.http.auth.ROUTE_SCOPES``): ``send``
messages, ``read`` them back, work with lists and ``campaigns``, all within its account;
``admin`` may do everything, on every account, including the gateway-wide routes (inbound
numbers, the MO log, lifting opt-outs)."""

SCOPES: tuple[Scope, ...] = ("send", "read", "campaigns", "admin")


def _scopes(value: tuple[str, ...]) -> str | None:
    if not value:
        return "give at least one scope, or leave scopes out (the token is then admin)"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenConfig:
    """``[[http.tokens]]``: one bearer token allowed on the HTTP API, stored hashed."""

    name: str = field(metadata=check(_name_check))
    sha256: str = field(
        repr=False,
        metadata=check(regex(r"[0-9a-f]{64}", "64 lower-case hex digits (a SHA-256 digest)")),
    )
    account: str = field(default="", metadata=check(_name_check))
    """The account whose messages, lists and campaigns the token works with; several tokens
    may share one (rotation, one per service). "" is the token's name, the account tokens
    had before accounts existed, so their messages stay theirs."""
    scopes: tuple[Scope, ...] | None = field(default=None, metadata=check(_scopes))
    """Left out: ``admin``, what every token could do before scopes existed (an existing
    configuration keeps working; ``smsgw`` logs a warning per such token when there are
    several)."""
    signing_secrets: tuple[str, ...] = field(
        default=(), repr=False, metadata=check(secrets_problem)
    )
    """Secrets that sign the status callbacks of the token's account (``X-Smsgw-Signature``,
    gateway.signing): the first signs, a second is the one being retired (each gives a
    ``v1``). Tokens of one account that set them set the same list. Empty: unsigned."""

    @property
    def effective_account(self) -> str:
        return self.account or self.name

    @property
    def effective_scopes(self) -> frozenset[Scope]:
        return frozenset(self.scopes) if self.scopes is not None else frozenset({"admin"})

    def matches(self, token: str) -> bool:
        """Whether ``token`` is this one; compares digests in constant time."""
        return hmac.compare_digest(hash_token(token), self.sha256)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """``[http]``: the HTTP API."""

    host: str = field(default="127.0.0.1", metadata=check(non_empty))
    port: int = field(default=8775, metadata=check(in_range(0, MAX_PORT)))
    """0 picks a free port (tests)."""
    max_body_bytes: int = field(
        default=DEFAULT_HTTP_BODY, metadata=check(in_range(MIN_HTTP_BODY, None))
    )
    tokens: tuple[TokenConfig, ...] = field(
        metadata=check(lambda v: None if v else "at least one token is required")
    )
    header_timeout: float = field(default=10.0, metadata=check(in_range(0.1, 300)))
    """Seconds a client has to send a request's line and headers, from the connection's
    opening or the next request's first byte (slow clients: gateway.http.connguard)."""
    body_timeout: float = field(default=30.0, metadata=check(in_range(0.1, 3600)))
    """Seconds a request body may stop arriving before the connection is closed."""
    idle_timeout: float = field(default=30.0, metadata=check(in_range(0.1, 3600)))
    """Seconds a kept-alive connection may wait for its next request."""
    max_connections: int = field(default=4096, metadata=check(in_range(16, 1_000_000)))
    """Connections at once, in total; also held below the open-file limit less a reserve.
    At the cap a new connection replaces the one waiting longest for its request headers."""
    max_connections_per_client: int = field(default=256, metadata=check(in_range(1, 1_000_000)))
    """Connections at once from one client address (same rule at this cap)."""

    def validate(self) -> list[str]:
        errors = _unique(self.tokens, "name", "tokens") + _unique(self.tokens, "sha256", "tokens")
        first: dict[str, int] = {}
        for n, token in enumerate(self.tokens):
            if not token.signing_secrets:
                continue
            account = token.effective_account
            m = first.setdefault(account, n)
            if self.tokens[m].signing_secrets != token.signing_secrets:
                errors.append(
                    f"tokens[{n}].signing_secrets: differ from tokens[{m}].signing_secrets;"
                    f" the tokens of account {account!r} sign its callbacks with one list"
                )
        return errors

    def signing_secrets(self) -> dict[str, tuple[str, ...]]:
        """Each account's callback signing secrets (accounts that have some)."""
        found: dict[str, tuple[str, ...]] = {}
        for token in self.tokens:
            if token.signing_secrets:
                found.setdefault(token.effective_account, token.signing_secrets)
        return found

    def find_token(self, token: str) -> TokenConfig | None:
        """The configured token that ``token`` is, if any. Every entry is compared, so the
        time taken does not depend on which one matched."""
        digest = hash_token(token)
        found = None
        for entry in self.tokens:
            if hmac.compare_digest(digest, entry.sha256):
                found = entry
        return found
