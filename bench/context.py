"""What every scenario gets: the run's options, its temp dir, its processes, one HTTP client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.lab import Client
from bench.procs import ProcessSet


@dataclass(frozen=True)
class Options:
    messages: int = 100_000
    """e2e_mt and simulator_alone: messages to push through."""
    batch: int = 5_000
    """e2e_mt intake: messages per POST /v1/messages/batch."""
    concurrency: int = 4
    """e2e_mt intake: requests in flight at once."""
    binds: int = 4
    synchronous: str = "full"
    e2e_timeout: float = 300.0
    """Seconds for every accepted message to reach a final status before e2e_mt gives up."""
    latency_seconds: float = 10.0
    """Length of the paced run at half the sustained rate; 0 skips it."""
    latency_rate: float | None = None
    """Pace of that run in messages/s; unset is half the e2e rate just measured."""
    latency_requests_per_second: float = 200.0
    """How many requests the paced run spreads its messages over, per second."""
    throttle_tps: float = 500.0
    throttle_seconds: float = 20.0
    throttle_window: int = 50
    throttle_response_delay: float = 0.05
    sim_connections: int = 4
    sim_window: int = 1000
    campaign_contacts: int = 1_000_000
    """campaign_fanout: rows of the CSV imported."""
    campaign_sends: int = 50_000
    """campaign_fanout: submit_sm over which the send rate is measured (a million would not
    fit the 10-minute budget at this gateway's rate: the figure's label says how many)."""
    campaign_timeout: float = 180.0
    """Seconds from the campaign's start before campaign_fanout stops waiting for sends."""
    mo_rate: float = 6_000.0
    """inbound_mo: MOs offered per second (above the issue's 5,000/s target)."""
    mo_seconds: float = 3.0
    """inbound_mo: how long the MOs are offered."""
    mo_timeout: float = 120.0
    """inbound_mo: seconds after the last MO before giving up on missing replies."""
    carrier_messages: int = 2_000
    """carrier: messages per setting (``python -m bench.carrier --messages 20000`` for the
    full figure: eight settings at 2,000 keep ``make bench`` under a minute longer)."""
    carrier_windows: tuple[int, ...] = (100, 10)
    profile: bool = False
    """Record the gateway with py-spy during e2e_mt's bulk run."""
    profile_native: bool = False
    """... with C frames too (SQLite, uvloop), pausing the gateway at each sample."""


@dataclass
class Context:
    options: Options
    tmp: Path
    procs: ProcessSet
    client: Client
    results_dir: Path
    """Where profiles and other artefacts of this run are kept (next to the JSON)."""
    stem: str
    """The JSON file's name without its suffix: artefacts are named after it."""

    def artefact(self, name: str) -> Path:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        return self.results_dir / f"{self.stem}-{name}"
