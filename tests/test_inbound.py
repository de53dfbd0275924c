"""The MO path without sockets: reassembly, keywords, actions, courtesy rate limit, restart.

The service runs over a real SqliteStore in tmp_path, with a clock the tests move; replies
are committed to the store (no dispatcher), so what was sent is read back from it."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import DAY, GatewayConfig, InboundConfig, KeywordRuleConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.core.intake import Intake
from gateway.core.model import NewMessage
from gateway.core.routing import Router
from gateway.inbound.campaign_directory import CampaignInfo
from gateway.inbound.keywords import KeywordRule, fold, match, parse_answer
from gateway.inbound.numbers import NumberBook, parse_number
from gateway.inbound.reassembly import MoReassembler, decode_parts, read_pdu
from gateway.inbound.service import InboundService
from gateway.smpp.constants import Status
from gateway.smpp.pdu import DeliverSm
from gateway.smpp.text import ConcatMethod
from gateway.store.base import Contact, Interaction, MoKey, MoPart
from gateway.store.sqlite import SqliteStore
from smsc_simulator.mo import build_mo
from tests.e2e_helpers import gateway_config
from tests.store_helpers import contact_with_tags, put_contacts

NUMBER = "36180"
LONG_TEXT = "Ceci est une réponse assez longue pour tenir en plusieurs parties, vraiment. " * 4


def parts_of(
    text: str, concat: ConcatMethod = ConcatMethod.UDH8, source: str = "+33612345678"
) -> list[DeliverSm]:
    return build_mo(text, source=source, destination=NUMBER, concat=concat, ref=77).parts


def as_part(pdu: DeliverSm, at: float = 0.0) -> MoPart:
    raw = read_pdu(pdu)
    assert raw.concat is not None
    key = MoKey("sim", "+33612345678", NUMBER, raw.concat.ref, raw.concat.total)
    return MoPart(key, raw.concat.seq, raw.data_coding, raw.data, raw.udh_length, at)


# -- reassembly (pure) -----------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    concat=st.sampled_from([ConcatMethod.UDH8, ConcatMethod.UDH16, ConcatMethod.SAR]),
    seed=st.integers(0, 2**32),
    dupes=st.integers(0, 3),
)
def test_parts_in_any_order_with_duplicates_make_the_text(
    concat: ConcatMethod, seed: int, dupes: int
) -> None:
    pdus = parts_of(LONG_TEXT, concat)
    assert len(pdus) > 2
    rng = random.Random(seed)
    order = pdus[:]
    rng.shuffle(order)
    # Duplicates come while the message is open (after it, see the service's own guard).
    sent = order[:-1] + [rng.choice(order[:-1]) for _ in range(dupes)]
    rng.shuffle(sent)
    sent.append(order[-1])
    r = MoReassembler(timeout=60)
    done = [a for a in (r.add(as_part(p)) for p in sent) if a is not None]
    assert len(done) == 1
    assert done[0].complete and decode_parts(done[0].parts) == LONG_TEXT
    assert len(r) == 0


def test_a_message_times_out_with_the_parts_received() -> None:
    pdus = parts_of(LONG_TEXT)
    r = MoReassembler(timeout=30)
    assert r.add(as_part(pdus[0], at=100.0)) is None
    assert r.add(as_part(pdus[2], at=101.0)) is None
    assert r.next_deadline() == 130.0
    assert r.expire(129.9) == []
    [late] = r.expire(130.0)
    assert not late.complete and late.missing == (2, *range(4, len(pdus) + 1))
    assert decode_parts(late.parts).startswith(LONG_TEXT[:10])
    assert r.next_deadline() is None and len(r) == 0


def test_payload_and_single_parts_are_whole_messages() -> None:
    [pdu] = build_mo(
        LONG_TEXT, source="+3361", destination=NUMBER, concat=ConcatMethod.PAYLOAD, ref=1
    ).parts
    raw = read_pdu(pdu)
    assert raw.concat is None
    key = MoKey("sim", "+3361", NUMBER, 0, 1)
    part = MoPart(key, 1, raw.data_coding, raw.data, raw.udh_length, 0.0)
    assert decode_parts([part]) == LONG_TEXT


# -- keywords (pure) -------------------------------------------------------------------------


def test_first_word_ignores_case_accents_and_punctuation() -> None:
    rules = [KeywordRule.build("stop", None, ("ARRET",), system=True)]
    for text in ("Arrêt", "ARRET!", "  arret please", "*arrêt*"):
        found = match(rules, text)
        assert found is not None and found.keyword == "ARRET"
    assert match(rules, "arrete") is None
    assert fold("ÉTÉ \uff33top") == "ete stop"  # a full-width S reads as S


def test_system_rules_win_and_campaign_rules_beat_others() -> None:
    rules = [
        KeywordRule.build("stop", None, ("STOP",), system=True),
        KeywordRule.build("other", "PIZZA", campaign_id="c2"),
        KeywordRule.build("number", "PIZZA"),
        KeywordRule.build("mine", "PIZZA", campaign_id="c1"),
        KeywordRule.build("re", None, patterns=(r"^\d{5}$",)),
    ]
    assert match(rules, "stop pizza").rule.name == "stop"  # type: ignore[union-attr]
    assert match(rules, "pizza", campaign_id="c1").rule.name == "mine"  # type: ignore[union-attr]
    assert match(rules, "pizza").rule.name == "number"  # type: ignore[union-attr]
    assert match(rules, "75011").rule.name == "re"  # type: ignore[union-attr]
    assert match(rules, "pasta") is None


def test_yes_opts_back_in_only_an_opted_out_sender() -> None:
    rules = [
        KeywordRule.build("resubscribe", None, ("YES",), system=True, only_if_opted_out=True),
        KeywordRule.build("yes", "YES"),
    ]
    assert match(rules, "yes").rule.name == "yes"  # type: ignore[union-attr]
    assert match(rules, "yes", opted_out=True).rule.name == "resubscribe"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("3", ("3", "number")),
        ("03 stars", ("3", "number")),
        ("b", ("B", "letter")),
        ("Oui!", ("YES", "yes_no")),
        ("nope", ("NO", "yes_no")),
        ("maybe", ("MAYBE", "text")),
    ],
)
def test_survey_answers(text: str, answer: tuple[str, str]) -> None:
    assert parse_answer(text) == answer


def test_api_number_errors_name_keywords_and_refuse_builtin_words() -> None:
    inbound = InboundConfig()
    with pytest.raises(ConfigError) as caught:
        parse_number(
            NUMBER,
            {"keywords": [{"name": "s", "keyword": "STOP", "actions": [{"type": "tag"}]}]},
            inbound,
        )
    assert any(e.startswith("keywords[0].actions[0].tag") for e in caught.value.errors)
    with pytest.raises(ConfigError) as caught:
        parse_number(
            NUMBER,
            {"keywords": [{"name": "s", "keyword": "stop", "actions": [{"type": "help"}]}]},
            inbound,
        )
    assert any("built-in" in e for e in caught.value.errors)


# -- the service over a real store -----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Directory:
    def __init__(self, campaigns: Sequence[CampaignInfo]) -> None:
        self.campaigns = {c.id: c for c in campaigns}

    async def campaign(self, campaign_id: str) -> CampaignInfo | None:
        return self.campaigns.get(campaign_id)

    async def keyword_campaigns(self, number: str) -> Sequence[CampaignInfo]:
        return [c for c in self.campaigns.values() if c.sender == number and c.keywords]


def config_with(inbound: dict[str, Any], tmp_path: Path) -> GatewayConfig:
    config = gateway_config(tmp_path / "data", 2775)
    return dataclasses.replace(config, inbound=load_dataclass(InboundConfig, inbound))


INBOUND: dict[str, Any] = {
    "reassembly_timeout": 30,
    "courtesy_interval": 3600,
    "loop_repeats": 3,
    "numbers": [
        {
            "number": NUMBER,
            "courtesy_reply": "Sorry?",
            "help_text": "Help here",
            "rules": [
                {
                    "name": "vote",
                    "keyword": "VOTE",
                    "actions": [
                        {"type": "answer", "question": "best"},
                        {"type": "reply", "text": "Thanks {first_name} ({city})"},
                        {"type": "send", "text": "Results soon", "delay": 60},
                    ],
                },
                {
                    "name": "bot",
                    "keyword": "BOT",
                    "actions": [
                        {"type": "handler", "handler": "tests.test_inbound:echo_handler"},
                        {"type": "handler", "handler": "tests.test_inbound:failing_handler"},
                        {"type": "tag", "tag": "bot"},
                    ],
                },
            ],
        }
    ],
}


async def echo_handler(message: Any, contact: Any, campaign: Any, reply: Any) -> object:
    sent = await reply.send(f"echo {message.text} from {reply.sender}")
    return {"sent": sent is not None, "campaign": campaign.id if campaign else None}


async def failing_handler(message: Any, contact: Any, campaign: Any, reply: Any) -> object:
    raise RuntimeError("handler broke")


class Captured:
    """The dispatcher's place: keeps what the service committed and enqueued."""

    def __init__(self) -> None:
        self.messages: dict[str, NewMessage] = {}
        self.opt_outs: list[tuple[str, str | None]] = []

    def enqueue(self, messages: Sequence[NewMessage], begun: Collection[str] = ()) -> None:
        self.messages.update((m.id, m) for m in messages)

    def reserve(self, messages: Sequence[NewMessage]) -> set[str]:
        return set()  # no binds here: nothing leaves at once

    def unclaimed(self, messages: Sequence[NewMessage]) -> set[str]:
        return set()  # this node sends every carrier

    def release(self, messages: Sequence[NewMessage], reserved: Collection[str]) -> None:
        pass

    def carriers_up(self) -> set[str]:
        return set()

    def opt_out(self, number: str, sender: str | None) -> None:
        self.opt_outs.append((number, sender))


class Bench:
    """A service, its store and clock; ``mo`` feeds a deliver_sm and handles what it logged."""

    def __init__(self, tmp_path: Path, directory: Directory | None = None) -> None:
        self.config = config_with(INBOUND, tmp_path)
        self.clock = Clock()
        self.store = SqliteStore(self.config.store_path)
        self.directory = directory
        self.outbound = Captured()
        self.service = self._service()

    def _service(self) -> InboundService:
        router = Router([], [c.name for c in self.config.carriers])
        intake = Intake(self.config.messages, self.config.carriers, router)
        return InboundService(
            self.config,
            self.store,
            intake,
            self.outbound,
            directory=self.directory,
            clock=self.clock,
        )

    async def start(self) -> None:
        await self.store.open()
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop(0)
        await self.store.close()

    async def restart(self) -> None:
        await self.stop()
        self.store = SqliteStore(self.config.store_path)
        self.service = self._service()
        await self.start()

    async def feed(self, pdus: Sequence[DeliverSm]) -> None:
        for pdu in pdus:
            assert await self.service.handle_pdu(pdu, "sim") == Status.ROK

    async def mo(self, text: str, source: str = "+33612345678") -> Interaction:
        await self.feed(parts_of(text, source=source))
        return await self.settle()

    async def settle(self) -> Interaction:
        """Wait for the queues to drain; the newest interaction."""
        for _ in range(500):
            if self.service.idle():
                break
            await _tick()
        [newest] = await self.store.interactions(limit=1, newest_first=True)
        assert newest.state == "done"
        return newest

    async def texts(self, interaction: Interaction) -> list[str]:
        out = []
        for action in interaction.actions:
            for result in (action, action.get("reply") or {}):
                if result.get("message_id"):
                    assert await self.store.get_message(result["message_id"]) is not None
                    out.append(self.outbound.messages[result["message_id"]].text)
        return out


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.01)


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = Bench(tmp_path)
    await b.start()
    yield b
    await b.stop()


async def test_actions_run_in_order_with_contact_fields(bench: Bench) -> None:
    await put_contacts(
        bench.store, [Contact("+33612345678", name="Zoé Durand", attributes={"city": "Lyon"})]
    )
    done = await bench.mo("vote 2")
    assert (done.keyword, done.rule) == ("VOTE", "vote")
    assert [a["type"] for a in done.actions] == ["answer", "reply", "send"]
    assert done.actions[0]["answer"] == "2"
    assert await bench.texts(done) == ["Thanks Zoé (Lyon)", "Results soon"]
    follow_up = bench.outbound.messages[done.actions[2]["message_id"]]
    assert follow_up.scheduled_at == bench.clock.now + 60 and follow_up.sender == NUMBER
    assert bench.service.stats.mo[(NUMBER, "vote")] == 1


async def test_handlers_get_a_reply_api_and_a_failure_does_not_stop_the_rest(
    bench: Bench,
) -> None:
    done = await bench.mo("bot hello")
    kinds = [(a["type"], a["ok"]) for a in done.actions]
    assert kinds == [("handler", True), ("handler", False), ("tag", True)]
    assert done.actions[0]["result"] == {"sent": True, "campaign": None}
    [echo] = bench.outbound.messages.values()
    assert (echo.to, echo.text) == ("+33612345678", f"echo bot hello from {NUMBER}")
    assert "handler broke" in done.actions[1]["error"]
    contact = await contact_with_tags(bench.store, "+33612345678")
    assert contact is not None and contact.tags == ("bot",)
    assert bench.service.stats.failed["handler"] == 1


async def test_courtesy_reply_once_per_sender_per_interval(bench: Bench) -> None:
    first = await bench.mo("hello?")
    assert await bench.texts(first) == ["Sorry?"]
    bench.clock.now += 60
    second = await bench.mo("hello again?")
    assert second.actions == [{"type": "courtesy_reply", "ok": False, "not_sent": "rate_limited"}]
    other = await bench.mo("hi", source="+33699999999")  # another sender: its own limit
    assert await bench.texts(other) == ["Sorry?"]
    bench.clock.now += 3600
    third = await bench.mo("anyone?")
    assert await bench.texts(third) == ["Sorry?"]


async def test_a_sender_repeating_itself_gets_no_automatic_reply(bench: Bench) -> None:
    for _ in range(3):
        bench.clock.now += 1
        done = await bench.mo("vote 1")
    assert done.actions[1] == {"type": "reply", "ok": False, "not_sent": "loop"}
    assert done.actions[0]["ok"]  # the answer is still recorded


async def test_stop_blocks_replies_and_help_still_answers(bench: Bench) -> None:
    stop = await bench.mo("STOP")
    assert stop.keyword == "STOP" and stop.actions[0]["reply"]["ok"]  # the confirmation
    assert await bench.store.opted_out(["+33612345678"], NUMBER)
    vote = await bench.mo("vote 3")
    assert vote.actions[1] == {"type": "reply", "ok": False, "not_sent": "opted_out"}
    help_ = await bench.mo("help")
    assert await bench.texts(help_) == ["Help here"]
    start = await bench.mo("start")
    assert start.rule == "opt_in"
    assert not await bench.store.opted_out(["+33612345678"], NUMBER)


async def test_stop_all_opts_out_of_every_sender(bench: Bench) -> None:
    done = await bench.mo("stop all")
    assert done.rule == "opt_out_all"
    assert await bench.store.opted_out(["+33612345678"], "ACME")


async def test_unfinished_reassembly_survives_a_restart(bench: Bench) -> None:
    pdus = parts_of(LONG_TEXT)
    await bench.feed(pdus[:-1] + pdus[:1])  # one part sent twice
    assert len(await bench.store.mo_parts()) == len(pdus) - 1
    await bench.restart()
    assert len(bench.service.reassembler) == 1
    await bench.feed(pdus[-1:])
    done = await bench.settle()
    assert done.text == LONG_TEXT and done.complete
    assert await bench.store.mo_parts() == []
    await bench.feed(pdus[-1:])  # the SMSC sends the last part again: no new message
    assert len(bench.service.reassembler) == 0


async def test_a_timed_out_message_is_logged_as_received_after_a_restart(bench: Bench) -> None:
    pdus = parts_of(LONG_TEXT)
    await bench.feed(pdus[:2])
    await bench.restart()
    assert await bench.service.expire() == 0  # not yet: 30 s from the first part
    bench.clock.now += 31
    assert await bench.service.expire() == 1
    done = await bench.settle()
    assert not done.complete and done.parts_received == 2 and done.missing
    assert await bench.store.mo_parts() == []


async def test_pending_interactions_are_handled_after_a_restart(bench: Bench) -> None:
    await bench.service.stop(0)  # workers gone: the MO is logged but not handled
    bench.service.molog.running = True
    await bench.feed(parts_of("vote 4"))
    [logged] = await bench.store.interactions()
    assert logged.state == "pending"
    await bench.restart()
    done = await bench.settle()
    assert done.id == logged.id and done.rule == "vote"


async def test_campaign_correlation_and_campaign_keywords(tmp_path: Path) -> None:
    promo = CampaignInfo(
        "promo",
        sender=NUMBER,
        courtesy_reply="Promo: reply PIZZA",
        keywords=(
            load_dataclass(
                KeywordRuleConfig,
                {
                    "name": "pizza",
                    "keyword": "PIZZA",
                    "actions": [{"type": "reply", "text": "Yum"}],
                },
            ),
        ),
    )
    directory = Directory(
        [promo, CampaignInfo("news", reply_window=60), CampaignInfo("long", reply_window=30 * DAY)]
    )
    bench = Bench(tmp_path, directory)
    await bench.start()
    try:
        pizza = await bench.mo("pizza")  # a campaign keyword names its campaign
        assert (pizza.campaign_id, pizza.rule) == ("promo", "pizza")
        assert await bench.texts(pizza) == ["Yum"]
        router = Router([], [c.name for c in bench.config.carriers])
        intake = Intake(bench.config.messages, bench.config.carriers, router)
        mt = intake.prepare(
            {"to": "+33611110000", "from": NUMBER, "text": "news!", "campaign_id": "news"},
            account="t",
            now=bench.clock.now,
            up=set(),
        )
        assert not isinstance(mt, list)
        await bench.store.accept([mt])
        bench.clock.now += 30
        reply = await bench.mo("great news", source="+33611110000")
        assert reply.campaign_id == "news"  # the last MT's campaign, within its window
        bench.clock.now += 60
        late = await bench.mo("late answer", source="+33611110000")
        assert late.campaign_id is None  # past the 60 s reply window of "news"
        # "long" (known, 30 day window) sent 15 days ago; "x" (unknown: the 10 day
        # default of [inbound]) sent 11 days ago.
        for campaign_id, ago, to in (("long", 15, "+33622220000"), ("x", 11, "+33633330000")):
            mt = intake.prepare(
                {"to": to, "from": NUMBER, "text": "hi", "campaign_id": campaign_id},
                account="t",
                now=bench.clock.now - ago * DAY,
                up=set(),
            )
            assert not isinstance(mt, list)
            await bench.store.accept([mt])
        kept = await bench.mo("still there", source="+33622220000")
        assert kept.campaign_id == "long"
        gone = await bench.mo("anyone?", source="+33633330000")
        assert gone.campaign_id is None
    finally:
        await bench.stop()


def test_numbers_book_finds_aliases(tmp_path: Path) -> None:
    inbound = load_dataclass(
        InboundConfig, {"numbers": [{"number": "+33700000001", "aliases": ["0700000001"]}]}
    )
    book = NumberBook(inbound)
    assert book.find("33700000001") is book.find("0700000001") is not None
    assert book.find("33700000002") is None


async def test_interleaved_senders_with_one_reference_stay_apart(bench: Bench) -> None:
    a = parts_of(LONG_TEXT, source="+33611111111")
    b = parts_of(LONG_TEXT.upper(), source="+33622222222")
    assert read_pdu(a[0]).concat == read_pdu(b[0]).concat  # same ref, total and seq
    mixed = [p for pair in zip(reversed(a), b, strict=False) for p in pair]
    mixed += a[len(b) :] + b[len(a) :]
    await bench.feed(mixed)
    await bench.settle()
    texts = {i.source: i.text for i in await bench.store.interactions()}
    assert texts == {"+33611111111": LONG_TEXT, "+33622222222": LONG_TEXT.upper()}


async def test_courtesy_reply_fills_the_contact_fields(bench: Bench) -> None:
    courtesy = "Hi {first_name}, reply HELP ({city})"
    inbound = {**INBOUND, "numbers": [{**INBOUND["numbers"][0], "courtesy_reply": courtesy}]}
    bench.service.reload(config_with(inbound, bench.config.store_path.parent.parent))
    await put_contacts(
        bench.store, [Contact("+33612345678", name="Zoé Durand", attributes={"city": "Lyon"})]
    )
    known = await bench.mo("what?")
    assert await bench.texts(known) == ["Hi Zoé, reply HELP (Lyon)"]
    stranger = await bench.mo("what?", source="+33699999999")  # no contact: fields empty
    assert await bench.texts(stranger) == ["Hi , reply HELP ()"]


def mo_to(text: str, destination: str, source: str = "+33612345678") -> list[DeliverSm]:
    return build_mo(
        text, source=source, destination=destination, concat=ConcatMethod.UDH8, ref=5
    ).parts


@pytest.mark.parametrize(
    ("word", "sender"),
    [("STOP", "36999"), ("unsubscribe", "36999"), ("stop all", None), ("STOPALL", None)],
)
async def test_stop_to_a_number_not_configured_is_applied(
    bench: Bench, word: str, sender: str | None
) -> None:
    await bench.feed(mo_to(word, "36999"))
    done = await bench.settle()
    assert done.destination == "36999" and done.rule in ("opt_out", "opt_out_all")
    assert [a["type"] for a in done.actions] == ["opt_out"] and done.actions[0]["ok"]
    assert "reply" not in done.actions[0]  # no texts configured for the number: no reply
    assert await bench.store.opted_out(["+33612345678"], "36999")
    assert bool(await bench.store.opted_out(["+33612345678"], NUMBER)) == (sender is None)
    assert bench.outbound.opt_outs == [("+33612345678", sender)]
    assert bench.outbound.messages == {}
    assert bench.service.stats.mo[("other", done.rule or "")] == 1
    # START (and YES, as the sender is opted out) opt back in, silently too.
    await bench.feed(mo_to("YES" if sender else "START", "36999"))
    back = await bench.settle()
    assert back.rule in ("opt_in", "resubscribe") and back.actions[0]["ok"]
    if sender is not None:
        assert not await bench.store.opted_out(["+33612345678"], "36999")
    assert bench.outbound.messages == {}


async def test_other_words_to_a_number_not_configured_run_nothing(bench: Bench) -> None:
    await bench.feed(mo_to("YES please", "36999"))  # YES from a subscribed sender: no rule
    done = await bench.settle()
    assert done.rule is None and done.actions == []
    assert not await bench.store.opted_out(["+33612345678"], "36999")


async def test_stop_to_a_long_number_not_configured_is_kept_in_e164(bench: Bench) -> None:
    await bench.feed(mo_to("STOP", "33612000001"))  # TON international, written without '+'
    done = await bench.settle()
    assert done.rule == "opt_out"
    assert await bench.store.opted_out(["+33612345678"], "+33612000001")
