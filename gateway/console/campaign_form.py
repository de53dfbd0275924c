"""The campaign form: its fields to the body of ``POST /v1/campaigns`` (a new draft) or
``PUT /v1/campaigns/{id}`` (a draft edited), a campaign back to the form's fields, and the
API's field errors (``details[].path``) to the field each is shown beside.

The form has exactly the fields the API takes (gateway.campaigns.service.FIELDS): name,
from, text, lists, tags, two_way, keywords (rows: a rule's name, keyword, aliases, patterns
and up to its actions, each a type, a text and the one value its type needs), courtesy_reply,
reply_window_days, start_at (UTC), send_window, tps, digest and track_links. Nothing is
checked here beyond turning text into numbers and lists: the API checks, and says what is
wrong with which field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from multidict import MultiDictProxy

EXTRA_RULE_ROWS: Final = 2
"""Empty keyword rows under a campaign's rules, to add some."""
MAX_RULE_ROWS: Final = 100
"""gateway.campaigns.service.MAX_KEYWORD_RULES: more rows than the API takes are not read."""
MIN_ACTIONS: Final = 2
"""Action slots shown per keyword row (more when a rule has more)."""
MAX_ACTIONS: Final = 10
ACTION_TYPES: Final = (
    "reply",
    "send",
    "opt_out",
    "opt_in",
    "help",
    "tag",
    "answer",
    "webhook",
    "handler",
)
"""gateway.config.InboundActionType, in the order the form offers them."""
ACTION_PARAM: Final[Mapping[str, str]] = {
    "send": "delay",
    "opt_out": "scope",
    "tag": "tag",
    "answer": "question",
    "webhook": "url",
    "handler": "handler",
}
"""The one value beyond ``text`` an action type takes (InboundActionConfig)."""
_INDEXED: Final = re.compile(r"keywords\[(\d+)\](.*)")


def _number(raw: str) -> int | float | str:
    """A number typed in a field; anything else is sent as typed, for the API to refuse."""
    text = raw.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _words(raw: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", raw.strip()) if w]


def _lines(raw: str) -> list[str]:
    return [line.strip() for line in raw.splitlines() if line.strip()]


def _rule_rows(form: MultiDictProxy[Any]) -> list[dict[str, Any]]:
    raw = str(form.get("rule_rows", "0"))
    rows = min(int(raw), MAX_RULE_ROWS + EXTRA_RULE_ROWS) if raw.isdecimal() else 0
    out = []
    for i in range(rows):

        def get(key: str, i: int = i) -> str:
            return str(form.get(f"rule-{i}-{key}", ""))

        actions = []
        for j in range(MAX_ACTIONS):
            if f"rule-{i}-action-{j}-type" not in form:
                break
            actions.append(
                {
                    "type": get(f"action-{j}-type"),
                    "text": get(f"action-{j}-text"),
                    "param": get(f"action-{j}-param"),
                }
            )
        out.append(
            {
                "name": get("name"),
                "keyword": get("keyword"),
                "aliases": get("aliases"),
                "patterns": get("patterns"),
                "actions": actions,
            }
        )
    return out


def _rule_json(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """A form row as the API's rule; None for an empty row. A rule without a name is named
    after its keyword."""
    name, keyword = row["name"].strip(), row["keyword"].strip()
    patterns = _lines(row["patterns"])
    actions = []
    for action in row["actions"]:
        kind = action["type"]
        if not kind:
            continue
        made: dict[str, Any] = {"type": kind}
        if action["text"]:
            made["text"] = action["text"]
        param = ACTION_PARAM.get(kind)
        if param is not None and action["param"].strip():
            value = action["param"].strip()
            made[param] = _number(value) if param == "delay" else value
        actions.append(made)
    if not (name or keyword or patterns or actions):
        return None
    rule: dict[str, Any] = {"name": name or keyword.lower()}
    if keyword:
        rule["keyword"] = keyword
    aliases = _words(row["aliases"])
    if aliases:
        rule["aliases"] = aliases
    if patterns:
        rule["patterns"] = patterns
    rule["actions"] = actions
    return rule


def request_body(form: MultiDictProxy[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The API body of the form's fields, and the fields as typed (shown again on error)."""

    def text(key: str) -> str:
        return str(form.get(key, ""))

    values: dict[str, Any] = {
        key: text(key)
        for key in (
            "name",
            "from",
            "text",
            "tags",
            "reply_window_days",
            "courtesy_reply",
            "start_at",
            "window_from",
            "window_to",
            "window_zone",
            "tps",
            "digest_to",
            "digest_days",
        )
    }
    values["lists"] = [str(v) for v in form.getall("lists", [])]
    values["two_way"] = form.get("two_way") == "on"
    values["track_links"] = form.get("track_links") == "on"
    values["rules"] = _rule_rows(form)
    body: dict[str, Any] = {
        "name": values["name"].strip(),
        "from": values["from"].strip(),
        "text": values["text"],
        "lists": [int(v) if v.isdecimal() and len(v) < 19 else v for v in values["lists"]],
        "two_way": values["two_way"],
        "track_links": values["track_links"],
    }
    tags = _words(values["tags"])
    if tags:
        body["tags"] = tags
    rules = [r for r in (_rule_json(row) for row in values["rules"]) if r is not None]
    if rules:
        body["keywords"] = rules
    if values["courtesy_reply"].strip():
        body["courtesy_reply"] = values["courtesy_reply"]
    for key in ("reply_window_days", "tps"):
        if values[key].strip():
            body[key] = _number(values[key])
    start = values["start_at"].strip()
    if start:
        # A datetime-local field: the time as typed, taken as UTC (the label says so).
        body["start_at"] = (
            f"{start}:00Z" if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", start) else start
        )
    if values["window_from"].strip() or values["window_to"].strip():
        window = {"from": values["window_from"].strip(), "to": values["window_to"].strip()}
        if values["window_zone"].strip():
            window["time_zone"] = values["window_zone"].strip()
        body["send_window"] = window
    addresses = _words(values["digest_to"])
    if addresses:
        digest: dict[str, Any] = {"to": addresses}
        if values["digest_days"].strip():
            digest["days"] = _number(values["digest_days"])
        body["digest"] = digest
    return body, values


def _rule_row(rule: Mapping[str, Any]) -> dict[str, Any]:
    actions = []
    for action in rule.get("actions", []):
        kind = str(action.get("type", ""))
        param = ACTION_PARAM.get(kind)
        value = action.get(param, "") if param else ""
        actions.append({"type": kind, "text": str(action.get("text", "")), "param": str(value)})
    return {
        "name": str(rule.get("name", "")),
        "keyword": str(rule.get("keyword", "")),
        "aliases": " ".join(rule.get("aliases", [])),
        "patterns": "\n".join(rule.get("patterns", [])),
        "actions": actions,
    }


def form_values(campaign: Mapping[str, Any]) -> dict[str, Any]:
    """A campaign (GET /v1/campaigns/{id}) as the form's fields, to edit it."""
    window = campaign.get("send_window") or {}
    digest = campaign.get("digest") or {}
    start = campaign.get("start_at") or ""
    return {
        "name": campaign.get("name", ""),
        "from": campaign.get("from", ""),
        "text": campaign.get("text", ""),
        "lists": [str(i) for i in campaign.get("lists", [])],
        "tags": ", ".join(campaign.get("tags", [])),
        "two_way": bool(campaign.get("two_way")),
        "track_links": bool(campaign.get("track_links")),
        "reply_window_days": _plain(campaign.get("reply_window_days")),
        "courtesy_reply": campaign.get("courtesy_reply") or "",
        "start_at": start[:16] if isinstance(start, str) else "",
        "window_from": window.get("from", ""),
        "window_to": window.get("to", ""),
        "window_zone": window.get("time_zone", ""),
        "tps": _plain(campaign.get("tps")),
        "digest_to": ", ".join(digest.get("to", [])),
        "digest_days": _plain(digest.get("days")),
        "rules": [_rule_row(r) for r in campaign.get("keywords", [])],
    }


def _plain(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rule_rows(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The keyword rows to show: the campaign's (or those typed), then empty ones; each
    with at least MIN_ACTIONS action slots."""
    typed: Sequence[dict[str, Any]] = values.get("rules", [])
    kept = [r for r in typed if _rule_json(r) is not None]
    blank = {"name": "", "keyword": "", "aliases": "", "patterns": "", "actions": []}
    rows = [dict(r) for r in kept] + [dict(blank) for _ in range(EXTRA_RULE_ROWS)]
    for row in rows:
        actions = list(row["actions"])[:MAX_ACTIONS]
        while len(actions) < MIN_ACTIONS:
            actions.append({"type": "", "text": "", "param": ""})
        row["actions"] = actions
    return rows[: MAX_RULE_ROWS + EXTRA_RULE_ROWS]


def field_of(path: str) -> str:
    """The form field an API error path belongs to (``keywords[2].actions[0].text`` is
    row 2 of the keywords; ``digest.to[1]`` the digest addresses)."""
    indexed = _INDEXED.fullmatch(path)
    if indexed:
        return f"rule-{indexed.group(1)}"
    head = re.split(r"[.\[]", path, maxsplit=1)[0]
    if path.startswith("digest.days"):
        return "digest_days"
    if head == "digest":
        return "digest_to"
    return {"from": "from"}.get(head, head)


def field_errors(details: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The API's field errors, by the form field each is shown beside."""
    out: dict[str, list[str]] = {}
    for detail in details:
        where = str(detail.get("path", ""))
        message = str(detail.get("message", ""))
        field = field_of(where)
        indexed = _INDEXED.fullmatch(where)
        shown = f"{indexed.group(2).lstrip('.') or 'rule'}: {message}" if indexed else message
        out.setdefault(field, []).append(shown)
    return out


NUMBER_TEXTS: Final = (
    "help_text",
    "courtesy_reply",
    "opt_out_reply",
    "opt_out_all_reply",
    "opt_in_reply",
)
"""An inbound number's reply texts (gateway.config.InboundNumberConfig)."""
NUMBER_WORDS: Final = ("aliases", "opt_out_keywords", "opt_in_keywords", "help_keywords")
"""An inbound number's word lists (typed separated by commas or spaces)."""


def number_body(form: MultiDictProxy[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The body of ``PUT /v1/numbers/{number}`` from the number form, and what was typed.
    Every field is sent: the PUT replaces the number's settings whole."""
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in NUMBER_TEXTS + NUMBER_WORDS}
    values["rules"] = _rule_rows(form)
    body: dict[str, Any] = {k: values[k] for k in NUMBER_TEXTS}
    body["courtesy_reply"] = values["courtesy_reply"] or None
    body.update({k: _words(values[k]) for k in NUMBER_WORDS})
    body["keywords"] = [r for r in (_rule_json(row) for row in values["rules"]) if r is not None]
    return body, values


def number_values(number: Mapping[str, Any]) -> dict[str, Any]:
    """A number (GET /v1/numbers/{number}) as the form's fields."""
    values: dict[str, Any] = {k: str(number.get(k) or "") for k in NUMBER_TEXTS}
    values.update({k: ", ".join(number.get(k, [])) for k in NUMBER_WORDS})
    values["rules"] = [_rule_row(r) for r in number.get("keywords", [])]
    return values
