"""What the campaign routes (``gateway.http.campaigns``, ``gateway.http.templates``) work with,
as ``gateway.campaigns.wiring`` builds it: the campaign side's parts, no HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.campaigns.imports import Importer
from gateway.campaigns.service import CampaignService
from gateway.core import validation as check
from gateway.store.ports import CampaignSide, OptOuts


@dataclass(slots=True)
class CampaignParts:
    """What the campaign routes work with."""

    campaigns: CampaignSide
    store: OptOuts
    importer: Importer
    service: CampaignService
    numbers: check.Numbers
    clock: Callable[[], float]
    on_opt_out: Callable[[str, str | None], None] | None = None
    """Told of each opt-out once committed (the dispatcher's ``opt_out``)."""
