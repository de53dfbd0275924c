"""Issue 15.8: campaign send windows in each recipient's local time, and the gateway-wide
``[compliance] quiet_hours`` that campaigns keep. The clock is the rig's (moved by the test);
recipients outside their hours wait (deferred rows), without holding back the others."""

from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.app.daemon import Gateway
from gateway.campaigns.window import LocalHours, SendWindow, parse_hours
from gateway.campaigns.zones import number_zones
from gateway.config import ComplianceConfig, InboundConfig
from gateway.config.loader import ConfigError, load_dataclass
from tests.campaign_helpers import Rig, campaign_rig
from tests.e2e_helpers import AUTH, Lab, eventually, gateway_config, simulator_config

UTC = datetime.UTC

NEW_YORK = "+12124567890"
LOS_ANGELES = "+13104567890"
HONOLULU = "+18084567890"
PARIS = "+33612345678"
SYDNEY = "+61298765432"
AU_MOBILE = "+61412345678"  # not tied to a place: every Australian zone
TOLL_FREE = "+18004567890"  # every NANP zone, Guam to Samoa: 21 hours apart
LOCAL_9_20 = {"from": "09:00", "to": "20:00", "time_zone": "recipient_local"}

ZONE_OF = {
    NEW_YORK: "America/New_York",
    LOS_ANGELES: "America/Los_Angeles",
    HONOLULU: "Pacific/Honolulu",
    PARIS: "Europe/Paris",
    SYDNEY: "Australia/Sydney",
}


def utc(*args: int) -> float:
    return datetime.datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def local_hour(at: float, zone: str) -> float:
    moment = datetime.datetime.fromtimestamp(at, ZoneInfo(zone))
    return moment.hour + moment.minute / 60


# -- pure: zones and hours -----------------------------------------------------------------


def test_zones_come_from_the_number() -> None:
    for number, zone in ZONE_OF.items():
        assert number_zones(number) == (zone,)
    mobile = number_zones(AU_MOBILE)
    assert "Australia/Perth" in mobile and "Australia/Sydney" in mobile and len(mobile) > 3
    # phonenumbers knows no zone for this UK range: the country's zones.
    assert "Europe/London" in number_zones("+447700900123")
    assert number_zones("+999123", fallback="Europe/Paris") == ("Europe/Paris",)


def test_several_zones_take_the_most_restrictive_and_some_never_overlap() -> None:
    now = utc(2030, 3, 18, 16, 0)  # a Monday; Sydney on daylight time (UTC+11)
    hours = LocalHours(None, parse_hours("08:00-21:00"), now)
    assert hours.due(number_zones(NEW_YORK)) == now  # 12:00 in New York
    assert hours.due(number_zones(SYDNEY)) == utc(2030, 3, 18, 21, 0)  # 08:00 in Sydney
    mobile = hours.due(number_zones(AU_MOBILE))
    assert mobile is not None
    for zone in number_zones(AU_MOBILE):  # inside the hours in every zone of the number
        assert 8 <= local_hour(mobile, zone) < 21, zone
    assert mobile > utc(2030, 3, 18, 21, 0)  # later than Sydney alone
    # Zones 21 hours apart still share hours of a 13-hour window (Guam's morning is
    # Samoa's previous evening) ...
    toll_free = hours.due(number_zones(TOLL_FREE))
    assert toll_free == utc(2030, 3, 18, 22, 0)
    for zone in number_zones(TOLL_FREE):
        assert 8 <= local_hour(toll_free, zone) < 21, zone
    # ... but not of 09:00-20:00 across all of them: that number can never be sent to.
    narrower = LocalHours(SendWindow.from_json(LOCAL_9_20), parse_hours("08:00-21:00"), now)
    assert narrower.due(number_zones(TOLL_FREE)) is None
    assert narrower.due(number_zones(NEW_YORK)) == now


def test_quiet_hours_config() -> None:
    assert load_dataclass(ComplianceConfig, {"quiet_hours": "08:00-21:00"}).hours() == (
        parse_hours("08:00-21:00")
    )
    assert ComplianceConfig().hours() is None
    for bad in ("8-21", "08:00-25:00", "08:00-08:00"):
        with pytest.raises(ConfigError, match="quiet_hours"):
            load_dataclass(ComplianceConfig, {"quiet_hours": bad})


# -- the runner, with a clock passed in -----------------------------------------------------


async def audience(rig: Rig, numbers: list[str]) -> int:
    list_id = await rig.new_list()
    rows = "\n".join(["number,name", *(f"{n},P{i}" for i, n in enumerate(numbers))]) + "\n"
    got = await rig.import_csv(list_id, rows)
    assert got["imported"] == len(numbers), got
    return list_id


async def start(rig: Rig, list_id: int, **fields: Any) -> str:
    body = {"name": "spring", "from": "36180", "text": "Hi {first_name}", "lists": [list_id]}
    created = await rig.post("/v1/campaigns", {**body, **fields}, 201)
    campaign_id: str = created["id"]
    await rig.post(f"/v1/campaigns/{campaign_id}/start", None, 200)
    return campaign_id


async def until_it_waits(rig: Rig, campaign_id: str) -> float | None:
    """Step while the runner has work now (delays of at most the TPS pace)."""
    for _ in range(100):
        delay = await rig.runner.step(campaign_id)
        if delay is None or delay > 60:
            return delay
        rig.clock[0] += delay
    raise AssertionError("the campaign kept stepping")


def sent_at(rig: Rig) -> dict[str, float]:
    return {m.to: m.created_at for m in rig.outbound.enqueued}


async def test_recipients_outside_their_hours_wait_without_holding_back_the_others(
    tmp_path: Path,
) -> None:
    async with campaign_rig(tmp_path, quiet_hours=parse_hours("08:00-21:00")) as rig:
        everyone = [NEW_YORK, LOS_ANGELES, HONOLULU, PARIS, SYDNEY, AU_MOBILE, TOLL_FREE]
        list_id = await audience(rig, everyone)
        rig.clock[0] = utc(2030, 3, 18, 16, 0)
        # One recipient per step: Honolulu (06:00 there) comes before Paris in number order.
        cid = await start(rig, list_id, send_window=LOCAL_9_20, tps=1)

        delay = await until_it_waits(rig, cid)
        assert set(sent_at(rig)) == {NEW_YORK, LOS_ANGELES, PARIS}  # inside their hours
        assert await rig.campaigns.deferred_count(cid) == 3  # Honolulu, Sydney, AU mobile
        campaign = await rig.campaigns.get_campaign(cid)
        assert campaign is not None and campaign.status == "running"
        assert campaign.skipped_invalid == 1  # the toll-free number: no common hour
        assert delay == utc(2030, 3, 18, 19, 0) - rig.now()  # 09:00 in Honolulu

        await rig.run_to_end(cid)
        sent = sent_at(rig)
        assert set(sent) == set(everyone) - {TOLL_FREE}
        for number, at in sent.items():
            for zone in number_zones(number):
                assert 9 <= local_hour(at, zone) < 20, (number, zone)
        assert sent[HONOLULU] == utc(2030, 3, 18, 19, 0)
        assert sent[SYDNEY] == utc(2030, 3, 18, 22, 0)  # 09:00 in Sydney
        assert sent[AU_MOBILE] > sent[SYDNEY]
        assert await rig.campaigns.deferred_count(cid) == 0
        done = await rig.campaigns.get_campaign(cid)
        assert done is not None and done.status == "done"
        assert (done.handled, done.skipped_invalid) == (7, 1)


async def test_quiet_hours_hold_campaigns_without_a_window_and_with_a_fixed_one(
    tmp_path: Path,
) -> None:
    async with campaign_rig(tmp_path, quiet_hours=parse_hours("08:00-21:00")) as rig:
        list_id = await audience(rig, [NEW_YORK, PARIS, SYDNEY])
        rig.clock[0] = utc(2030, 3, 18, 6, 0)  # 02:00 New York, 07:00 Paris, 17:00 Sydney
        plain = await start(rig, list_id)
        await until_it_waits(rig, plain)
        assert set(sent_at(rig)) == {SYDNEY}
        await rig.run_to_end(plain)
        sent = sent_at(rig)
        assert sent[PARIS] == utc(2030, 3, 18, 7, 0)  # 08:00 in Paris
        assert sent[NEW_YORK] == utc(2030, 3, 18, 12, 0)  # 08:00 in New York (EDT)

        # A campaign window in one fixed zone, as wide as the day: quiet hours still hold.
        rig.outbound.enqueued.clear()
        rig.clock[0] = utc(2030, 3, 19, 6, 0)
        fixed = await start(
            rig, list_id, send_window={"from": "00:00", "to": "23:59", "time_zone": "UTC"}
        )
        await until_it_waits(rig, fixed)
        assert set(sent_at(rig)) == {SYDNEY}


async def test_a_campaign_cannot_widen_the_quiet_hours(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path, quiet_hours=parse_hours("08:00-21:00")) as rig:
        list_id = await audience(rig, [PARIS])
        body = {"name": "x", "from": "36180", "text": "Hi", "lists": [list_id]}
        for wide in ({"from": "07:00", "to": "20:00"}, {"from": "20:00", "to": "09:00"}):
            window = {**wide, "time_zone": "recipient_local"}
            answer = await rig.api.post("/v1/campaigns", {**body, "send_window": window})
            assert answer.status == 400, answer.text
            assert "quiet_hours" in answer.text
        inside = {"from": "10:00", "to": "18:00", "time_zone": "recipient_local"}
        created = await rig.post("/v1/campaigns", {**body, "send_window": inside}, 201)
        assert created["send_window"] == inside


async def test_a_waiting_recipient_who_opts_out_is_not_sent_to(tmp_path: Path) -> None:
    async with campaign_rig(tmp_path, quiet_hours=parse_hours("08:00-21:00")) as rig:
        list_id = await audience(rig, [NEW_YORK, SYDNEY])
        rig.clock[0] = utc(2030, 3, 18, 16, 0)
        cid = await start(rig, list_id)
        await until_it_waits(rig, cid)
        assert set(sent_at(rig)) == {NEW_YORK}
        await rig.post("/v1/opt-outs", {"number": SYDNEY, "sender": "36180"}, 201)
        await rig.run_to_end(cid)
        assert set(sent_at(rig)) == {NEW_YORK}
        done = await rig.campaigns.get_campaign(cid)
        assert done is not None and (done.status, done.skipped_opted_out) == ("done", 1)


def test_recipient_local_window_round_trips() -> None:
    window = SendWindow.from_json({"from": "09:00", "to": "20:00", "time_zone": "recipient_local"})
    assert window.recipient_local
    assert window.as_json() == {"from": "09:00", "to": "20:00", "time_zone": "recipient_local"}
    assert window.within(parse_hours("08:00-21:00"))
    assert not parse_hours("07:59-20:00").within(parse_hours("08:00-21:00"))
    assert parse_hours("22:00-06:00").within(parse_hours("21:00-07:00"))


# -- end to end: the simulator and a whole gateway, on the real clock ----------------------


class QuietLab(Lab):
    """A gateway with [compliance] quiet_hours and our short code configured (for STOP)."""

    def __init__(self, tmp_path: Path, quiet_hours: str) -> None:
        super().__init__(tmp_path, simulator_config())
        self.quiet_hours = quiet_hours

    async def start_gateway(self) -> None:
        assert self.simulator.smpp_port
        config = gateway_config(self.tmp_path / "data", self.simulator.smpp_port)
        config = dataclasses.replace(
            config,
            compliance=ComplianceConfig(quiet_hours=self.quiet_hours),
            inbound=load_dataclass(InboundConfig, {"numbers": [{"number": "36180"}]}),
        )
        assert config.validate() == []
        self.gateway = Gateway(config)
        await self.gateway.start()
        await eventually(self._bound)

    async def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        assert self.http is not None
        headers = {**AUTH, **kwargs.pop("headers", {})}
        async with self.http.request(method, self.gw_url + path, headers=headers, **kwargs) as r:
            assert r.status == status, await r.text()
            return await r.json()

    async def texts_to(self, number: str) -> list[str]:
        received = (await self.sim("GET", "/v1/messages?limit=1000"))["messages"]
        return [m["text"] for m in received if m["destination"] == number.lstrip("+")]


def hours_around_paris_now(now: float) -> str:
    """Three hours of the day that hold Paris's present hour (from the hour before)."""
    hour = datetime.datetime.fromtimestamp(now, ZoneInfo("Europe/Paris")).hour
    return f"{(hour - 1) % 24:02d}:00-{(hour + 2) % 24:02d}:00"


async def test_through_the_simulator_some_wait_others_get_it_and_stop_is_answered(
    tmp_path: Path,
) -> None:
    now = time.time()
    quiet = hours_around_paris_now(now)
    hours = LocalHours(None, parse_hours(quiet), now)
    # New York is 6 hours behind Paris, Sydney 9 to 10 ahead: outside these three hours.
    assert hours.due(number_zones(NEW_YORK)) != now and hours.due(number_zones(SYDNEY)) != now
    inside = [PARIS, "+33698765432"]
    lab = QuietLab(tmp_path, quiet)
    await lab.start()
    try:
        listed = await lab.call("POST", "/v1/lists", 201, json={"name": "mixed"})
        csv = "number,name\n" + "".join(
            f"{n},P{i}\n" for i, n in enumerate([NEW_YORK, *inside, SYDNEY])
        )
        job = await lab.call(
            "POST",
            f"/v1/lists/{listed['id']}/import",
            202,
            data=csv.encode(),
            headers={"Content-Type": "text/csv"},
        )

        async def imported() -> bool:
            got = await lab.call("GET", f"/v1/imports/{job['import_id']}", 200)
            return bool(got["status"] == "done")

        await eventually(imported)
        window = {"from": quiet[:5], "to": quiet[6:], "time_zone": "recipient_local"}
        campaign = await lab.call(
            "POST",
            "/v1/campaigns",
            201,
            json={
                "name": "quiet",
                "from": "36180",
                "text": "Spring sale, {first_name}",
                "lists": [listed["id"]],
                "send_window": window,
            },
        )
        cid = campaign["id"]
        await lab.call("POST", f"/v1/campaigns/{cid}/start", 200)
        gw = lab.gateway
        assert gw is not None

        async def inside_sent_outside_waiting() -> bool:
            got = [await lab.texts_to(n) for n in inside]
            waiting = await gw.campaigns.store.deferred_count(cid)
            return all(t == [f"Spring sale, P{i + 1}"] for i, t in enumerate(got)) and waiting == 2

        await eventually(inside_sent_outside_waiting)
        assert await lab.texts_to(NEW_YORK) == [] and await lab.texts_to(SYDNEY) == []
        shown = await lab.call("GET", f"/v1/campaigns/{cid}", 200)
        assert shown["status"] == "running"
        stats = await lab.call("GET", f"/v1/campaigns/{cid}/stats", 200)
        assert (stats["waiting_for_window"], stats["pending"]) == (2, 2)
        assert shown["progress"]["handled"] == 2  # the waiting are not handled yet

        # Outside New York's hours, its STOP is still confirmed at once.
        await lab.sim("POST", "/v1/mo", {"from": NEW_YORK, "to": "36180", "text": "STOP"})

        async def confirmed() -> bool:
            return len(await lab.texts_to(NEW_YORK)) == 1

        await eventually(confirmed)
        assert "Spring sale" not in (await lab.texts_to(NEW_YORK))[0]
    finally:
        await lab.stop()
