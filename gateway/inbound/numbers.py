"""Our inbound numbers (short codes, long numbers): from the TOML file and from the API.

:class:`NumberBook` finds the number an MO was written to (by its digits, or an alias a
carrier uses) and holds, per number, the rules MOs are matched against: the gateway's own
(opt-out, opt-in, HELP, YES from an opted-out subscriber) first, then the configured ones.

Numbers of ``[[inbound.numbers]]`` are read-only over the API (``"source": "config"``);
numbers added with ``PUT /v1/numbers/{number}`` are kept in the store and take effect at
once, for MOs received from then on.

The JSON form of a number is the TOML form with ``rules`` called ``keywords`` (the agreed
API shape) and an unset ``courtesy_reply`` as null.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from gateway.config import (
    InboundActionConfig,
    InboundConfig,
    InboundNumberConfig,
    KeywordRuleConfig,
)
from gateway.config.loader import ConfigError, load_dataclass
from gateway.inbound.keywords import (
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_OUT_ALL_PATTERN,
    OPT_OUT_ALL_WORDS,
    OPT_OUT_WORDS,
    RESUBSCRIBE_WORDS,
    KeywordRule,
)
from gateway.logs import log_event
from gateway.store.ports import InboundNumbers

_log = logging.getLogger("smsgw.inbound")

Source = Literal["config", "api"]

SYSTEM_OPT_OUT_ALL: Final = "opt_out_all"
SYSTEM_OPT_OUT: Final = "opt_out"
SYSTEM_OPT_IN: Final = "opt_in"
SYSTEM_HELP: Final = "help"
SYSTEM_RESUBSCRIBE: Final = "resubscribe"

_SYSTEM_ACTIONS: Final[dict[str, tuple[InboundActionConfig, ...]]] = {
    SYSTEM_OPT_OUT_ALL: (InboundActionConfig(type="opt_out", scope="all"),),
    SYSTEM_OPT_OUT: (InboundActionConfig(type="opt_out"),),
    SYSTEM_OPT_IN: (InboundActionConfig(type="opt_in"),),
    SYSTEM_HELP: (InboundActionConfig(type="help"),),
    SYSTEM_RESUBSCRIBE: (InboundActionConfig(type="opt_in"),),
}


def digits(address: str) -> str:
    return address.strip().lstrip("+")


def system_rules(inbound: InboundConfig, number: InboundNumberConfig) -> list[KeywordRule]:
    """The gateway's own rules on ``number``, in the order they are tried."""
    rules = [
        KeywordRule.build(
            SYSTEM_OPT_OUT_ALL, None, OPT_OUT_ALL_WORDS, (OPT_OUT_ALL_PATTERN,), system=True
        ),
        KeywordRule.build(
            SYSTEM_OPT_OUT,
            None,
            (*OPT_OUT_WORDS, *inbound.opt_out_keywords, *number.opt_out_keywords),
            system=True,
        ),
        KeywordRule.build(
            SYSTEM_OPT_IN,
            None,
            (*OPT_IN_WORDS, *inbound.opt_in_keywords, *number.opt_in_keywords),
            system=True,
        ),
    ]
    if number.help_text:
        rules.append(
            KeywordRule.build(
                SYSTEM_HELP,
                None,
                (*HELP_WORDS, *inbound.help_keywords, *number.help_keywords),
                system=True,
            )
        )
    rules.append(
        KeywordRule.build(
            SYSTEM_RESUBSCRIBE, None, RESUBSCRIBE_WORDS, system=True, only_if_opted_out=True
        )
    )
    return rules


def rule_of(config: KeywordRuleConfig, campaign_id: str | None = None) -> KeywordRule:
    return KeywordRule.build(
        config.name,
        config.keyword or None,
        config.aliases,
        config.patterns,
        campaign_id=campaign_id or config.campaign_id,
    )


@dataclass(frozen=True, slots=True)
class InboundNumber:
    """One of our numbers, ready to route MOs."""

    config: InboundNumberConfig
    source: Source
    sender: str
    """The number as MTs give it in ``from`` (normalised): replies go from it, opt-outs
    are kept against it."""
    rules: tuple[KeywordRule, ...]
    actions: dict[str, tuple[InboundActionConfig, ...]]
    """Actions by rule name (the system rules' included)."""

    @property
    def number(self) -> str:
        return self.config.number


def rule_json(rule: KeywordRuleConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"name": rule.name}
    if rule.keyword:
        out["keyword"] = rule.keyword
    if rule.aliases:
        out["aliases"] = list(rule.aliases)
    if rule.patterns:
        out["patterns"] = list(rule.patterns)
    if rule.campaign_id is not None:
        out["campaign_id"] = rule.campaign_id
    actions = []
    for action in rule.actions:
        item: dict[str, Any] = {"type": action.type}
        defaults = InboundActionConfig(type=action.type)
        for f in dataclasses.fields(action):
            value = getattr(action, f.name)
            if f.name != "type" and value != getattr(defaults, f.name):
                item[f.name] = value
        actions.append(item)
    out["actions"] = actions
    return out


def number_json(config: InboundNumberConfig) -> dict[str, Any]:
    """The JSON (API) form of a number's settings, without ``number`` and ``source``."""
    return {
        "aliases": list(config.aliases),
        "keywords": [rule_json(r) for r in config.rules],
        "courtesy_reply": config.courtesy_reply or None,
        "help_text": config.help_text,
        "opt_out_reply": config.opt_out_reply,
        "opt_out_all_reply": config.opt_out_all_reply,
        "opt_in_reply": config.opt_in_reply,
        "opt_out_keywords": list(config.opt_out_keywords),
        "opt_in_keywords": list(config.opt_in_keywords),
        "help_keywords": list(config.help_keywords),
    }


def parse_number(number: str, body: Any, inbound: InboundConfig) -> InboundNumberConfig:
    """A number's settings from its JSON form; ConfigError listing every problem."""
    if not isinstance(body, dict):
        raise ConfigError(["body: must be a JSON object"])
    data = dict(body)
    data.pop("number", None)
    data.pop("source", None)
    if "keywords" in data:
        data["rules"] = data.pop("keywords")
    if data.get("courtesy_reply") is None:
        data.pop("courtesy_reply", None)
    data["number"] = number
    try:
        config = load_dataclass(InboundNumberConfig, data)
    except ConfigError as exc:
        raise ConfigError(_api_path(e) for e in exc.errors) from None
    errors = dataclasses.replace(inbound, numbers=(config,)).validate()
    if errors:
        raise ConfigError(_api_path(e.removeprefix("numbers[0].")) for e in errors)
    return config


def _api_path(error: str) -> str:
    """A config error's key path as the API names it (``rules`` are ``keywords``)."""
    return "keywords" + error.removeprefix("rules") if error.startswith("rules") else error


class NumberBook:
    """Every inbound number, found by the address an MO was written to."""

    def __init__(
        self, inbound: InboundConfig, normalise_sender: Callable[[str], str] = lambda s: s
    ) -> None:
        self.inbound = inbound
        self._normalise = normalise_sender
        self._numbers: dict[str, InboundNumber] = {}  # by number as configured
        self._by_digits: dict[str, InboundNumber] = {}
        self._loaded = False
        for config in inbound.numbers:
            self._add(config, "config")

    def _entry(self, config: InboundNumberConfig, source: Source) -> InboundNumber:
        rules = system_rules(self.inbound, config) + [rule_of(r) for r in config.rules]
        actions = dict(_SYSTEM_ACTIONS)
        actions.update({r.name: r.actions for r in config.rules})
        try:
            sender = self._normalise(config.number)
        except Exception:  # a number intake would refuse: replies will say why
            sender = config.number
        return InboundNumber(config, source, sender, tuple(rules), actions)

    def _add(self, config: InboundNumberConfig, source: Source) -> InboundNumber:
        entry = self._entry(config, source)
        self._numbers[config.number] = entry
        for form in (config.number, *config.aliases):
            self._by_digits[digits(form)] = entry
        return entry

    def _remove(self, number: str) -> None:
        entry = self._numbers.pop(number, None)
        if entry is None:
            return
        for form in (entry.config.number, *entry.config.aliases):
            if self._by_digits.get(digits(form)) is entry:
                del self._by_digits[digits(form)]

    async def load(self, store: InboundNumbers) -> None:
        """Add the numbers kept in the store (once; later calls do nothing)."""
        if self._loaded:
            return
        for number, data in await store.inbound_numbers():
            if self.find(number) is not None:
                continue  # the TOML file took it meanwhile: the file wins
            try:
                config = parse_number(number, data, self.inbound)
            except ConfigError as exc:
                # Kept by an older version with other rules (a pattern RE2 refuses, say):
                # not routed until fixed over the API, and said so at every start.
                log_event(
                    _log,
                    "inbound.number_refused",
                    logging.ERROR,
                    number=number,
                    errors="; ".join(exc.errors),
                )
                continue
            self._add(config, "api")
        self._loaded = True

    def reload(self, inbound: InboundConfig) -> None:
        """SIGHUP: the file's numbers and rules become ``inbound``'s; numbers added over the
        API stay (rebuilt, as the built-in keywords may have changed) unless the file now
        has one of their addresses: the file wins, as at start."""
        api = [e.config for e in self._numbers.values() if e.source == "api"]
        self.inbound = inbound
        self._numbers.clear()
        self._by_digits.clear()
        for config in inbound.numbers:
            self._add(config, "config")
        for config in api:
            if all(self.find(form) is None for form in (config.number, *config.aliases)):
                self._add(config, "api")

    def find(self, address: str) -> InboundNumber | None:
        return self._by_digits.get(digits(address))

    def get(self, number: str) -> InboundNumber | None:
        entry = self.find(number)
        return entry

    def all(self) -> Iterable[InboundNumber]:
        return sorted(self._numbers.values(), key=lambda e: e.number)

    async def put(self, store: InboundNumbers, config: InboundNumberConfig) -> InboundNumber:
        """Create or replace an API number (ValueError for one of the TOML file)."""
        for form in (config.number, *config.aliases):
            found = self.find(form)
            if found is not None and (found.source == "config" or found.number != config.number):
                raise ValueError(f"{form} is already number {found.number} ({found.source})")
        await store.put_inbound_number(config.number, number_json(config), time.time())
        self._remove(config.number)
        return self._add(config, "api")

    async def delete(self, store: InboundNumbers, number: str) -> bool:
        entry = self.find(number)
        if entry is None or entry.source != "api":
            return False
        await store.delete_inbound_number(entry.number)
        self._remove(entry.number)
        return True


def builtin_rules(
    inbound: InboundConfig,
) -> tuple[tuple[KeywordRule, ...], dict[str, tuple[InboundActionConfig, ...]]]:
    """The built-in rules and their actions for an MO to a number that is not configured:
    opt-out (STOP ..., STOPALL), opt-in (START ...) and YES from an opted-out sender apply to
    every MO, as carriers' codes of conduct require (HELP needs a ``help_text``: none)."""
    rules = system_rules(inbound, InboundNumberConfig(number="0000"))
    return tuple(rules), dict(_SYSTEM_ACTIONS)
