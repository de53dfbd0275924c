"""The front's Prometheus families, built at scrape time from its counters."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client.core import Metric

from gateway.front.server import FrontServer
from gateway.metrics import CounterMetricFamily, GaugeMetricFamily
from gateway.smpp.constants import status_name
from gateway.smpp.session import BindType


def front_metrics(front: FrontServer) -> Iterable[Metric]:
    binds = GaugeMetricFamily(
        "smsgw_front_binds", "Upstream binds, per account and type.", labels=["account", "type"]
    )
    submits = CounterMetricFamily(
        "smsgw_front_submit_sm",
        "submit_sm from upstream answered, by command_status.",
        labels=["account", "status"],
    )
    delivered = CounterMetricFamily(
        "smsgw_front_deliver_sm",
        "deliver_sm sent to upstream accounts (first attempts and retries).",
        labels=["account", "kind"],
    )
    failed = CounterMetricFamily(
        "smsgw_front_deliver_sm_failed",
        "deliver_sm answered with an error or not answered in time (retried).",
        labels=["account"],
    )
    held = GaugeMetricFamily(
        "smsgw_front_held", "Receipts and MO waiting for the account.", labels=["account"]
    )
    expired = CounterMetricFamily(
        "smsgw_front_expired",
        "Receipts and MO dropped after hold_max_age without a receiver.",
        labels=["account"],
    )
    refused = CounterMetricFamily(
        "smsgw_front_bind_refused",
        "Binds refused, by the command_status of the bind_resp.",
        labels=["account", "status"],
    )
    failures = CounterMetricFamily(
        "smsgw_front_bind_failures",
        "Failed binds the brute-force guard counts: wrong password, unknown system_id"
        " (and, with hide_unknown_system_id, an address the account does not allow).",
        labels=["reason"],
    )
    for reason in sorted({"password", "system_id", *front.bind_failures}):
        failures.add_metric([reason], front.bind_failures[reason])
    locked_out = CounterMetricFamily(
        "smsgw_front_bind_locked_out",
        "Binds refused unread because their address or system_id is locked out.",
        labels=["scope"],
    )
    lockouts = CounterMetricFamily(
        "smsgw_front_bind_lockouts",
        "Lockouts started after too many failed binds.",
        labels=["scope"],
    )
    locked = GaugeMetricFamily(
        "smsgw_front_bind_locked",
        "Client addresses and system_ids locked out now.",
        labels=["scope"],
    )
    started = front.guard.lockouts()
    now_locked = front.guard.locked_count(time.monotonic())  # the event loop's clock
    for scope in ("address", "system_id"):
        locked_out.add_metric([scope], front.bind_locked_out[scope])
        lockouts.add_metric([scope], started[scope])
        locked.add_metric([scope], now_locked[scope])
    suppressed = CounterMetricFamily(
        "smsgw_front_refusal_logs_suppressed",
        "front.rejected / front.bind_refused / front.accept_failed lines left out by the log"
        " rate limit.",
    )
    suppressed.add_metric([], front.refusals.suppressed_total)
    accept_failed = CounterMetricFamily(
        "smsgw_front_accept_failed",
        "submit_sm / data_sm answered ESME_RSYSERR because the store refused their commit"
        " (short of space, file gone, I/O error), by error type.",
        labels=["error"],
    )
    for error, count in sorted(front.accept_failed.items()):
        accept_failed.add_metric([error], count)
    incomplete = CounterMetricFamily(
        "smsgw_front_incomplete",
        "Long messages sent with parts missing after reassembly_timeout.",
        labels=["account"],
    )
    parts_refused = CounterMetricFamily(
        "smsgw_front_parts_refused",
        "Parts answered ROK whose joined message was refused (each receipted REJECTD).",
        labels=["account"],
    )
    requests = CounterMetricFamily(
        "smsgw_front_requests",
        "query_sm, cancel_sm and replace_sm answered, by command_status.",
        labels=["account", "command", "status"],
    )
    for name, account in front.accounts.items():
        for (command, status), count in sorted(account.stats.requests.items()):
            requests.add_metric([name, command, status_name(status)], count)
        for status, count in sorted(account.stats.bind_refused.items()):
            refused.add_metric([name, status_name(status)], count)
        for bind_type in BindType:
            count = sum(1 for b in account.binds if b.bind_type is bind_type)
            binds.add_metric([name, bind_type.value], count)
        for status, count in sorted(account.stats.submit_sm.items()):
            submits.add_metric([name, status_name(status)], count)
        delivered.add_metric([name, "receipt"], account.stats.receipts_sent)
        delivered.add_metric([name, "mo"], account.stats.mo_sent)
        failed.add_metric([name], account.stats.deliver_failed)
        held.add_metric([name], account.held)
        expired.add_metric([name], account.stats.expired)
        incomplete.add_metric([name], account.stats.incomplete)
        parts_refused.add_metric([name], account.stats.parts_refused)
    return [
        binds,
        submits,
        delivered,
        failed,
        held,
        expired,
        refused,
        failures,
        locked_out,
        lockouts,
        locked,
        suppressed,
        accept_failed,
        incomplete,
        parts_refused,
        requests,
    ]
