"""``[inbound]``: mobile-originated messages (MO), their numbers, rules and actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.config.common import DAY, _name_check, _positive, _unique
from gateway.config.loader import all_of, check, in_range, max_length, non_empty, regex
from gateway.signing import secrets_problem

# [inbound] and its [[inbound.numbers]] are optional: without them every MO is still logged
# and the built-in opt-out / opt-in keywords still apply (silently: there is no number to
# take reply texts from). gateway.inbound describes what happens to an MO.

MAX_REASSEMBLY_TIMEOUT = 3600.0
"""SMSCs hand over the parts of one message within seconds; an hour bounds the memory an
unfinished message holds."""

MAX_FOLLOW_UP_DELAY = 7 * DAY
"""A follow-up send waits at most a week: the longest validity SMSCs commonly honour."""

MAX_HANDLER_TIMEOUT = 300.0
"""A Python handler that takes longer holds the sender's queue too long."""

MAX_CAMPAIGN_ID = 64
"""As the HTTP API's campaign_id."""

DEFAULT_OPT_OUT_REPLY = (
    "You are unsubscribed and will get no more messages from this number."
    " Reply START to subscribe again."
)
DEFAULT_OPT_OUT_ALL_REPLY = (
    "You are unsubscribed from all our messages. Reply START to subscribe again."
)
DEFAULT_OPT_IN_REPLY = "You are subscribed again. Reply STOP to unsubscribe."

InboundActionType = Literal[
    "reply", "send", "opt_out", "opt_in", "help", "tag", "answer", "webhook", "handler"
]

_ACTION_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # type: (required keys, allowed keys)
    "reply": (("text",), ("text",)),
    "send": (("text",), ("text", "delay")),
    "opt_out": ((), ("scope", "text")),
    "opt_in": ((), ("text",)),
    "help": ((), ()),
    "tag": (("tag",), ("tag",)),
    "answer": (("question",), ("question",)),
    "webhook": (("url",), ("url",)),
    "handler": (("handler",), ("handler",)),
}
_ACTION_DEFAULTS: dict[str, Any] = {
    "text": "",
    "delay": 0.0,
    "scope": "number",
    "tag": "",
    "question": "",
    "url": "",
    "handler": "",
}


def _one_word(value: str) -> str | None:
    from gateway.inbound.keywords import fold_word

    if not value or len(value.split()) != 1 or not fold_word(value):
        return f"must be one word, got {value!r}"
    return None


def _words(values: tuple[str, ...]) -> str | None:
    for value in values:
        problem = _one_word(value)
        if problem:
            return problem
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundActionConfig:
    """``[[inbound.numbers.rules.actions]]``: one step a rule takes, in order.

    - ``reply``: send ``text`` (a template: ``{first_name}`` and other contact fields) to the
      sender, from the number written to.
    - ``send``: a follow-up: ``text`` sent ``delay`` seconds later (scheduled).
    - ``opt_out``: stop messages to the sender from this number (``scope = "number"``) or
      from every sender (``"all"``), and confirm with ``text`` or the number's
      ``opt_out_reply``.
    - ``opt_in``: lift the sender's opt-out and confirm (``text`` or ``opt_in_reply``).
    - ``help``: reply with the number's ``help_text``.
    - ``tag``: add ``tag`` to the sender's contact (created when unknown).
    - ``answer``: record the MO as the answer to survey question ``question``.
    - ``webhook``: POST the MO as JSON to ``url``, through the callback outbox (retried).
    - ``handler``: await ``handler`` (``package.module:function``), imported at load.
    """

    type: InboundActionType
    text: str = ""
    delay: float = field(default=0.0, metadata=check(in_range(0, MAX_FOLLOW_UP_DELAY)))
    scope: Literal["number", "all"] = "number"
    tag: str = field(default="", metadata=check(max_length(64)))
    question: str = field(default="", metadata=check(max_length(64)))
    url: str = ""
    handler: str = ""

    def validate(self) -> list[str]:
        required, allowed = _ACTION_KEYS[self.type]
        errors: list[str] = []
        for key in required:
            if getattr(self, key) == _ACTION_DEFAULTS[key]:
                errors.append(f"{key}: required for a {self.type!r} action")
        for key, default in _ACTION_DEFAULTS.items():
            if key not in allowed and getattr(self, key) != default:
                errors.append(f"{key}: not used by a {self.type!r} action")
        if errors:
            return errors
        if self.type == "webhook":
            from gateway.core.validation import Invalid, callback_url

            try:
                callback_url(self.url)
            except Invalid as exc:
                errors.append(f"url: {exc}")
        if self.type == "handler":
            from gateway.inbound.handlers import HandlerError, resolve_handler

            try:
                resolve_handler(self.handler)
            except HandlerError as exc:
                errors.append(f"handler: {exc}")
        return errors


@dataclass(frozen=True, slots=True, kw_only=True)
class KeywordRuleConfig:
    """``[[inbound.numbers.rules]]``: MOs starting with ``keyword`` (or an alias), or
    matching one of ``patterns``, run ``actions`` in order.

    Matching ignores case and accents. ``patterns`` are regular expressions searched in the
    MO text folded to lower case without accents, run on RE2 (linear time whatever the
    pattern; no backreferences or lookaround: see gateway.inbound.keywords).
    ``campaign_id`` ties the rule to a campaign: an MO matching it is logged under that
    campaign (a campaign keyword wins over the correlation by last message sent)."""

    name: str = field(metadata=check(_name_check))
    """Logged with each MO the rule matched."""
    keyword: str = field(default="", metadata=check(max_length(32)))
    aliases: tuple[str, ...] = field(default=(), metadata=check(_words))
    patterns: tuple[str, ...] = ()
    campaign_id: str | None = field(
        default=None, metadata=check(all_of(non_empty, max_length(MAX_CAMPAIGN_ID)))
    )
    actions: tuple[InboundActionConfig, ...] = field(
        metadata=check(lambda v: None if v else "at least one action is required")
    )

    def validate(self) -> list[str]:
        from gateway.inbound.keywords import PatternError, compile_pattern

        errors: list[str] = []
        if self.keyword:
            problem = _one_word(self.keyword)
            if problem:
                errors.append(f"keyword: {problem}")
        elif not self.patterns:
            errors.append("keyword: a keyword or at least one pattern is required")
        if self.aliases and not self.keyword:
            errors.append("aliases: need a keyword (aliases are other words for it)")
        for n, pattern in enumerate(self.patterns):
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                errors.append(f"patterns[{n}]: {exc}")
        return errors


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundNumberConfig:
    """``[[inbound.numbers]]``: a short code or long number of ours that receives MOs."""

    number: str = field(
        metadata=check(
            regex(r"\+?[0-9]{3,15}", "a short code or a number in international format (+digits)")
        )
    )
    """As senders write it at the HTTP API (``from``): replies go from it, and opt-outs are
    kept against it."""
    aliases: tuple[str, ...] = field(
        default=(), metadata=check(lambda v: _words(v) or _all_digits(v))
    )
    """Other ways carriers write this number in deliver_sm (a national form, say)."""
    help_text: str = ""
    """Reply to HELP / INFO (and the ``help`` action); "" leaves those words to the rules."""
    courtesy_reply: str = ""
    """Reply to an MO that matches no rule, at most once per ``courtesy_interval`` per
    sender; "" sends none."""
    opt_out_reply: str = DEFAULT_OPT_OUT_REPLY
    """Confirmation of STOP; sent although the sender is now opted out (see gateway.inbound).
    "" sends none."""
    opt_out_all_reply: str = DEFAULT_OPT_OUT_ALL_REPLY
    """Confirmation of STOPALL / STOP ALL."""
    opt_in_reply: str = DEFAULT_OPT_IN_REPLY
    """Confirmation of START (and of YES from an opted-out sender)."""
    opt_out_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    """Opt-out words of this number beyond STOP, UNSUBSCRIBE, CANCEL, END, QUIT."""
    opt_in_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    help_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    rules: tuple[KeywordRuleConfig, ...] = ()

    def validate(self) -> list[str]:
        return _unique(self.rules, "name", "rules")


def _all_digits(values: tuple[str, ...]) -> str | None:
    for value in values:
        if not value.lstrip("+").isdigit():
            return f"must be digits (a leading + allowed), got {value!r}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundConfig:
    """``[inbound]``: mobile-originated messages. The section may be left out; every key has
    the default documented here."""

    reassembly_timeout: float = field(
        default=60.0, metadata=check(in_range(1, MAX_REASSEMBLY_TIMEOUT))
    )
    """Seconds after the first part of a long MO at which the parts received so far are
    taken as the message (logged as incomplete)."""
    reply_window: float = field(default=10 * DAY, metadata=check(in_range(0, 366 * DAY)))
    """Seconds after an MT during which an MO from its recipient to its sender belongs to
    the MT's campaign (10 days)."""
    courtesy_interval: float = field(default=DAY, metadata=check(in_range(60, 366 * DAY)))
    """At most one courtesy reply per sender per number in this many seconds (24 h), so
    two automated systems cannot keep answering each other."""
    loop_repeats: int = field(default=3, metadata=check(in_range(2, 1000)))
    """A sender that sent the same text this many times within ``loop_window`` looks like
    a machine: it gets no automatic reply (its actions still run)."""
    loop_window: float = field(default=3600.0, metadata=check(in_range(60, 7 * DAY)))
    handler_timeout: float = field(
        default=10.0, metadata=check(all_of(_positive, in_range(None, MAX_HANDLER_TIMEOUT)))
    )
    """Seconds a Python handler may take; it is cancelled after that."""
    max_attempts: int = field(default=3, metadata=check(in_range(1, 100)))
    """Handlings of one MO that may fail or not finish (a crash or hang during it counts)
    before it is quarantined: set aside with its reason, never handled again unless
    requeued (``POST /v1/interactions/{id}/retry``)."""
    opt_out_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    """Opt-out words for every number, e.g. ["ARRET", "STOPP", "BAJA"]."""
    opt_in_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    """Opt-in words for every number beyond START, e.g. ["ARRETER"]."""
    help_keywords: tuple[str, ...] = field(default=(), metadata=check(_words))
    """HELP words for every number beyond HELP and INFO, e.g. ["AIDE"]."""
    numbers: tuple[InboundNumberConfig, ...] = ()
    webhook_signing_secrets: tuple[str, ...] = field(
        default=(), repr=False, metadata=check(secrets_problem)
    )
    """Secrets that sign every ``webhook`` action's POST (``X-Smsgw-Signature``,
    gateway.signing), as ``[[http.tokens]] signing_secrets`` do for status callbacks:
    the first signs, a second is the one being retired. Empty: unsigned."""

    def validate(self) -> list[str]:
        from gateway.inbound.keywords import (
            HELP_WORDS,
            OPT_IN_WORDS,
            OPT_OUT_ALL_WORDS,
            OPT_OUT_WORDS,
            fold_word,
        )

        errors: list[str] = []
        seen: dict[str, str] = {}
        for i, number in enumerate(self.numbers):
            for n, form in enumerate((number.number, *number.aliases)):
                digits = form.lstrip("+")
                where = f"numbers[{i}].number" if n == 0 else f"numbers[{i}].aliases[{n - 1}]"
                if digits in seen:
                    errors.append(f"{where}: {form!r} is already {seen[digits]}")
                seen.setdefault(digits, where)
            system = {
                fold_word(w)
                for w in (
                    *OPT_OUT_WORDS,
                    *OPT_OUT_ALL_WORDS,
                    *OPT_IN_WORDS,
                    *self.opt_out_keywords,
                    *self.opt_in_keywords,
                    *number.opt_out_keywords,
                    *number.opt_in_keywords,
                )
            }
            if number.help_text:
                system |= {
                    fold_word(w) for w in (*HELP_WORDS, *self.help_keywords, *number.help_keywords)
                }
            taken: dict[tuple[str, str | None], str] = {}
            for r, rule in enumerate(number.rules):
                words = [rule.keyword, *rule.aliases] if rule.keyword else []
                for w, word in enumerate(words):
                    where = f"numbers[{i}].rules[{r}]." + (
                        "keyword" if w == 0 else f"aliases[{w - 1}]"
                    )
                    folded = fold_word(word)
                    if folded in system:
                        errors.append(
                            f"{where}: {word!r} is a built-in opt-out, opt-in or HELP word"
                            " of this number; a rule cannot take it"
                        )
                    scope = (folded, rule.campaign_id)
                    if scope in taken:
                        errors.append(f"{where}: {word!r} is already taken by {taken[scope]}")
                    taken.setdefault(scope, f"rule {rule.name!r}")
        return errors
