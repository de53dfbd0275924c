"""The PostgreSQL backend (``[store] backend = "postgresql"``): several nodes, one database.

What it keeps today (:data:`KEPT_PORTS`): new messages with their idempotent answers, the
message reads of the API (``get_message``, ``list_messages``, ``minute_counts``), the queue
(pending parts claimed with ``FOR UPDATE SKIP LOCKED``, attempts, outcomes through the pure
ledger), opt-outs, receipts, the callback outbox, the SMPP front's outbox and held parts and
its query/cancel/replace_sm; the campaign side: contacts, lists, imports, campaigns
(claimed by one node at a time, taken over from their cursor once a dead node's claim
lapses) and templates; MO (long MO parts, the interaction log with pending interactions
claimed as the queue is, ids in commit order, courtesy replies, survey answers, contact tags,
API inbound numbers), the interaction export's reads and marks, campaign reports and
digests, and short links with their clicks. The rest (:data:`MISSING_PORTS`) is still
SQLite's only, so a daemon refuses a PostgreSQL configuration (gateway.store.factory) until
every port is kept: a node must not start half-working.

- ``connect``: the pool (``dsn``, the password from ``password_file`` or ``PGPASSWORD``,
  ``pool_size``, ``statement_timeout``);
- ``migrations``: the versioned schema, applied under an advisory lock (``smsgw migrate``);
- ``store``: :class:`~gateway.store.postgres.store.PgStore`, the message side's ports kept;
- ``messages``: its mixin of message edits (cancel_sm, replace_sm, query_sm) and lists;
- ``watch``: the node's figures (``/metrics``) and the database's health (``/healthz``,
  refusals);
- ``retention``: the ``[retention]`` pruner on PostgreSQL;
- ``campaigns``: :class:`~gateway.store.postgres.campaigns.PgCampaignStore`, the campaign
  side (gateway.store.ports.CampaignSide) over PgStore's pool. Its campaign figures that
  read MO and clicks (``reply_figures``, ``campaign_clicks``, an audience of responders or
  clickers) read the inbound and links tables (migration 2);
- ``inbound`` and ``reports``: PgStore's mixins of MO, interactions and inbound numbers, and
  of the export and campaign reports;
- ``links``: :class:`~gateway.store.postgres.links.PgLinks`, short links on the store's pool.
"""

from __future__ import annotations

from typing import Final

KEPT_PORTS: Final = (
    "intake",
    "queue",
    "opt-outs",
    "receipts",
    "callbacks",
    "front",
    "message edits and lists",
    "contacts",
    "campaigns",
    "inbound",
    "reports",
    "links",
)
"""The ports the PostgreSQL backend keeps (names as in tests/store_contract)."""

MISSING_PORTS: Final = ()
"""The ports only SQLite keeps so far: the daemon names them when it refuses to start."""
