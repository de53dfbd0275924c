"""What a message template gives: one contact's rendering, and the longest rendering across
an audience, each with its encoding and part count as the intake counts them.

The audience is read a page of contacts at a time (``PAGE``, by number) and only the
longest rendering so far is kept, so a million-member list costs a thousand reads and the
memory of one page, never the list. "Longest" is the most parts, then the most characters
(then the lowest number, so the answer is the same on every run); a rendering the intake
would refuse (too long) counts as longer than any other.

Rendering is the campaigns' own (gateway.inbound.templates ``render`` with
``contact_fields``); a ``{link:URL}`` renders as a short link of the configured length
(``link_prefix`` + ``code_length`` characters), as the runner will make it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.core.errors import FieldError
from gateway.inbound.templates import contact_fields, render
from gateway.links.codes import link_fields, link_template
from gateway.store.base import Contact

PAGE: Final = 1000
"""Contacts read at a time while the longest rendering is looked for."""

Count = Callable[[str], "tuple[str, int] | list[FieldError]"]
"""The intake's encoding and part count of a text (Intake.count on the default route), or
why it would be refused (too long)."""
Page = Callable[[str, int], Awaitable[Sequence[Contact]]]
"""The audience's contacts by number above ``after``, at most ``limit``."""


@dataclass(frozen=True, slots=True)
class Rendering:
    number: str | None
    text: str
    encoding: str | None
    """None when the intake would refuse the text (``problem`` says why)."""
    parts: int
    characters: int
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "text": self.text,
            "encoding": self.encoding,
            "parts": self.parts,
            "characters": self.characters,
            "problem": self.problem,
        }

    def key(self) -> tuple[bool, int, int]:
        """The order of "longer": refused (too long) first, then more parts, then more
        characters. Equal ones keep the first met: the lowest number."""
        return (self.problem is not None, self.parts, self.characters)


@dataclass(frozen=True, slots=True)
class Links:
    """How short links render: ``prefix`` (base URL and '/') and the code's length."""

    prefix: str
    code_length: int


class TemplatePreview:
    """Renders one template for contacts and measures the result."""

    def __init__(self, template: str, count: Count, links: Links | None) -> None:
        self.count = count
        self.text, targets = link_template(template, track_links=False)
        self.links: dict[str, str] = {}
        if targets:
            prefix, length = (links.prefix, links.code_length) if links else ("", 0)
            codes = ["x" * length for _ in targets] if links else list(targets)
            self.links = link_fields(prefix, codes)

    def render(self, number: str, contact: Contact | None) -> Rendering:
        fields = contact_fields(number, contact)
        fields.update(self.links)
        text = render(self.text, fields)
        counted = self.count(text)
        if isinstance(counted, list):
            problem = "; ".join(f"{e.path}: {e.message}" for e in counted)
            return Rendering(number, text, None, 0, len(text), problem)
        encoding, parts = counted
        return Rendering(number, text, encoding, parts, len(text))

    async def longest(self, page: Page, page_size: int = PAGE) -> tuple[Rendering | None, int]:
        """The longest rendering across the audience ``page`` reads, and how many contacts
        it rendered for."""
        best: Rendering | None = None
        seen = 0
        after = ""
        while True:
            contacts = await page(after, page_size)
            for contact in contacts:
                seen += 1
                rendered = self.render(contact.number, contact)
                if best is None or rendered.key() > best.key():
                    best = rendered
            if len(contacts) < page_size:
                return best, seen
            after = contacts[-1].number
