"""MO actions as a table of handlers (gateway.inbound.actions): the table and the config name
the same types, a config naming another type is refused at load, and a rule's actions run
through the table, each one on its own."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import InboundActionConfig, InboundActionType
from gateway.config.loader import ConfigError, load_dataclass
from gateway.inbound import actions as actions_module
from gateway.inbound.actions import ACTIONS, ActionContext, ActionResult, run_action
from gateway.inbound.actions.tag import tag
from gateway.inbound.stats import InboundStats
from tests.store_helpers import contact_with_tags
from tests.test_inbound import Bench
from tests.test_signed_callbacks import config_with as gateway_config_with
from tests.test_signed_callbacks import token

TYPES = set(typing.get_args(InboundActionType))


def test_the_table_has_one_entry_per_action_type_the_config_accepts() -> None:
    assert set(ACTIONS) == TYPES
    assert TYPES >= {"reply", "send", "opt_out", "opt_in", "help", "tag", "answer", "webhook"}


def test_a_config_naming_an_unknown_action_is_refused_at_load(tmp_path: Path) -> None:
    rules = [{"name": "r", "keyword": "GO", "actions": [{"type": "frobnicate", "text": "x"}]}]
    with pytest.raises(ConfigError) as caught:
        gateway_config_with(tmp_path, [token("a")], numbers=[{"number": "36180", "rules": rules}])
    [error] = caught.value.errors
    where, _, said = error.partition(": ")
    assert where == "inbound.numbers[0].rules[0].actions[0].type"
    assert "'frobnicate'" in said
    for name in sorted(TYPES):  # the choices are listed
        assert repr(name) in said


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = Bench(tmp_path)
    await b.start()
    yield b
    await b.stop()


async def test_a_rules_actions_run_through_the_table(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replacing one entry of the table changes what that action does, and nothing else:
    the rule's other actions run as before, in order."""
    seen: list[ActionContext] = []

    async def spy(ctx: ActionContext) -> ActionResult:
        seen.append(ctx)
        return {"ok": True, "spied": ctx.action.tag}

    monkeypatch.setattr(actions_module, "ACTIONS", {**ACTIONS, "tag": spy})
    done = await bench.mo("BOT hello")
    assert [a["type"] for a in done.actions] == ["handler", "handler", "tag"]
    assert done.actions[2] == {"type": "tag", "ok": True, "spied": "bot"}
    assert done.actions[0]["ok"] is True and done.actions[1]["ok"] is False
    [ctx] = seen
    assert ctx.message.text == "BOT hello" and ctx.message.id == done.id
    assert ctx.found.rule.name == "bot" and ctx.number is not None
    assert await contact_with_tags(bench.store, "+33612345678") is None  # the real tag did not run


async def context_of(bench: Bench, text: str) -> ActionContext:
    """The context the ``answer`` action of rule "vote" is given for the MO ``text`` (the
    action itself is left out)."""
    captured: list[ActionContext] = []

    async def keep(context: ActionContext) -> ActionResult:
        captured.append(context)
        return {"ok": True}

    real = actions_module.ACTIONS
    actions_module.ACTIONS = {**real, "answer": keep}  # type: ignore[misc]
    try:
        await bench.mo(text)
    finally:
        actions_module.ACTIONS = real  # type: ignore[misc]
    [context] = captured
    return context


async def test_one_action_runs_on_its_own(bench: Bench) -> None:
    """An action is a function of its context: the tag action, called alone, tags."""
    context = await context_of(bench, "VOTE 3")
    action = load_dataclass(InboundActionConfig, {"type": "tag", "tag": "fan"})
    assert await contact_with_tags(bench.store, context.message.source) is None
    result = await tag(dataclasses.replace(context, action=action))
    assert result == {"ok": True, "tag": "fan"}
    contact = await contact_with_tags(bench.store, context.message.source)
    assert contact is not None and contact.tags == ("fan",)


async def test_a_failing_action_is_counted_and_logged_and_the_next_ones_run(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(ctx: ActionContext) -> ActionResult:
        raise RuntimeError("broken action")

    monkeypatch.setattr(actions_module, "ACTIONS", {**ACTIONS, "answer": broken})
    done = await bench.mo("VOTE 4")
    assert done.actions[0]["type"] == "answer" and done.actions[0]["ok"] is False
    assert "broken action" in done.actions[0]["error"]
    assert done.actions[1]["type"] == "reply" and done.actions[1]["ok"] is True
    assert bench.service.stats.failed["answer"] == 1
    assert bench.service.stats.actions["answer"] == 1


async def test_a_reply_left_unsent_on_purpose_is_no_failure(bench: Bench) -> None:
    context = await context_of(bench, "VOTE 5")
    context.replies.blocked = "loop"
    stats = InboundStats.new()
    action = load_dataclass(InboundActionConfig, {"type": "reply", "text": "hi"})
    result = await run_action(dataclasses.replace(context, action=action), stats)
    assert result == {"type": "reply", "ok": False, "not_sent": "loop"}
    assert stats.actions["reply"] == 1 and stats.failed["reply"] == 0
