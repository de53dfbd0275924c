"""Links in campaign texts and the short codes that stand for them. Pure code.

A campaign's text marks a link as ``{link:https://shop.example/spring}``; with the
campaign's ``track_links`` every plain ``http(s)://`` URL of the text is one too. Before a
campaign is sent its text becomes a template where each distinct link is a field
(``{_link_0}``, ``{_link_1}`` ...), so a contact's own fields (rendered in the same single
pass) can never make a link: only what the campaign's author wrote is ever a target.

Each recipient gets a code per link: ``code_length`` characters of base62 drawn from the
operating system's CSPRNG (:mod:`secrets`), unguessable; uniqueness is the store's primary
key (a clash, about one in 350,000 chunks with ten million live 7-character codes, makes the
commit fail and the runner draws the chunk's codes again).
"""

from __future__ import annotations

import re
import secrets
import string
import urllib.parse
from collections.abc import Sequence
from typing import Final

ALPHABET: Final = string.digits + string.ascii_letters
"""base62: safe in GSM 03.38 (one septet each) and in a URL path."""
MAX_TARGET: Final = 2048
MAX_LINKS: Final = 10
"""Distinct links in one campaign text."""
FIELD_PREFIX: Final = "_link_"

_MARKER: Final = re.compile(r"\{link:([^{}\s]*)\}")
_URL: Final = re.compile(r"https?://[^\s<>\"{}]+")
_TRAILING: Final = ".,;:!?)]'"
"""Punctuation that ends a sentence after a plain URL rather than belonging to it."""
CODE_PATTERN: Final = re.compile(r"[0-9A-Za-z]{6,8}")
_PRINTABLE_ASCII: Final = re.compile(r"[\x21-\x7e]+")


def new_code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def target_error(url: str) -> str | None:
    """Why ``url`` cannot be a link target, or None."""
    if len(url) > MAX_TARGET:
        return f"a link is at most {MAX_TARGET} characters"
    if not _PRINTABLE_ASCII.fullmatch(url):
        # It goes out as a Location header: visible ASCII only.
        return (
            f"a link must be printable ASCII, got {url!r}: percent-encode other characters"
            " (and write an international domain in its xn-- form)"
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"a link must be an absolute http(s) URL, got {url!r}"
    return None


def link_template(text: str, track_links: bool) -> tuple[str, list[str]]:
    """``text`` with each link replaced by a field ``{_link_N}``, and the distinct targets
    (N is the index). ``{link:URL}`` markers always; plain URLs when ``track_links``."""
    targets: list[str] = []

    def field_for(url: str) -> str:
        if url not in targets:
            targets.append(url)
        return "{" + f"{FIELD_PREFIX}{targets.index(url)}" + "}"

    template = _MARKER.sub(lambda m: field_for(m.group(1)), text)
    if track_links:

        def plain(m: re.Match[str]) -> str:
            url = m.group(0)
            kept = url.rstrip(_TRAILING)
            return field_for(kept) + url[len(kept) :]

        template = _URL.sub(plain, template)
    return template, targets


def link_errors(text: str, track_links: bool) -> list[str]:
    """What is wrong with the links of a campaign text (empty: nothing)."""
    _, targets = link_template(text, track_links)
    errors = [e for e in (target_error(t) for t in targets) if e is not None]
    if len(targets) > MAX_LINKS:
        errors.append(f"at most {MAX_LINKS} distinct links, got {len(targets)}")
    return errors


def link_fields(prefix: str, codes: Sequence[str]) -> dict[str, str]:
    """The template fields of one recipient's short links."""
    return {f"{FIELD_PREFIX}{n}": prefix + code for n, code in enumerate(codes)}
