"""What ``GET /metrics`` shows: the gateway's counters turned into Prometheus families at
scrape time (see gateway.metrics for why nothing is a prometheus_client object on the hot
path). HTTP requests are counted by route and status class in
``gateway.http.request_metrics``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import Metric

from gateway.binds import BindState
from gateway.cluster import SlotKeeper
from gateway.metrics import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Histogram,
    histogram_family,
    status_class,
)
from gateway.smpp.constants import status_name
from gateway.store.health import REASONS, StoreHealth
from gateway.store.ports import StoreStats
from gateway.store.retention import Pruning

if TYPE_CHECKING:
    from gateway.app.daemon import Gateway


class RequestCounts(Protocol):
    """What the HTTP layer counts (``gateway.http.request_metrics.HttpMetrics``)."""

    @property
    def requests(self) -> Mapping[tuple[str, str, str], int]:
        """(route, method, status class "2xx") -> count."""

    @property
    def latency(self) -> Mapping[str, Histogram]:
        """route -> seconds."""


# Bind states as a gauge: one series per state, 1 for the current one.
_STATES = [s.value for s in BindState]


def gateway_metrics(gw: Gateway, http: RequestCounts) -> Iterable[Metric]:
    binds = gw.binds
    state = GaugeMetricFamily(
        "smsgw_bind_state", "1 for the state each bind is in.", labels=["carrier", "bind", "state"]
    )
    up = GaugeMetricFamily("smsgw_binds_up", "Binds bound, per carrier.", labels=["carrier"])
    window = GaugeMetricFamily(
        "smsgw_bind_window_in_use", "Requests in flight on the bind.", labels=["carrier", "bind"]
    )
    window_size = GaugeMetricFamily(
        "smsgw_bind_window_size", "The bind's window.", labels=["carrier", "bind"]
    )
    tps = GaugeMetricFamily(
        "smsgw_bind_submit_rate",
        "submit_sm per second achieved over the last few seconds.",
        labels=["carrier", "bind"],
    )
    connects = CounterMetricFamily(
        "smsgw_bind_connects", "TCP connections opened.", labels=["carrier", "bind"]
    )
    tls_failures = CounterMetricFamily(
        "smsgw_bind_tls_failures",
        "Connections whose TLS handshake failed or could not be set up (certificate refused,"
        " name mismatch, unreadable file).",
        labels=["carrier", "bind"],
    )
    sent = CounterMetricFamily(
        "smsgw_submit_sm", "submit_sm (and data_sm) sent.", labels=["carrier", "bind"]
    )
    responses = CounterMetricFamily(
        "smsgw_submit_sm_responses",
        "Responses to submit_sm by command_status.",
        labels=["carrier", "bind", "status", "class"],
    )
    timeouts = CounterMetricFamily(
        "smsgw_submit_sm_timeouts", "submit_sm with no response in time.", labels=["carrier"]
    )
    lost = CounterMetricFamily(
        "smsgw_submit_sm_lost_on_link_down",
        "submit_sm in flight when a link dropped (requeued, possible duplicates).",
        labels=["carrier"],
    )
    protocol = CounterMetricFamily(
        "smsgw_protocol_errors", "PDUs from the SMSC that could not be taken.", labels=["carrier"]
    )
    nacks = CounterMetricFamily(
        "smsgw_submit_sm_generic_nacks",
        "Requests the SMSC answered with generic_nack.",
        labels=["carrier"],
    )
    up_count: dict[str, int] = {}
    per_carrier: dict[str, list[int]] = {}
    for b in binds:
        carrier, name = b.carrier, b.name
        for s in _STATES:
            state.add_metric([carrier, name, s], 1.0 if b.state.value == s else 0.0)
        up_count[carrier] = up_count.get(carrier, 0) + (1 if b.bound else 0)
        conn = b.conn
        window.add_metric([carrier, name], float(conn.session.in_flight if conn else 0))
        window_size.add_metric([carrier, name], float(b.settings.session.window))
        m = b.metrics
        tps.add_metric([carrier, name], m.rate.rate())
        connects.add_metric([carrier, name], float(b.connects))
        tls_failures.add_metric([carrier, name], float(m.tls_failures))
        sent.add_metric([carrier, name], float(m.sent))
        for status, n in sorted(m.responses.items()):
            responses.add_metric(
                [carrier, name, status_name(status), status_class(status)], float(n)
            )
        # Per carrier: summed over its binds (one sample per label set).
        per = per_carrier.setdefault(carrier, [0, 0, 0, 0])
        per[0] += m.timeouts
        per[1] += m.lost
        per[2] += m.protocol_errors
        per[3] += m.generic_nacks
    for carrier, n in up_count.items():
        up.add_metric([carrier], float(n))
    for carrier, (n_timeouts, n_lost, n_protocol, n_nacks) in per_carrier.items():
        timeouts.add_metric([carrier], float(n_timeouts))
        lost.add_metric([carrier], float(n_lost))
        protocol.add_metric([carrier], float(n_protocol))
        nacks.add_metric([carrier], float(n_nacks))
    yield from (state, up, window, window_size, tps, connects, tls_failures, sent, responses)
    yield from (timeouts, lost, protocol, nacks)
    yield histogram_family(
        "smsgw_submit_sm_response_seconds",
        "Seconds from submit_sm on the wire to its response.",
        ["carrier", "bind"],
        (([b.carrier, b.name], b.metrics.latency) for b in binds),
    )

    depth = GaugeMetricFamily(
        "smsgw_queue_depth", "Parts waiting to be sent, per carrier.", labels=["carrier"]
    )
    for carrier, n in sorted(gw.dispatcher.queue_depth().items()):
        depth.add_metric([carrier], float(n))
    yield depth

    d = gw.dispatcher.stats
    outcomes = CounterMetricFamily(
        "smsgw_parts", "Outcomes of submit attempts, by kind.", labels=["outcome"]
    )
    for outcome, n in (
        ("submitted", d.submitted),
        ("retried", d.retried),
        ("rejected", d.rejected),
        ("failed", d.failed),
        ("expired", d.expired),
        ("timeout", d.timeouts),
        ("lost_on_link_down", d.lost_on_link_down),
        ("throttled", d.throttled),
        ("moved", d.moved),
    ):
        outcomes.add_metric([outcome], float(n))
    yield outcomes

    r = gw.dispatcher.receipts.stats
    receipts = CounterMetricFamily(
        "smsgw_receipts", "Delivery receipts read off the binds.", labels=["result"]
    )
    for result, n in (
        ("received", r.received),
        ("stored", r.stored),
        ("unparsable", r.unparsable),
        ("store_error", r.store_errors),
        ("refused_stopped", r.refused_stopped),
    ):
        receipts.add_metric([result], float(n))
    yield receipts
    correlated = CounterMetricFamily(
        "smsgw_receipts_correlated",
        "Receipts matched to a message, or still unmatched after their hold, per carrier.",
        labels=["carrier", "result"],
    )
    held = GaugeMetricFamily(
        "smsgw_receipts_held",
        "Receipts matching nothing yet, waiting for their submit_sm_resp.",
        labels=["carrier"],
    )
    no_receipt = CounterMetricFamily(
        "smsgw_messages_expired_no_receipt",
        "Messages given up as expired because their receipt never came.",
        labels=["carrier"],
    )
    for carrier, cr in sorted(gw.dispatcher.receipts.correlation.items()):
        correlated.add_metric([carrier, "matched"], float(cr.matched))
        correlated.add_metric([carrier, "unmatched"], float(cr.unmatched))
        held.add_metric([carrier], float(cr.held))
        no_receipt.add_metric([carrier], float(cr.expired_no_receipt))
    yield from (correlated, held, no_receipt)
    # smsgw_mo_total is the inbound service's (by number and keyword): one name, one family.
    mo = CounterMetricFamily(
        "smsgw_mo_deliver_sm",
        "deliver_sm MOs read off the binds: received, or refused (answered with an error).",
        labels=["result"],
    )
    mo.add_metric(["received"], float(r.mo_received))
    mo.add_metric(["refused"], float(r.mo_refused))
    yield mo

    c = gw.callbacks.stats
    callbacks = CounterMetricFamily(
        "smsgw_callbacks", "Status callbacks POSTed to clients.", labels=["result"]
    )
    callbacks.add_metric(["delivered"], float(c.delivered))
    callbacks.add_metric(["failed_attempt"], float(c.failed_attempts))
    callbacks.add_metric(["parked"], float(c.parked))
    yield callbacks
    lease = gw.lease.stats
    renewals = CounterMetricFamily(
        "smsgw_claim_renewals",
        "Renewals of this node's claims on stored work (gateway.lease).",
        labels=["result"],
    )
    renewals.add_metric(["ok"], float(lease.renewals))
    renewals.add_metric(["failed"], float(lease.failures))
    yield renewals
    yield GaugeMetricFamily(
        "smsgw_claims_held", "Rows this node held at its last claim renewal.", lease.held
    )
    taken = CounterMetricFamily(
        "smsgw_claims_taken_over",
        "Work another node held (its claim lapsed, or it gave it back at a clean stop)"
        " taken over while this node runs (gateway.takeover).",
        labels=["kind"],
    )
    for kind, count in gw.taken_over().items():
        taken.add_metric([kind], float(count))
    yield taken
    picked = CounterMetricFamily(
        "smsgw_messages_picked_up",
        "Messages no node held, taken up by this one: accepted on a node with no bind of"
        " their carrier.",
    )
    picked.add_metric([], float(gw.dispatcher.picked_up))
    yield picked
    yield CounterMetricFamily(
        "smsgw_messages_handed_back",
        "Messages given back to the nodes with a bind slot of their carrier (this node lost"
        " its last one).",
        value=float(gw.dispatcher.handed_back),
    )
    looks = CounterMetricFamily(
        "smsgw_takeover_looks",
        "Looks for work other nodes left, by kind and result (gateway.takeover).",
        labels=["kind", "result"],
    )
    t = gw.takeover.stats
    for kind, count in sorted(t.looks.items()):
        looks.add_metric([kind, "ok"], float(count - t.failures.get(kind, 0)))
        looks.add_metric([kind, "failed"], float(t.failures.get(kind, 0)))
    yield looks
    wakes = CounterMetricFamily(
        "smsgw_store_wakes",
        "Wakes heard from the store (PostgreSQL NOTIFY), by kind.",
        labels=["kind"],
    )
    for kind, count in sorted(t.wakes.items()):
        wakes.add_metric([kind], float(count))
    yield wakes

    yield from cluster_metrics(gw.slots)
    yield from store_metrics(gw.stores.stats)
    yield from store_health_metrics(gw.stores.health)
    yield from retention_metrics(gw.retention)

    requests = CounterMetricFamily(
        "smsgw_http_requests", "HTTP requests by route.", labels=["route", "method", "status"]
    )
    for (route, method, klass), n in sorted(http.requests.items()):
        requests.add_metric([route, method, klass], float(n))
    yield requests
    yield histogram_family(
        "smsgw_http_request_seconds",
        "Seconds to answer an HTTP request.",
        ["route"],
        (([route], hist) for route, hist in sorted(http.latency.items())),
    )


def store_metrics(stats: StoreStats) -> Iterable[Metric]:
    """What the store says of its own work (gateway.store.ports.StoreStats)."""
    f = stats.figures()
    yield CounterMetricFamily("smsgw_store_commits", "Store transactions committed.", f.commits)
    yield CounterMetricFamily(
        "smsgw_store_operations", "Store write operations committed.", f.operations
    )
    yield histogram_family(
        "smsgw_store_commit_seconds",
        "Seconds one group commit took (every write in it waited this long).",
        [],
        [([], f.commit_seconds)],
    )


def store_health_metrics(h: StoreHealth) -> Iterable[Metric]:
    """The store's state (gateway.store.health): why it is degraded, free space, refusals."""
    degraded = GaugeMetricFamily(
        "smsgw_store_degraded",
        "1 for each reason the store is degraded for (disk_low, disk_full, file_missing,"
        " file_replaced, db_replaced, db_read_only, db_unreachable, write_failed).",
        labels=["reason"],
    )
    for reason in REASONS:
        degraded.add_metric([reason], 1.0 if reason in h.reasons else 0.0)
    yield degraded
    yield GaugeMetricFamily(
        "smsgw_store_accepting", "1 when the store takes new work.", value=float(h.accepting)
    )
    yield GaugeMetricFamily(
        "smsgw_store_free_bytes",
        "Free bytes on the database's file system at the last check.",
        value=float(h.free_bytes or 0),
    )
    yield GaugeMetricFamily(
        "smsgw_store_min_free_bytes",
        "The free-space watermark under which new work is refused.",
        value=float(h.min_free_bytes),
    )
    yield GaugeMetricFamily(
        "smsgw_store_wal_bytes", "Size of the WAL file at the last check.", value=float(h.wal_bytes)
    )
    yield GaugeMetricFamily(
        "smsgw_store_file_bytes",
        "Size of the database file (the WAL aside) at the last check.",
        value=float(h.file_bytes),
    )
    refused = CounterMetricFamily(
        "smsgw_store_refused", "New work the store refused, by reason.", labels=["reason"]
    )
    for reason in REASONS:
        refused.add_metric([reason], float(h.refused.get(reason, 0)))
    yield refused
    yield CounterMetricFamily(
        "smsgw_store_space_checkpoints",
        "WAL checkpoints run because the WAL took too much of the space left.",
        value=float(h.checkpoints),
    )


def retention_metrics(r: Pruning) -> Iterable[Metric]:
    """What the pruner deleted (gateway.store.retention)."""
    deleted = CounterMetricFamily(
        "smsgw_retention_deleted",
        "Records deleted by retention, by kind (messages with their parts, receipts and"
        " history; unmatched receipts; idempotency answers; interactions; campaigns; imports).",
        labels=["kind"],
    )
    for kind, n in r.stats.deleted.items():
        deleted.add_metric([kind], float(n))
    yield deleted
    yield CounterMetricFamily(
        "smsgw_retention_rounds", "Pruning rounds completed.", value=float(r.stats.rounds)
    )
    yield CounterMetricFamily(
        "smsgw_retention_errors", "Pruning rounds that failed.", value=float(r.stats.errors)
    )
    yield CounterMetricFamily(
        "smsgw_retention_reclaimed_pages",
        "Free database pages given back to the file system (incremental vacuum).",
        value=float(r.stats.reclaimed_pages),
    )


def cluster_metrics(slots: SlotKeeper) -> Iterable[Metric]:
    """The bind-slot leases of this node (gateway.cluster)."""
    stats = slots.stats
    rounds = CounterMetricFamily(
        "smsgw_cluster_lease_rounds",
        "Lease rounds of this node (heartbeat and bind-slot leases, gateway.cluster).",
        labels=["result"],
    )
    rounds.add_metric(["ok"], float(stats.rounds))
    rounds.add_metric(["failed"], float(stats.failures))
    yield rounds
    yield CounterMetricFamily(
        "smsgw_cluster_fences",
        "Times this node unbound everything because it could not renew its leases in time.",
        float(stats.fences),
    )
    yield GaugeMetricFamily(
        "smsgw_cluster_fenced", "1 while this node is fenced.", float(slots.fenced)
    )
    moved = CounterMetricFamily(
        "smsgw_cluster_slots_moved",
        "Bind slots this node took, gave back (surplus) or found taken (should stay 0).",
        labels=["how"],
    )
    moved.add_metric(["taken"], float(stats.taken))
    moved.add_metric(["given_back"], float(stats.given_back))
    moved.add_metric(["lost"], float(stats.lost))
    yield moved
    held = GaugeMetricFamily(
        "smsgw_cluster_slots_held", "Bind slots this node holds, per carrier.", labels=["carrier"]
    )
    for carrier in slots.wanted():
        held.add_metric([carrier], float(sum(1 for c, _ in slots.held if c == carrier)))
    yield held
    last = slots.last_round
    yield GaugeMetricFamily(
        "smsgw_cluster_nodes_live",
        "Live nodes at this node's last lease round (this one included).",
        float(len(last.live) if last is not None else 0),
    )
