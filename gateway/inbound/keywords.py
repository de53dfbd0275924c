r"""Keywords in MO text: folding, the first word, and which rule an MO matches. Pure code.

Matching is on the *folded* text: Unicode NFKD, combining marks dropped, case folded, so
"Arrêt", "ARRET" and "arrêt" are one word, and full-width letters read as ASCII ones. A
rule's keyword and aliases are compared with the first word of the MO (leading and trailing
punctuation taken off: "STOP." and "*yes*" count); its regular expressions are searched in
the whole folded text (write them in lower case, without accents; anchor with ``^``).

Patterns run on RE2 (:func:`compile_pattern`), whose matching time grows linearly with the
text whatever the pattern: a rule such as ``^(a+)+$``, which sends Python's backtracking
``re`` into exponential time on forty ``a`` and a ``!``, costs microseconds. RE2 has no
backreferences and no lookaround, and writes end of text ``\z`` (Python's ``\Z``); a
pattern it cannot take is refused when the rule is configured (file or API), with RE2's
reason. ``\w``, ``\d``, ``\b`` and ``\s`` are ASCII classes in RE2: the folded text of
Latin-script languages is ASCII already; ``\pL`` matches a letter of any script.

Order (see :func:`match`): the gateway's own rules come first and win outright (opt-out,
HELP, opt-in: a subscriber can always stop, whatever a campaign's keywords say); then the
configured rules, where a rule of the campaign the MO is correlated with beats a
number-wide rule, which beats another campaign's rule.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast

import re2

OPT_OUT_WORDS: Final = ("STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT")
"""Opt-out from the number written to (CTIA's standard set)."""
OPT_OUT_ALL_WORDS: Final = ("STOPALL",)
"""Opt-out from every sender; "STOP ALL" (two words) too, see OPT_OUT_ALL_PATTERN."""
OPT_OUT_ALL_PATTERN: Final = r"^stop\s+all\b"
OPT_IN_WORDS: Final = ("START", "UNSTOP")
"""Opt back in, always."""
RESUBSCRIBE_WORDS: Final = ("YES",)
"""Opt back in, but only from a subscriber who is opted out: from anyone else YES is an
ordinary word (a survey answer, a campaign keyword)."""
HELP_WORDS: Final = ("HELP", "INFO")

YES_WORDS: Final = frozenset({"yes", "y", "yeah", "yep", "ok", "oui", "si", "ja", "sim", "da"})
NO_WORDS: Final = frozenset({"no", "n", "nope", "non", "nein", "nao", "nee", "niet"})

_EDGES: Final = re.compile(r"^[\W_]+|[\W_]+$")

MAX_PATTERN_CHARS: Final = 1000
"""Longest keyword pattern accepted: a rule on SMS text needs a fraction of that."""

PATTERN_MAX_MEM: Final = 8 << 20
"""RE2's memory budget for one compiled pattern (its default, 8 MiB): a pattern whose
automaton would need more (``(a{1000}){1000}``) is refused at configuration time."""


class PatternError(ValueError):
    """A keyword pattern the linear-time engine does not take; the message says why."""


class KeywordPattern(Protocol):
    """A compiled keyword pattern (an RE2 regular expression)."""

    def search(self, text: str) -> object | None: ...


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> KeywordPattern:
    """``pattern`` compiled by RE2 (linear-time matching); PatternError saying why not."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"longer than {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.log_errors = False  # the reason goes into the error, not to stderr
    options.max_mem = PATTERN_MAX_MEM
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "refused"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        hint = ""
        if "\\Z" in pattern:
            hint = " (write end of text as \\z)"
        elif "(?=" in pattern or "(?!" in pattern or "(?<" in pattern:
            hint = " (lookaround is not supported)"
        raise PatternError(
            f"not accepted by the linear-time regex engine (RE2: no backreferences or"
            f" lookaround): {reason}{hint}"
        ) from None
    return cast(KeywordPattern, compiled)


def fold(text: str) -> str:
    """``text`` case- and accent-insensitive: NFKD, combining marks dropped, casefolded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def first_word(folded: str) -> str:
    """The first word of folded text, punctuation around it taken off; "" when none."""
    for token in folded.split():
        word = _EDGES.sub("", token)
        if word:
            return word
    return ""


def fold_word(word: str) -> str:
    """A configured keyword or alias as :func:`first_word` would read it."""
    return first_word(fold(word))


@dataclass(frozen=True, slots=True)
class KeywordRule:
    """What an MO must look like for a rule to apply."""

    name: str
    keyword: str | None = None  # the word logged (as configured); None: the word sent
    words: frozenset[str] = frozenset()  # folded keyword and aliases
    patterns: tuple[KeywordPattern, ...] = ()
    campaign_id: str | None = None
    system: bool = False  # the gateway's own: tried first, wins outright
    only_if_opted_out: bool = False

    @classmethod
    def build(
        cls,
        name: str,
        keyword: str | None,
        aliases: Iterable[str] = (),
        patterns: Iterable[str] = (),
        *,
        campaign_id: str | None = None,
        system: bool = False,
        only_if_opted_out: bool = False,
    ) -> KeywordRule:
        words = {fold_word(w) for w in ((keyword,) if keyword else ()) + tuple(aliases)}
        words.discard("")
        return cls(
            name=name,
            keyword=keyword or None,
            words=frozenset(words),
            patterns=tuple(compile_pattern(p) for p in patterns),
            campaign_id=campaign_id,
            system=system,
            only_if_opted_out=only_if_opted_out,
        )

    def keyword_for(self, word: str, folded: str) -> str | None:
        """The keyword to log when this rule matches (first word, folded text), else None."""
        if word and word in self.words:
            return self.keyword or word.upper()
        for pattern in self.patterns:
            if pattern.search(folded):
                return self.keyword or (word.upper() if word else None) or ""
        return None


@dataclass(frozen=True, slots=True)
class Match:
    rule: KeywordRule
    keyword: str  # "" when a pattern matched text with no word


@dataclass(slots=True)
class Reading:
    """An MO's text as matching sees it."""

    folded: str
    word: str


def read(text: str) -> Reading:
    folded = fold(text).strip()
    return Reading(folded, first_word(folded))


def match(
    rules: Sequence[KeywordRule],
    text: str,
    *,
    opted_out: bool = False,
    campaign_id: str | None = None,
) -> Match | None:
    """The rule ``text`` matches, or None.

    ``opted_out``: whether the sender is opted out of this number (rules marked
    ``only_if_opted_out`` apply only then). ``campaign_id``: the campaign the MO is
    correlated with, whose rules win among configured rules that match.
    """
    reading = read(text)
    found: list[Match] = []
    for rule in rules:
        if rule.only_if_opted_out and not opted_out:
            continue
        keyword = rule.keyword_for(reading.word, reading.folded)
        if keyword is None:
            continue
        if rule.system:
            return Match(rule, keyword)
        found.append(Match(rule, keyword))
    if not found:
        return None
    if campaign_id is not None:
        for m in found:
            if m.rule.campaign_id == campaign_id:
                return m
    for m in found:
        if m.rule.campaign_id is None:
            return m
    return found[0]


def parse_answer(text: str) -> tuple[str, str]:
    """A survey answer: (value, kind). A number ("3"), a letter ("B"), YES/NO in a few
    languages ("YES", "NO"), else the first word as sent, folded and upper-cased."""
    word = first_word(fold(text).strip())
    if word.isdecimal():
        return str(int(word)), "number"
    if word in YES_WORDS:
        return "YES", "yes_no"
    if word in NO_WORDS:
        return "NO", "yes_no"
    if len(word) == 1 and word.isalpha():
        return word.upper(), "letter"
    return word.upper(), "text"
