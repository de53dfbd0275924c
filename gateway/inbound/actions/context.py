"""What every MO action is given and returns (see :mod:`gateway.inbound.actions`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.config import InboundActionConfig, InboundConfig, InboundNumberConfig
from gateway.inbound.campaign_directory import CampaignInfo
from gateway.inbound.handlers import Handler, HandlerRunner
from gateway.inbound.keywords import Match
from gateway.inbound.message import InboundMessage
from gateway.inbound.replies import Outbox, Replies
from gateway.store.base import Contact
from gateway.store.ports import InboundPorts

ActionResult = dict[str, Any]
"""What an action did, logged on the interaction (``{"ok": ..., ...}``; the runner adds
``type``). ``"ok": False`` with a ``not_sent`` reason is a reply left unsent."""


@dataclass(slots=True)
class ActionServices:
    """What actions may use beyond the MO itself: the gateway's parts, shared by all."""

    store: InboundPorts
    outbox: Outbox
    """Its ``outbound`` (the dispatcher) learns of opt-outs at once."""
    clock: Callable[[], float]
    notify_callbacks: Callable[[], None] | None = None
    """Wakes the callback sender when a webhook is queued."""
    handler_runner: HandlerRunner = field(default_factory=HandlerRunner)
    handlers: dict[str, Handler] = field(default_factory=dict)
    """Python handlers resolved so far, by ``package.module:function``."""


@dataclass(slots=True)
class ActionContext:
    """One action of a matched rule, about to run for one MO.

    Not ``frozen``: one is built for every action of every MO, and a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__`` (about 1.5 us for these ten
    fields, 4 times a plain one's, ~9,000 instructions per MO); actions only read it."""

    action: InboundActionConfig
    message: InboundMessage
    found: Match
    number: InboundNumberConfig | None
    """The number written to, when it is configured (its reply texts)."""
    contact: Contact | None
    campaign: CampaignInfo | None
    replies: Replies
    fields: dict[str, Any]
    """The contact's fields for templates (``{first_name}``)."""
    inbound: InboundConfig
    services: ActionServices


ActionFn = Callable[[ActionContext], Awaitable[ActionResult]]
"""An action: runs one step of a rule, returns what it did; raising fails the action."""
