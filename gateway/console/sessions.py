"""Console sessions: a signed-in API token behind a random cookie, kept in memory.

A session holds the token it was opened with (in this process's memory only: never in the
cookie, a log or the database), so every page asks the HTTP API with it, as any client
would. The cookie carries only the session's random id. A session ends at sign-out, after
:data:`IDLE_SECONDS` without a request, :data:`MAX_AGE_SECONDS` after sign-in, when its
token leaves the configuration, or when the gateway restarts. Time is passed in.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

IDLE_SECONDS: Final = 30 * 60.0
"""A console left alone this long signs out, as banking and cloud consoles do (OWASP's
session guidance names 15-30 minutes for an idle timeout)."""
MAX_AGE_SECONDS: Final = 12 * 3600.0
"""A working day: then the token is asked for again, however busy the session."""
MAX_SESSIONS: Final = 10_000
"""Sessions kept at once; past it the least recently used ends (memory stays bounded
whoever signs in in a loop)."""
ID_BYTES: Final = 32
"""256 random bits per session id and CSRF token."""


def new_secret() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


@dataclass(slots=True)
class Session:
    id: str
    token: str
    """The clear API token, for the API calls the console makes for this session."""
    token_sha256: str
    """Its digest: the session ends when no configured token has it any more."""
    name: str
    """The token's name (shown, logged)."""
    csrf: str
    """Every POST form of this session carries it."""
    created: float
    seen: float

    def expires(self) -> float:
        return min(self.seen + IDLE_SECONDS, self.created + MAX_AGE_SECONDS)


class Sessions:
    """The open sessions, least recently used first."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._open: OrderedDict[str, Session] = OrderedDict()
        self._max = max_sessions

    def __len__(self) -> int:
        return len(self._open)

    def open(self, token: str, token_sha256: str, name: str, now: float) -> Session:
        session = Session(new_secret(), token, token_sha256, name, new_secret(), now, now)
        self._open[session.id] = session
        while len(self._open) > self._max:
            self._open.popitem(last=False)
        return session

    def get(self, session_id: str, now: float) -> Session | None:
        """The live session of this id (its idle time starts again), or None."""
        session = self._open.get(session_id)
        if session is None:
            return None
        if now >= session.expires():
            del self._open[session_id]
            return None
        session.seen = now
        self._open.move_to_end(session_id)
        return session

    def close(self, session_id: str) -> None:
        self._open.pop(session_id, None)
