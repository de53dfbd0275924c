"""Bind slots across the cluster: which of a carrier's binds run on this node, and fencing.

A carrier's ``binds = N`` is the account's total across every node sharing the database.
:class:`SlotKeeper` makes a lease round (``ClusterLeases.lease_round``, the rule in
gateway.store.leases) every third of ``[cluster] lease_seconds``, and sooner when another
node's lease is due to lapse (so a dead node's slots are bound again within the lease), then

- starts the bind of every slot it now holds (a bind connects only while its slot is this
  node's), puts the others in ``standby``;
- unbinds the slots above its share and only then gives them back (``release_slots``), so
  the node that takes one never binds while this one still does;
- gives the dispatcher this node's part of each carrier's ``account_tps``: the slots it
  holds over N (``Dispatcher.set_account_share``), re-split at every change.

Fencing. A round that fails (database unreachable, statement timeout) is counted and logged
(rate-limited), and tried again. The leases this node holds lapse at ``until`` = the start of
its last successful round + ``lease_seconds`` (the round takes ``now`` before it starts, so
the rows can only lapse later than that). At ``FENCE_AT`` (four fifths) of the lease
after that start, measured on this node's monotonic clock by a timer that does not wait for
a hung round, the node *fences*: it stops sending on every bind at once (their state leaves
``bound``, so the dispatcher takes no more window), unbinds them with a drain of at most
``FENCE_DRAIN`` of the lease, and aborts what is left: every bind of this node is closed by
0.85 of the lease, before another node can take a slot. It counts and logs the fence; when
a round succeeds again it binds whatever it then holds. The margin left (0.15 of the lease,
1.5 s by default) is what the nodes' wall clocks may disagree by: keep them synchronised
(NTP keeps them within milliseconds). A failed round is tried again after a quarter of the
usual interval, so a short database blip costs no fence.

On SQLite there is one node: it holds every slot and behaves as before leases. Its leases
are not ``shared`` (one process per data directory), so a round that fails there (a disk
error) is counted and logged but fences nothing: no other node could take a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.binds import CarrierBind
from gateway.logs import log_event
from gateway.store.leases import ClusterView, LeaseRound, NodeInfo
from gateway.store.ports import ClusterLeases

log = logging.getLogger("smsgw.cluster")

RENEWALS_PER_LEASE: Final = 3
"""A round every third of the lease: a lease outlives two failed rounds in a row."""

FENCE_AT: Final = 0.8
"""Fraction of the lease, from the start of the last successful round, at which a node that
could not renew fences. Rounds start every third of the lease: the one at two thirds has
until four fifths (1.3 s by default) to succeed."""

FENCE_DRAIN: Final = 0.05
"""Fraction of the lease a fenced bind waits for its unbind_resp (and the responses and
receipts still coming) before its connection is aborted: closed by 0.85 of the lease."""

RETRY_FRACTION: Final = 0.25
"""After a failed round, the next comes after this part of the usual interval."""

MIN_WAKE_SECONDS: Final = 0.05
"""The soonest a round follows the previous one (a lapse due in a millisecond)."""

FAILURE_LOG_SECONDS: Final = 60.0
"""At most one ``cluster.lease_failed`` warning this often, with the failures since."""


@dataclass(slots=True)
class ClusterStats:
    rounds: int = 0
    """Lease rounds that succeeded."""
    failures: int = 0
    """Lease rounds that failed."""
    fences: int = 0
    """Times this node fenced (unbound everything: it could not renew in time)."""
    taken: int = 0
    """Slots this node took."""
    given_back: int = 0
    """Slots this node unbound and gave back (surplus)."""
    lost: int = 0
    """Slots found held by another node while this node had them bound (should stay 0)."""


Key = tuple[str, int]


class SlotKeeper:
    """This node's share of the bind slots (see module doc)."""

    def __init__(
        self,
        leases: ClusterLeases,
        binds: Sequence[CarrierBind],
        lease_seconds: float,
        node: Callable[[], NodeInfo],
        *,
        on_share: Callable[[str, float], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.binds = binds
        """The gateway's binds (the same list a reload updates in place)."""
        self.lease_seconds = lease_seconds
        self.node = node
        self.on_share = on_share
        self.clock = clock
        self.monotonic = monotonic
        self.stats = ClusterStats()
        self.held: frozenset[Key] = frozenset()
        """Slots this node holds (bound or binding), surplus being given back excluded."""
        self.fenced = False
        self.last_ok: float | None = None
        """Monotonic time at which the last successful round started."""
        self.last_round: LeaseRound | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._transitions: dict[Key, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._failures_unlogged = 0
        self._last_failure_log: float | None = None
        self._failed = False

    # -- timing ------------------------------------------------------------------------------

    @property
    def renew_every(self) -> float:
        return self.lease_seconds / RENEWALS_PER_LEASE

    @property
    def fence_deadline(self) -> float | None:
        """Monotonic time at which this node fences unless a round succeeds first."""
        if self.last_ok is None:
            return None
        return self.last_ok + self.lease_seconds * FENCE_AT

    @property
    def drain(self) -> float:
        return self.lease_seconds * FENCE_DRAIN

    def next_delay(self) -> float:
        """Seconds until the next round: a third of the lease (a quarter of that after a
        failed round), or the next lapse of another node's lease when sooner."""
        delay = self.renew_every
        if self._failed:
            delay *= RETRY_FRACTION
        last = self.last_round
        if last is not None and last.next_change is not None and self.last_ok is not None:
            due = last.next_change - self.clock()
            delay = min(delay, due)
        return max(MIN_WAKE_SECONDS, delay)

    # -- lifecycle ---------------------------------------------------------------------------

    def wanted(self) -> dict[str, int]:
        """Slots per carrier: the binds configured (``binds`` of each carrier)."""
        counts: dict[str, int] = {}
        for bind in self.binds:
            counts[bind.carrier] = max(counts.get(bind.carrier, 0), bind.settings.slot + 1)
        return counts

    async def start(self) -> None:
        """The first round (an error propagates: the daemon does not start without it),
        the binds of the slots held started, the rest in standby, then the loop."""
        if not await self.round(raise_errors=True):
            raise RuntimeError("unreachable")  # raise_errors raised
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cluster")

    async def stop(self) -> None:
        """Stop the rounds and the fence timer (the binds are the caller's to stop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        transitions = list(self._transitions.values())
        if transitions:
            await asyncio.gather(*transitions, return_exceptions=True)

    async def leave(self) -> None:
        """After the binds stopped (a clean stop): give every slot back and say this node
        is gone, so the others bind its slots at their next round."""
        try:
            released = await self.leases.leave(self.clock())
        except Exception as exc:  # they lapse by themselves within the lease
            log_event(log, "cluster.leave_failed", logging.WARNING, error=repr(exc))
        else:
            log_event(log, "cluster.left", slots=released)

    def adopt(self, binds: Sequence[CarrierBind]) -> None:
        """Binds a reload added (``self.binds`` has them already): those whose slot this
        node holds start, the others wait in standby; then a round at once (the carriers'
        ``binds`` may have changed)."""
        for bind in binds:
            if (bind.carrier, bind.settings.slot) in self.held and not self.fenced:
                bind.start()
            else:
                bind.standby()
        self.wake()

    def wake(self) -> None:
        """Make a round now (a reload changed the binds)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.next_delay())
            await self.round()

    # -- one round ---------------------------------------------------------------------------

    async def round(self, raise_errors: bool = False) -> bool:
        """One lease round and what follows from it (the loop's turn; tests call it)."""
        started = self.monotonic()
        try:
            result = await self.leases.lease_round(
                self.node(), self.wanted(), self.clock(), self.lease_seconds
            )
        except Exception as exc:
            self.stats.failures += 1
            self._failed = True
            if raise_errors:
                raise
            self._log_failure(exc)
            self.check_fence(self.monotonic())
            return False
        self.stats.rounds += 1
        self._failed = False
        self.last_round = result
        if self.last_ok is None or started > self.last_ok:
            self.last_ok = started
        self._arm_fence()
        if self.fenced and self.monotonic() < (self.fence_deadline or 0.0):
            self.fenced = False
            log_event(log, "cluster.unfenced", slots=len(result.owned - result.surplus))
        if not self.fenced:
            self.apply(result)
        return True

    def apply(self, result: LeaseRound) -> None:
        """Start the binds of the slots held, unbind and give back the surplus, stop the
        binds of slots lost, re-split ``account_tps``."""
        keep = result.owned - result.surplus
        taken = keep - self.held
        self.stats.taken += len(taken)
        by_key = {(b.carrier, b.settings.slot): b for b in self.binds}
        for key, bind in by_key.items():
            if key in keep:
                if not bind.running:
                    self._transition(key, self._start(bind))
            elif key in result.surplus:
                if bind.running or key in self.held:
                    self.stats.given_back += 1
                    log_event(log, "cluster.give_back", carrier=key[0], slot=key[1])
                self._transition(key, self._give_back(key, bind))
            elif bind.running:
                if key in self.held:  # held last round, another node's now: never expected
                    self.stats.lost += 1
                    log_event(log, "cluster.slot_lost", logging.ERROR, carrier=key[0], slot=key[1])
                self._transition(key, self._stop(bind))
            elif key not in self._transitions:
                bind.standby()
        orphans = [k for k in result.surplus if k not in by_key]  # binds no longer configured
        if orphans:
            self._transition(("", -1), self._release(orphans))
        if taken:
            log_event(log, "cluster.slots", held=sorted(f"{c}/{s}" for c, s in keep))
        self.held = keep
        self._share(keep)

    def _share(self, keep: frozenset[Key]) -> None:
        if self.on_share is None:
            return
        for carrier, total in self.wanted().items():
            mine = sum(1 for c, _ in keep if c == carrier)
            self.on_share(carrier, mine / total if total else 0.0)

    # -- fencing -----------------------------------------------------------------------------

    def _arm_fence(self) -> None:
        deadline = self.fence_deadline
        if deadline is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, deadline - self.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_fence_timer)

    def _on_fence_timer(self) -> None:
        self._timer = None
        deadline = self.fence_deadline
        if not self.check_fence(self.monotonic()) and deadline is not None and not self.fenced:
            if self.monotonic() < deadline:  # the loop's timers may fire a hair early
                self._arm_fence()

    def check_fence(self, now: float) -> bool:
        """Fence if ``now`` (monotonic) is past the deadline and this node has not yet;
        whether it fenced now."""
        deadline = self.fence_deadline
        if self.fenced or deadline is None or now < deadline or not self.leases.shared:
            return False
        self.fenced = True
        self.stats.fences += 1
        bound = [b for b in self.binds if b.running]
        log_event(
            log,
            "cluster.fenced",
            logging.ERROR,
            binds=len(bound),
            since_last_renewal=round(now - (self.last_ok or now), 3),
            reason="the leases could not be renewed: unbinding before they can lapse",
        )
        for bind in bound:
            bind.hold()  # no submit from now on, before the unbind below even starts
            self._transition((bind.carrier, bind.settings.slot), self._stop(bind))
        self.held = frozenset()
        return True

    # -- bind transitions, one at a time per slot ----------------------------------------------

    def _transition(self, key: Key, step: Any) -> None:
        previous = self._transitions.get(key)

        async def run() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await step

        task = asyncio.get_running_loop().create_task(run(), name=f"slot-{key[0]}-{key[1]}")
        self._transitions[key] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._transitions.get(key) is t:
                del self._transitions[key]
            if not t.cancelled() and t.exception() is not None:
                log_event(
                    log, "cluster.transition_failed", logging.ERROR, error=repr(t.exception())
                )

        task.add_done_callback(done)

    async def _start(self, bind: CarrierBind) -> None:
        if not bind.running and not self.fenced:
            bind.start()

    async def _stop(self, bind: CarrierBind) -> None:
        await bind.stop(self.drain)
        bind.standby()

    async def _give_back(self, key: Key, bind: CarrierBind) -> None:
        if bind.running:
            await bind.stop(self.drain)
        bind.standby()
        await self._release([key])

    async def _release(self, keys: list[Key]) -> None:
        try:
            await self.leases.release_slots(keys)
        except Exception as exc:  # it lapses by itself within the lease
            log_event(log, "cluster.release_failed", logging.WARNING, error=repr(exc))

    def _log_failure(self, exc: Exception) -> None:
        now = self.monotonic()
        last = self._last_failure_log
        if last is not None and now - last < FAILURE_LOG_SECONDS:
            self._failures_unlogged += 1
            return
        log_event(
            log,
            "cluster.lease_failed",
            logging.WARNING,
            error=repr(exc),
            failures_since_last_log=self._failures_unlogged,
            detail=f"binds fence {self.lease_seconds * FENCE_AT:g} s after the last renewal",
        )
        self._last_failure_log = now
        self._failures_unlogged = 0

    # -- what /healthz shows -----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """This node's view of the cluster at its last round."""
        now = self.clock()
        last = self.last_round
        view = last.view if last is not None else ClusterView(now)
        mono = self.monotonic()
        nodes = []
        for n in view.nodes:
            slots = [
                (s, s.until)
                for s in view.slots
                if s.owner == n.node_id and s.until is not None and s.until > now
            ]
            nodes.append(
                {
                    "id": n.node_id,
                    "http": n.http,
                    "front": n.front,
                    "live": n.live(now),
                    "started_at": n.started_at,
                    "heartbeat_age": round(now - n.heartbeat_at, 3),
                    "binds": [
                        {
                            "carrier": s.carrier,
                            "slot": s.slot,
                            "held_for": round(now - (s.since or now), 3),
                            "lease_age": round(now - (until - self.lease_seconds), 3),
                            "expires_in": round(until - now, 3),
                        }
                        for s, until in slots
                    ],
                }
            )
        return {
            "node": self.node().node_id,
            "lease_seconds": self.lease_seconds,
            "fenced": self.fenced,
            "last_renewal_age": None if self.last_ok is None else round(mono - self.last_ok, 3),
            "rounds": self.stats.rounds,
            "failures": self.stats.failures,
            "fences": self.stats.fences,
            "held": sorted(f"{c}/{s}" for c, s in self.held),
            "nodes": nodes,
        }
