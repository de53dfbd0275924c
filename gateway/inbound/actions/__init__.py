"""MO actions: a table from the action ``type`` of ``[[inbound.numbers.rules.actions]]`` to
the function that runs it.

Every action is an ``async def action(ctx: ActionContext) -> ActionResult`` in a small
module of its own (:mod:`.send`, :mod:`.consent`, :mod:`.tag`, :mod:`.survey`,
:mod:`.webhook`, :mod:`.python_handler`). :func:`run_action` looks the type up in
:data:`ACTIONS`, counts it, and turns an exception into a failed action (logged; the rule's
next actions still run).

A new action: its function in a module here, one entry in :data:`ACTIONS`, and its config
shape (the ``InboundActionType`` names and the keys it takes, in ``gateway.config.inbound``).
Loading refuses a config naming a type that is not there, with the choices listed
(``...actions[0].type: expected one of 'reply', ...``); tests/test_inbound_actions.py checks
that the table and the config name the same types.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from gateway.inbound.actions.consent import opt_in, opt_out
from gateway.inbound.actions.context import ActionContext, ActionFn, ActionResult, ActionServices
from gateway.inbound.actions.python_handler import python_handler
from gateway.inbound.actions.send import help_text, reply
from gateway.inbound.actions.survey import answer, survey_answer
from gateway.inbound.actions.tag import tag
from gateway.inbound.actions.webhook import webhook, webhook_payload
from gateway.inbound.replies import NOT_SENT_LOOP, NOT_SENT_NO_NUMBER, NOT_SENT_OPTED_OUT
from gateway.inbound.stats import InboundStats
from gateway.logs import log_event

__all__ = [
    "ACTIONS",
    "ActionContext",
    "ActionFn",
    "ActionResult",
    "ActionServices",
    "run_action",
    "survey_answer",
    "webhook_payload",
]

log = logging.getLogger("smsgw.inbound")

ACTIONS: Final[Mapping[str, ActionFn]] = MappingProxyType(
    {
        "reply": reply,
        "send": reply,  # a follow-up: the same, with its ``delay``
        "opt_out": opt_out,
        "opt_in": opt_in,
        "help": help_text,
        "tag": tag,
        "answer": answer,
        "webhook": webhook,
        "handler": python_handler,
    }
)

_DELIBERATE: Final = frozenset({NOT_SENT_LOOP, NOT_SENT_OPTED_OUT, NOT_SENT_NO_NUMBER})
"""Replies not sent on purpose: not action failures."""


async def run_action(ctx: ActionContext, stats: InboundStats) -> ActionResult:
    """Run one action; what it did with its ``type``. Counted in ``stats`` (a reply left
    unsent on purpose is no failure); an exception is a failed action, logged."""
    kind = ctx.action.type
    stats.actions[kind] += 1
    try:
        detail = await ACTIONS[kind](ctx)
    except Exception as exc:
        stats.failed[kind] += 1
        log_event(
            log,
            "inbound.action_failed",
            logging.WARNING,
            interaction=ctx.message.id,
            action=kind,
            error=repr(exc),
        )
        return {"type": kind, "ok": False, "error": repr(exc)[:500]}
    if detail.get("ok") is False and detail.get("not_sent") not in _DELIBERATE:
        stats.failed[kind] += 1
    return {"type": kind, **detail}
