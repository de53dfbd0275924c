"""Issue 4 (MO side), whole: simulator MO / scripted subscribers -> deliver_sm -> interaction
logged -> keyword -> actions -> replies out through the store and the dispatcher."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app.daemon import Gateway
from gateway.config import CallbacksConfig, InboundConfig
from gateway.config.loader import load_dataclass
from gateway.store.base import Contact, Interaction
from smsc_simulator.config import DelayConfig, ReplyConfig, SubscribersConfig
from tests.e2e_helpers import AUTH, Lab, eventually, gateway_config, simulator_config
from tests.store_helpers import contact_with_tags, put_contacts, survey_answers

SHORT_CODE = "36180"
HELP_TEXT = "ACME alerts. Reply STOP to stop. Help: acme.example"
COURTESY = "Sorry, we did not get that. Reply HELP for help."


def inbound_raw(webhook_url: str) -> dict[str, Any]:
    return {
        "reassembly_timeout": 2.0,
        "opt_out_keywords": ["ARRET"],
        "numbers": [
            {
                "number": SHORT_CODE,
                "help_text": HELP_TEXT,
                "courtesy_reply": COURTESY,
                "rules": [
                    {
                        "name": "yes",
                        "keyword": "YES",
                        "aliases": ["OUI"],
                        "actions": [
                            {"type": "answer", "question": "q1"},
                            {"type": "tag", "tag": "interested"},
                            {"type": "reply", "text": "Thanks {first_name}, see you!"},
                        ],
                    },
                    {
                        "name": "no",
                        "keyword": "NO",
                        "actions": [
                            {"type": "answer", "question": "q1"},
                            {"type": "reply", "text": "OK, noted."},
                        ],
                    },
                    {
                        "name": "agent",
                        "keyword": "AGENT",
                        "actions": [{"type": "webhook", "url": webhook_url}],
                    },
                ],
            }
        ],
    }


class InboundLab(Lab):
    def __init__(self, tmp_path: Path, inbound: dict[str, Any], **sim: Any) -> None:
        super().__init__(tmp_path, dataclasses.replace(simulator_config(), **sim))
        self.inbound = load_dataclass(InboundConfig, inbound)
        assert self.inbound.validate() == []

    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        # The helpdesk listens on loopback, which [callbacks] refuses unless allowed.
        callbacks = CallbacksConfig(allowed_networks=("127.0.0.0/8",))
        config = dataclasses.replace(config, inbound=self.inbound, callbacks=callbacks)
        assert config.validate() == []
        self.gateway = Gateway(config)
        await self.gateway.start()
        await eventually(self._bound)

    @property
    def gw(self) -> Gateway:
        assert self.gateway is not None
        return self.gateway

    async def mo(self, source: str, text: str, **extra: Any) -> None:
        await self.sim("POST", "/v1/mo", {"from": source, "to": SHORT_CODE, "text": text, **extra})

    async def handled(self, count: int) -> list[Interaction]:
        """Wait until ``count`` interactions are logged and handled; return them."""
        found: list[Interaction] = []

        async def done() -> bool:
            nonlocal found
            found = await self.gw.store.interactions(limit=10_000)
            return len(found) >= count and all(i.state == "done" for i in found)

        await eventually(done)
        assert len(found) == count
        return found

    async def sent_to(self, number: str) -> list[str]:
        """Texts the simulator received for ``number`` (E.164), oldest first."""
        received = (await self.sim("GET", "/v1/messages?limit=1000"))["messages"]
        return [m["text"] for m in received if m["destination"] == number.lstrip("+")]

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.request(method, self.gw_url + path, json=body, headers=AUTH) as r:
            payload = await r.json() if r.content_type == "application/json" else None
            return r.status, payload


class Helpdesk:
    """A loopback webhook receiver."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            self.received.append(await request.json())
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
async def helpdesk() -> AsyncIterator[Helpdesk]:
    desk = Helpdesk()
    await desk.start()
    yield desk
    await desk.stop()


@pytest.fixture
async def lab(tmp_path: Path, helpdesk: Helpdesk) -> AsyncIterator[InboundLab]:
    lab = InboundLab(tmp_path, inbound_raw(helpdesk.url))
    await lab.start()
    yield lab
    await lab.stop()


async def test_keywords_opt_out_help_courtesy_webhook_and_helpdesk_reply(
    lab: InboundLab, helpdesk: Helpdesk
) -> None:
    alice, bob, carol, dave, erin = (f"+3361234500{i}" for i in range(1, 6))
    await put_contacts(lab.gw.store, [Contact(alice, name="Alice Martin")])

    await lab.mo(alice, "oui!")  # alias, case and punctuation ignored
    await lab.mo(bob, "No thanks")
    await lab.mo(carol, "Stop")
    await lab.mo(dave, "help")
    await lab.mo(erin, "what is this?")
    await lab.handled(5)
    await lab.mo(erin, "hello??")  # a second unmatched MO: no second courtesy reply
    await lab.mo(erin, "AGENT my parcel is late")
    interactions = await lab.handled(7)
    by_source = {(i.source, i.text): i for i in interactions}

    yes = by_source[(alice, "oui!")]
    assert (yes.keyword, yes.rule) == ("YES", "yes")
    assert [a["type"] for a in yes.actions] == ["answer", "tag", "reply"]
    assert all(a["ok"] for a in yes.actions)
    answers = sorted((a.source, a.answer) for a in await survey_answers(lab.gw.store, "q1"))
    assert answers == [(alice, "YES"), (bob, "NO")]  # senders are handled concurrently
    contact = await contact_with_tags(lab.gw.store, alice)
    assert contact is not None and contact.tags == ("interested",)
    assert by_source[(carol, "Stop")].keyword == "STOP"
    assert by_source[(erin, "what is this?")].keyword is None

    async def replies_arrived() -> bool:
        return all(
            [
                await lab.sent_to(alice) == ["Thanks Alice, see you!"],
                await lab.sent_to(bob) == ["OK, noted."],
                len(await lab.sent_to(carol)) == 1,
                await lab.sent_to(dave) == [HELP_TEXT],
                await lab.sent_to(erin) == [COURTESY],
                len(helpdesk.received) == 1,
            ]
        )

    await eventually(replies_arrived)
    assert "unsubscribed" in (await lab.sent_to(carol))[0]
    courtesy = [a for a in by_source[(erin, "hello??")].actions]
    assert courtesy == [{"type": "courtesy_reply", "ok": False, "not_sent": "rate_limited"}]

    # STOP holds: the API refuses the number from this sender, and keyword replies are not sent.
    status, body = await lab.request(
        "POST", "/v1/messages", {"to": carol, "from": SHORT_CODE, "text": "promo"}
    )
    assert status == 422 and body["error"]["code"] == "opted_out"
    await lab.mo(carol, "YES")  # from an opted-out sender: opts back in (START's twin)
    back = await lab.handled(8)
    assert back[-1].rule == "resubscribe"
    assert not await lab.gw.store.opted_out([carol], SHORT_CODE)

    # The webhook got the MO; the helpdesk answers through the API.
    hook = helpdesk.received[0]
    assert (hook["from"], hook["to"], hook["text"]) == (erin, SHORT_CODE, "AGENT my parcel is late")
    status, answer = await lab.request(
        "POST", f"/v1/interactions/{hook['interaction_id']}/reply", {"text": "On its way!"}
    )
    assert status == 202, answer
    assert (answer["to"], answer["from"]) == (erin, SHORT_CODE)

    async def helpdesk_answer_sent() -> bool:
        return "On its way!" in await lab.sent_to(erin)

    await eventually(helpdesk_answer_sent)
    view = await lab.get(f"/v1/messages/{answer['id']}")
    assert view["to"] == erin


async def test_long_mo_shuffled_is_one_interaction(lab: InboundLab) -> None:
    text = "Bonjour, je voudrais savoir quand ma commande arrivera. " * 6
    for concat in ("udh8", "udh16", "sar"):
        await lab.mo("+33698765432", text, shuffle=True, concat=concat)
    found = await lab.handled(3)
    assert [i.text for i in found] == [text] * 3
    assert all(i.parts > 1 and i.parts_received == i.parts for i in found)
    assert await lab.gw.store.mo_parts() == []


async def test_numbers_api_adds_a_number_that_routes_at_once(lab: InboundLab) -> None:
    status, listed = await lab.request("GET", "/v1/numbers")
    assert status == 200
    assert [(n["number"], n["source"]) for n in listed["items"]] == [(SHORT_CODE, "config")]
    rules = [{"name": "win", "keyword": "WIN", "actions": [{"type": "reply", "text": "Won!"}]}]
    status, body = await lab.request(
        "PUT", "/v1/numbers/36999", {"keywords": rules, "courtesy_reply": None}
    )
    assert status == 200, body
    assert body["source"] == "api" and body["keywords"] == rules
    status, body = await lab.request("PUT", f"/v1/numbers/{SHORT_CODE}", {"keywords": []})
    assert status == 409
    status, body = await lab.request(
        "PUT", "/v1/numbers/36998", {"keywords": [{"name": "x", "keyword": "STOP"}]}
    )
    assert status == 400
    assert {d["path"] for d in body["error"]["details"]} >= {"keywords[0].actions"}
    private = [
        {
            "name": "h",
            "keyword": "HOOK",
            "actions": [{"type": "webhook", "url": "http://10.1.2.3/h"}],
        }
    ]
    status, body = await lab.request("PUT", "/v1/numbers/36997", {"keywords": private})
    assert status == 400  # [callbacks] applies to webhooks added over the API too
    assert [d["path"] for d in body["error"]["details"]] == ["keywords[0].actions[0].url"]

    await lab.sim("POST", "/v1/mo", {"from": "+33611112222", "to": "36999", "text": "win"})
    found = await lab.handled(1)
    assert found[0].rule == "win" and found[0].destination == "36999"

    async def won() -> bool:
        return await lab.sent_to("+33611112222") == ["Won!"]

    await eventually(won)
    assert lab.http is not None
    async with lab.http.get(lab.gw_url + "/metrics") as r:
        metrics = await r.text()
    assert 'smsgw_mo_total{keyword="win",number="36999"} 1.0' in metrics
    assert 'smsgw_mo_actions_total{action="reply"} 1.0' in metrics
    status, _ = await lab.request("DELETE", "/v1/numbers/36999")
    assert status == 204
    status, _ = await lab.request("GET", "/v1/numbers/36999")
    assert status == 404


@pytest.fixture
async def campaign_lab(tmp_path: Path, helpdesk: Helpdesk) -> AsyncIterator[InboundLab]:
    subscribers = SubscribersConfig(
        reply_share=1.0,
        reply_once="number",
        delay=DelayConfig(seconds=0.05),
        replies=(
            ReplyConfig("YES", 3),
            ReplyConfig("no", 2),
            ReplyConfig("STOP", 1),
            ReplyConfig("where is the shop?", 2),
        ),
    )
    lab = InboundLab(tmp_path, inbound_raw(helpdesk.url), subscribers=subscribers)
    await lab.start()
    yield lab
    await lab.stop()


async def test_scripted_subscribers_answer_a_campaign(campaign_lab: InboundLab) -> None:
    lab = campaign_lab
    recipients = [f"+3361000{i:04d}" for i in range(60)]
    await lab.post(
        "/v1/messages/batch",
        {
            "messages": [
                {"to": to, "from": SHORT_CODE, "text": "Sale tomorrow! YES/NO", "campaign_id": "c1"}
                for to in recipients
            ]
        },
    )
    found = await lab.handled(60)
    stats = await lab.sim("GET", "/v1/stats")
    expected = Counter({t.upper(): n for t, n in stats["subscriber_replies"].items()})
    assert sum(expected.values()) == 60
    got = Counter(i.text.upper() for i in found)
    assert got == expected
    assert all(i.campaign_id == "c1" for i in found)  # correlated by the last MT
    keywords = Counter(i.keyword for i in found)
    assert keywords["YES"] == expected["YES"] and keywords["STOP"] == expected["STOP"]
    assert keywords[None] == expected["WHERE IS THE SHOP?"]
    stopped = sorted(i.source for i in found if i.keyword == "STOP")
    assert set(await lab.gw.store.opted_out(recipients, SHORT_CODE)) == set(stopped)

    # A second send to everyone: STOP numbers are refused whole at intake.
    async with aiohttp.ClientSession() as http:
        async with http.post(
            lab.gw_url + "/v1/messages/batch",
            json={"messages": [{"to": to, "from": SHORT_CODE, "text": "again"} for to in stopped]},
            headers=AUTH,
        ) as r:
            assert r.status == 422

    async def replies_out() -> bool:
        texts = [await lab.sent_to(n) for n in recipients]
        return sum(len(t) for t in texts) == 120  # the MT and one reply each

    await eventually(replies_out)


async def test_a_reload_changes_keyword_routing_without_dropping_a_bind(lab: InboundLab) -> None:
    from gateway.app.lifecycle import apply_config

    binds = list(lab.gw.binds)
    connects = [b.connects for b in binds]
    await lab.mo("+33655550001", "PROMO please")
    await lab.handled(1)
    await eventually(lambda: _sent(lab, "+33655550001", [COURTESY]))

    raw = inbound_raw("https://helpdesk.example/hook")
    raw["numbers"][0]["rules"].append(
        {"name": "promo", "keyword": "PROMO", "actions": [{"type": "reply", "text": "-20%!"}]}
    )
    new_inbound = load_dataclass(InboundConfig, raw)
    await apply_config(lab.gw, dataclasses.replace(lab.gw.config, inbound=new_inbound))

    await lab.mo("+33655550002", "promo")
    handled = await lab.handled(2)
    assert {i.rule for i in handled if i.source == "+33655550002"} == {"promo"}
    await eventually(lambda: _sent(lab, "+33655550002", ["-20%!"]))
    assert lab.gw.binds == binds and [b.connects for b in binds] == connects


async def _sent(lab: InboundLab, number: str, texts: list[str]) -> bool:
    return await lab.sent_to(number) == texts
