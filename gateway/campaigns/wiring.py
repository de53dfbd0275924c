"""The campaign side of one gateway process: its store, importer, runner, service and the
directory the inbound side asks, built together and started after the dispatcher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final, Protocol

from gateway.campaigns.digest_source import CampaignDigestSource
from gateway.campaigns.imports import Importer, spool_dir_for
from gateway.campaigns.parts import CampaignParts
from gateway.campaigns.runner import CampaignRunner
from gateway.campaigns.service import CampaignService
from gateway.campaigns.store_directory import StoreCampaignDirectory
from gateway.config import GatewayConfig
from gateway.core import validation as check
from gateway.core.intake import CarrierTexts, Intake
from gateway.core.model import new_message_id
from gateway.core.routing import Router
from gateway.core.submit import Outbound
from gateway.store.ports import CampaignReports, CampaignSide, Submits

NUMBER_CACHE: Final = 1024
"""The runner and the importer see each number about once: a large cache of checked numbers
(the API's holds 100,000) would only grow with the audience."""


def campaign_intake(
    config: GatewayConfig, router: Router, carriers: CarrierTexts | None = None
) -> Intake:
    """The API's intake rules for campaign messages, with a small number cache.
    ``carriers``: the gateway's shared carrier settings (a reload reaches the runner too)."""
    intake = Intake(config.messages, carriers or config.carriers, router)
    intake.numbers = check.Numbers(
        config.messages.default_region,
        cache_size=NUMBER_CACHE,
        number_check=config.messages.number_check,
    )
    return intake


class CampaignWiringPorts(Submits, CampaignReports, Protocol):
    """What the campaign side needs of the message side."""


class Campaigns:
    def __init__(
        self,
        config: GatewayConfig,
        store: CampaignWiringPorts,
        outbound: Outbound,
        router: Router,
        clock: Callable[[], float] = time.time,
        carriers: CarrierTexts | None = None,
        *,
        tables: CampaignSide,
    ) -> None:
        """``store``: the message side (the campaigns' messages, opt-outs, figures);
        ``tables``: the campaign side's store on the same database."""
        self._refreshes: set[asyncio.Task[None]] = set()
        self.store = tables
        numbers = check.Numbers(
            config.messages.default_region, number_check=config.messages.number_check
        )
        intake = campaign_intake(config, router, carriers)
        self.runner = CampaignRunner(
            self.store,
            store,
            outbound,
            intake,
            clock,
            on_change=self._changed,
            links=config.links,
            quiet_hours=config.compliance.hours(),
            fallback_zone=config.node.time_zone,
        )
        self.directory = StoreCampaignDirectory(self.store, clock)
        self.digest_source = CampaignDigestSource(self.store)
        """For the daily digest (gateway.reports.digest.DigestCampaigns)."""
        self.importer = Importer(
            self.store,
            check.Numbers(
                config.messages.default_region,
                cache_size=NUMBER_CACHE,
                number_check=config.messages.number_check,
            ),
            clock,
            lambda: new_message_id(clock()),
            spool_dir_for(str(config.store_path)),
        )
        self.service = CampaignService(
            self.store,
            self.runner,
            numbers,
            clock,
            on_change=self._changed,
            links=config.links is not None,
            reports=store,
        )
        self.parts = CampaignParts(
            self.store, store, self.importer, self.service, numbers, clock, outbound.opt_out
        )

    def _changed(self) -> None:
        task = asyncio.get_running_loop().create_task(self.directory.refresh())
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def open(self) -> None:
        """Tables, then the directory's cache and interrupted imports (store open)."""
        await self.store.open()
        await self.directory.refresh()
        await self.importer.start()

    async def start(self) -> None:
        """Resume running and scheduled campaigns (dispatcher started)."""
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()
        await self.importer.stop()
        if self._refreshes:
            await asyncio.gather(*self._refreshes, return_exceptions=True)
