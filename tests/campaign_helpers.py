"""A campaign rig: the real SQLite store and campaign store in a temporary directory, the
HTTP API on 127.0.0.1 port 0, a recording dispatcher and a clock the test moves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateway.campaigns.imports import Importer
from gateway.campaigns.parts import CampaignParts
from gateway.campaigns.runner import CampaignRunner
from gateway.campaigns.service import CampaignService
from gateway.campaigns.store_directory import StoreCampaignDirectory
from gateway.campaigns.window import SendWindow
from gateway.config import TokenConfig
from gateway.config.links import LinksConfig
from gateway.core import validation as check
from gateway.core.intake import Intake
from gateway.core.model import new_message_id
from gateway.http.app import make_app
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite_campaigns import SqliteCampaignStore
from tests.api_fakes import NOW, Api, FakeOutbound, make_config, router_for


class ManualRunner(CampaignRunner):
    """Steps only when the test says so: wake() records instead of starting a task."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.woken: list[str] = []

    def wake(self, campaign_id: str) -> None:
        self.woken.append(campaign_id)


@dataclass
class Rig:
    store: SqliteStore
    campaigns: SqliteCampaignStore
    outbound: FakeOutbound
    runner: ManualRunner
    service: CampaignService
    importer: Importer
    directory: StoreCampaignDirectory
    api: Api
    clock: list[float] = field(default_factory=lambda: [NOW])

    def now(self) -> float:
        return self.clock[0]

    async def run_to_end(self, campaign_id: str, limit: int = 10_000) -> int:
        """Step a campaign until it has nothing more to do, moving the clock by each
        asked delay; how many steps it took."""
        for steps in range(1, limit):
            delay = await self.runner.step(campaign_id)
            if delay is None:
                return steps
            self.clock[0] += delay
        raise AssertionError("the campaign did not finish")

    async def post(self, path: str, body: Any, status: int) -> Any:
        answer = await self.api.post(path, body)
        assert answer.status == status, answer.text
        return answer.body

    async def get(self, path: str, status: int = 200) -> Any:
        answer = await self.api.get(path)
        assert answer.status == status, answer.text
        return answer.body

    async def import_csv(self, list_id: int, text: str) -> dict[str, Any]:
        answer = await self.api.request(
            "POST", f"/v1/lists/{list_id}/import", data=text.encode(), content_type="text/csv"
        )
        assert answer.status == 202, answer.text
        await self.importer.wait()
        got: dict[str, Any] = await self.get(f"/v1/imports/{answer.body['import_id']}")
        return got

    async def new_list(self, name: str = "customers") -> int:
        body = await self.post("/v1/lists", {"name": name}, 201)
        list_id: int = body["id"]
        return list_id

    async def messages_of(self, campaign_id: str) -> list[tuple[str, str]]:
        rows = await self.store._read(
            "SELECT dest, text FROM messages WHERE campaign_id = ? ORDER BY dest", (campaign_id,)
        )
        return [(r[0], r[1]) for r in rows]


@contextlib.asynccontextmanager
async def campaign_rig(
    tmp_path: Path,
    default_region: str = "FR",
    tokens: Sequence[TokenConfig] = (),
    links: LinksConfig | None = None,
    quiet_hours: SendWindow | None = None,
) -> AsyncIterator[Rig]:
    config = make_config(default_region=default_region, tokens=tokens)
    store = SqliteStore(tmp_path / "gateway.db", "normal")
    await store.open()
    campaigns = SqliteCampaignStore(store.db)
    await campaigns.open()
    clock = [NOW]

    def now() -> float:
        return clock[0]

    events: list[str] = []
    outbound = FakeOutbound(events, {"alpha"})
    router = router_for(config)
    numbers = check.Numbers(default_region)
    runner = ManualRunner(
        campaigns,
        store,
        outbound,
        Intake(config.messages, config.carriers, router),
        now,
        links=links,
        quiet_hours=quiet_hours,
    )
    directory = StoreCampaignDirectory(campaigns, now)
    importer = Importer(campaigns, numbers, now, lambda: new_message_id(), str(tmp_path))
    service = CampaignService(
        campaigns, runner, numbers, now, links=links is not None, reports=store
    )
    parts = CampaignParts(campaigns, store, importer, service, numbers, now)
    app = make_app(
        [],
        config=config,
        store=store,
        outbound=outbound,
        router=router,
        clock=now,
        campaigns=parts,
    )
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    api = Api(client, store, outbound, config, events, clock)
    try:
        yield Rig(store, campaigns, outbound, runner, service, importer, directory, api, clock)
    finally:
        await runner.stop()
        await importer.stop()
        await client.close()
        await store.close()
