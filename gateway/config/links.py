"""``[links]``: short links in campaign texts, and the public listener that redirects them."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Final

from gateway.config.loader import check, in_range, max_length

MAX_PORT: Final = 65535
MAX_BASE_URL: Final = 100
"""Every link of a message costs its length plus a code: a long base URL eats the text."""
MAX_RETENTION_DAYS: Final = 3650

KNOWN_PREFETCHERS: Final = (
    # Link previews of messengers and social networks, and crawlers: they fetch a link
    # nobody clicked (iMessage previews say "facebookexternalhit ... Twitterbot").
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "whatsapp",
    "telegrambot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "linkedinbot",
    "skypeuripreview",
    "googlebot",
    "google-pagerenderer",
    "googleimageproxy",
    "bingbot",
    "applebot",
    "yandexbot",
    "pinterest",
    "viber",
    "snapchat",
    "bot",
    "crawler",
    "spider",
    "preview",
)
"""Lower-case pieces of a User-Agent that make a request a prefetch, not a click."""


def _base_url(value: str) -> str | None:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http(s) URL such as https://s.example.net, got {value!r}"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "must have no query, fragment or credentials"
    return None


def _lower_words(values: tuple[str, ...]) -> str | None:
    bad = [v for v in values if not v or v != v.strip().lower()]
    return f"must be non-empty lower-case pieces of a User-Agent, got {bad!r}" if bad else None


@dataclass(frozen=True, slots=True, kw_only=True)
class LinksConfig:
    """``[links]`` (optional): campaign texts may carry links (``{link:https://...}``, or
    plain URLs with the campaign's ``track_links``); each recipient gets a short link of
    their own, ``base_url/CODE``, served by a listener of its own on ``host:port`` (public,
    no token). Without this section a campaign with links is refused."""

    base_url: str = field(metadata=check(lambda v: _base_url(v) or max_length(MAX_BASE_URL)(v)))
    """What the short links start with; the listener must be reachable there (directly or
    through a proxy that passes the path, the User-Agent and the method)."""
    host: str = "127.0.0.1"
    port: int = field(default=8777, metadata=check(in_range(0, MAX_PORT)))
    code_length: int = field(default=7, metadata=check(in_range(6, 8)))
    """Characters of base62 per code: 7 gives 62^7 = 3.5e12 codes, so a guess hits one of
    ten million live codes once in 350,000 tries."""
    retention_days: float = field(default=90.0, metadata=check(in_range(0, MAX_RETENTION_DAYS)))
    """Codes older than this answer 404 and are deleted with their clicks; 0 keeps them."""
    prefetchers: tuple[str, ...] = field(default=KNOWN_PREFETCHERS, metadata=check(_lower_words))
    """User-Agent pieces (lower case) whose requests are counted as bots, not clicks."""

    @property
    def prefix(self) -> str:
        """``base_url`` with one trailing slash: the short link is ``prefix + code``."""
        return self.base_url.rstrip("/") + "/"

    def link_length(self) -> int:
        """Characters one short link takes in a text."""
        return len(self.prefix) + self.code_length
