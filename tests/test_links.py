"""Short links (15.1): links in campaign texts, codes made with each message in its
transaction, a clash drawn again, and the redirect listener's answers and click records."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app.lifecycle import restart_needed
from gateway.config import RetentionConfig
from gateway.config.links import LinksConfig
from gateway.config.loader import ConfigError, load_dataclass
from gateway.links.codes import ALPHABET, link_errors, link_template, new_code
from gateway.links.server import LinkServer, is_prefetch
from gateway.store.base import Click, StoreError
from gateway.store.retention import Retention
from gateway.store.sqlite_links import SqliteLinks
from tests.campaign_helpers import Rig, campaign_rig
from tests.e2e_helpers import gateway_config

LINKS = LinksConfig(base_url="https://s.example.net", port=0)
SHORT = re.compile(r"https://s\.example\.net/([0-9A-Za-z]+)")
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"


# -- pure code --------------------------------------------------------------------------------


def test_markers_and_plain_urls_become_fields_targets_only_from_the_template() -> None:
    text = "Hi {first_name}: {link:https://shop.example/a?x=1} and https://shop.example/b."
    assert link_template(text, False) == (
        "Hi {first_name}: {_link_0} and https://shop.example/b.",
        ["https://shop.example/a?x=1"],
    )
    template, targets = link_template(text + " {link:https://shop.example/a?x=1}", True)
    # The sentence's full stop stays out of the link; one field per distinct target.
    assert template == "Hi {first_name}: {_link_0} and {_link_1}. {_link_0}"
    assert targets == ["https://shop.example/a?x=1", "https://shop.example/b"]
    assert link_errors("{link:ftp://x}", False) == [
        "a link must be an absolute http(s) URL, got 'ftp://x'"
    ]
    assert link_errors("{link:https://e.example/" + "x" * 2100 + "}", False)
    # A target goes out as a Location header: visible ASCII only.
    assert "percent-encode" in link_errors("{link:https://e.example/\u00e9t\u00e9}", False)[0]
    assert "percent-encode" in link_errors("{link:https://e.example/\x01}", False)[0]
    assert link_errors("{link:https://e.example/%C3%A9t%C3%A9?a=1&b=%20}", False) == []


def test_codes_are_base62_of_the_configured_length_and_do_not_repeat() -> None:
    drawn = {new_code(7) for _ in range(2000)}
    assert len(drawn) == 2000
    assert all(len(c) == 7 and set(c) <= set(ALPHABET) for c in drawn)
    assert len(set("".join(drawn))) == 62  # every character is used


def test_links_configuration_is_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        load_dataclass(LinksConfig, {"base_url": "s.example.net/?a=1", "code_length": 5})
    text = str(caught.value)
    assert "base_url" in text and "code_length" in text
    assert LINKS.prefix == "https://s.example.net/" and LINKS.link_length() == 29


def test_prefetches_are_told_from_clicks() -> None:
    known = LINKS.prefetchers
    assert not is_prefetch("GET", BROWSER, known)
    assert is_prefetch("HEAD", BROWSER, known)
    assert is_prefetch("GET", "", known)
    assert is_prefetch("GET", "WhatsApp/2.23.20.0 A", known)
    assert is_prefetch("GET", "facebookexternalhit/1.1 Facebot Twitterbot/1.0", known)


# -- the runner and the store -------------------------------------------------------------------


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with campaign_rig(tmp_path, links=LINKS) as rig:
        yield rig


async def _campaign(rig: Rig, text: str, count: int = 5, **extra: Any) -> str:
    list_id = await rig.new_list()
    rows = "".join(f"+3361234{n:04d},Ann{n}\n" for n in range(count))
    await rig.import_csv(list_id, "number,name\n" + rows)
    body = {"name": "spring", "from": "ACME", "text": text, "lists": [list_id], **extra}
    campaign = await rig.post("/v1/campaigns", body, 201)
    await rig.post(f"/v1/campaigns/{campaign['id']}/start", {}, 200)
    await rig.run_to_end(campaign["id"])
    return str(campaign["id"])


async def test_each_recipient_gets_their_own_codes_stored_with_the_message(rig: Rig) -> None:
    cid = await _campaign(
        rig, "Hi {name} {link:https://shop.example/spring} https://shop.example/x", 5
    )
    messages = await rig.messages_of(cid)
    assert len(messages) == 5
    stored = await rig.store._read(
        "SELECT code, message_id, campaign_id, number, target FROM links ORDER BY number"
    )
    by_code = {r[0]: r for r in stored}
    for number, text in messages:
        (code,) = SHORT.findall(text)  # track_links off: the plain URL stays as written
        assert len(code) == 7
        assert text.endswith(" https://shop.example/x")
        assert by_code[code][2:] == (cid, number, "https://shop.example/spring")
    assert len(by_code) == 5
    tracked = await _campaign(rig, "Go https://shop.example/x!", 2, track_links=True)
    for _, text in await rig.messages_of(tracked):
        assert re.fullmatch(r"Go https://s\.example\.net/[0-9A-Za-z]{7}!", text), text
    shown = await rig.get(f"/v1/campaigns/{tracked}")
    assert shown["track_links"] is True


async def test_a_taken_code_is_drawn_again_and_nothing_half_written(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _campaign(rig, "A {link:https://shop.example/a}", 1)
    ((taken,),) = await rig.store._read("SELECT code FROM links")
    draws = iter([taken, taken, "Fresh01", "Fresh02"])
    monkeypatch.setattr("gateway.campaigns.runner.new_code", _from(draws))
    second = await _campaign(rig, "B {link:https://shop.example/b}", 2)
    rows = await rig.store._read("SELECT code, campaign_id FROM links ORDER BY code")
    assert sorted(r[0] for r in rows if r[1] == second) == ["Fresh01", "Fresh02"]
    assert [r[0] for r in rows if r[1] == first] == [taken]
    assert len(await rig.messages_of(second)) == 2  # once each, after the second draw


def _from(draws: Any) -> Any:
    def code(length: int) -> str:
        return str(next(draws))

    return code


async def test_a_campaign_with_links_needs_the_links_section(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path) as rig:
        list_id = await rig.new_list()
        text = "{link:https://a.example/}"
        body = {"name": "s", "from": "ACME", "text": text, "lists": [list_id]}
        refused = await rig.api.post("/v1/campaigns", body)
        assert refused.status == 400
        assert "[links]" in refused.body["error"]["details"][0]["message"]
        plain = await rig.api.post("/v1/campaigns", {**body, "text": "see https://a.example/"})
        assert plain.status == 201  # a plain URL without track_links is plain text
        tracked = await rig.api.post(
            "/v1/campaigns", {**body, "text": "see https://a.example/", "track_links": True}
        )
        assert tracked.status == 400


# -- the listener ---------------------------------------------------------------------------------


async def test_the_listener_redirects_stored_codes_only_and_records_what_it_saw(rig: Rig) -> None:
    cid = await _campaign(rig, "Hi {link:https://shop.example/spring?a=1}", 2)
    messages = await rig.messages_of(cid)
    codes = [SHORT.findall(text)[0] for _, text in messages]
    now = [rig.now() + 60]
    server = LinkServer(LINKS, SqliteLinks(rig.store.db), clock=lambda: now[0])
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def ask(method: str, path: str, agent: str = BROWSER) -> aiohttp.ClientResponse:
                async with http.request(
                    method, base + path, headers={"User-Agent": agent}, allow_redirects=False
                ) as r:
                    await r.read()
                    return r

            clicked = await ask("GET", f"/{codes[0]}")
            assert clicked.status == 302
            assert clicked.headers["Location"] == "https://shop.example/spring?a=1"
            assert clicked.headers["Cache-Control"] == "no-store"
            assert clicked.headers["Server"] == "smsgw"
            assert (await ask("HEAD", f"/{codes[1]}")).status == 302
            assert (await ask("GET", f"/{codes[1]}", "WhatsApp/2.23")).status == 302
            for path in (
                f"/{codes[0][:-1]}{'y' if codes[0].endswith('x') else 'x'}",  # unknown
                f"/{codes[0]}x",  # too long
                "/",
                "/v1/messages",
                f"/{codes[0]}/more",
                "/%2e%2e%2fetc",
            ):
                missing = await ask("GET", path)
                assert missing.status == 404, path
                assert "Location" not in missing.headers
            now[0] = rig.now() + 91 * 86400  # past the 90-day retention
            assert (await ask("GET", f"/{codes[0]}")).status == 404
    finally:
        await server.stop()  # writes the clicks still waiting
    rows = await rig.store._read(
        "SELECT code, campaign_id, number, user_agent, bot FROM link_clicks ORDER BY id"
    )
    numbers = [n for n, _ in messages]
    assert rows == [
        (codes[0], cid, numbers[0], BROWSER, 0),
        (codes[1], cid, numbers[1], BROWSER, 1),
        (codes[1], cid, numbers[1], "WhatsApp/2.23", 1),
    ]
    # Paths that are no code at all (/, /v1/messages, /CODE/more) never reach the route.
    assert server.requests == {"click": 1, "bot": 2, "not_found": 4, "error": 0}


async def test_clicks_go_with_their_campaign_and_expired_codes_are_pruned(rig: Rig) -> None:
    cid = await _campaign(rig, "Hi {link:https://shop.example/spring}", 2)
    links = SqliteLinks(rig.store.db)
    ((code, number),) = await rig.store._read("SELECT code, number FROM links LIMIT 1")
    await links.record_clicks([Click(code, cid, number, rig.now(), BROWSER, False)])
    other = await _campaign(rig, "Later {link:https://shop.example/later}", 1)
    await links.record_clicks([Click("zzzzzzz", other, number, rig.now(), BROWSER, False)])
    # Codes: those made before the cut go, 500 a transaction.
    assert await links.prune(rig.now() + 1, 500) == 3
    assert await rig.store._read("SELECT count(*) FROM links") == [(0,)]
    # Clicks: with their campaign, when [retention] campaigns_days deletes it.
    await rig.store._write_in_thread(
        lambda conn: conn.execute(
            "UPDATE campaigns SET finished_at = ? WHERE id = ?", (rig.now() - 40 * 86400, cid)
        )
    )
    retention = Retention(rig.store.db, RetentionConfig(campaigns_days=30), clock=lambda: rig.now())
    await retention.run_once()
    left = await rig.store._read("SELECT campaign_id FROM link_clicks")
    assert left == [(other,)]


def test_the_commented_example_in_the_shipped_config_loads() -> None:
    shipped = (Path(__file__).parent.parent / "conf" / "gateway.toml").read_text()
    example = shipped[shipped.index("# [links]") :].split("\n\n")[0]
    lines = [line[2:] for line in example.splitlines() if line.startswith("# ")]
    links = load_dataclass(LinksConfig, tomllib.loads("\n".join(lines))["links"])
    assert (links.prefix, links.port, links.code_length) == ("https://s.example.net/", 8777, 7)


async def test_a_failing_store_is_a_plain_503_and_the_listener_stays_up(rig: Rig) -> None:
    class Broken(SqliteLinks):
        async def find(self, code: str) -> None:
            raise StoreError("disk I/O error")

    server = LinkServer(LINKS, Broken(rig.store))
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                url = f"http://127.0.0.1:{server.port}/AbCdEf1"
                async with http.get(url, allow_redirects=False) as r:
                    assert r.status == 503
                    assert await r.text() == "unavailable"
    finally:
        await server.stop()
    assert server.requests["error"] == 2


async def test_a_follow_up_to_the_clickers_keeps_tracking_links(rig: Rig) -> None:
    cid = await _campaign(rig, "Go https://shop.example/x", 3, track_links=True)
    rows = await rig.store._read("SELECT code, number FROM links ORDER BY number")
    links = SqliteLinks(rig.store.db)
    await links.record_clicks(
        [
            Click(rows[0][0], cid, rows[0][1], rig.now(), BROWSER, False),
            Click(rows[1][0], cid, rows[1][1], rig.now(), "WhatsApp/2", True),  # a preview
        ]
    )
    follow = await rig.post(
        f"/v1/campaigns/{cid}/send-to-responders",
        {"text": "More at https://shop.example/more", "clicked": True},
        201,
    )
    assert follow["track_links"] is True
    await rig.post(f"/v1/campaigns/{follow['id']}/start", {}, 200)
    await rig.run_to_end(follow["id"])
    ((number, text),) = await rig.messages_of(follow["id"])
    assert number == rows[0][1]  # the one who clicked; the previewed one is no clicker
    assert re.fullmatch(r"More at https://s\.example\.net/[0-9A-Za-z]{7}", text), text


def test_a_reload_that_changes_links_says_a_restart_is_needed(tmp_path: Path) -> None:
    # The listener, the runner's codes and the campaign checks read [links] at start.
    config = gateway_config(tmp_path, 2775)
    with_links = dataclasses.replace(config, links=LINKS)
    assert restart_needed(config, with_links) == ["links"]
    assert restart_needed(with_links, with_links) == []
