"""``webhook``: the MO POSTed as JSON to a URL, through the callback outbox (signed with
``[inbound].webhook_signing_secrets``, retried as status callbacks are)."""

from __future__ import annotations

import json
from typing import Any

from gateway.inbound.actions.context import ActionContext, ActionResult
from gateway.inbound.message import InboundMessage
from gateway.reports.csvfile import iso_utc
from gateway.signing import WEBHOOK_SIGNER


async def webhook(ctx: ActionContext) -> ActionResult:
    services, url = ctx.services, ctx.action.url
    payload = webhook_payload(ctx.message)
    await services.store.enqueue_callbacks(
        [(url, json.dumps(payload))], services.clock(), signer=WEBHOOK_SIGNER
    )
    if services.notify_callbacks is not None:
        services.notify_callbacks()
    return {"ok": True, "url": url}


def webhook_payload(message: InboundMessage) -> dict[str, Any]:
    """What a ``webhook`` action POSTs. ``reply_path``: where a helpdesk answers."""
    return {
        "event": "mo",
        "interaction_id": message.id,
        "from": message.source,
        "to": message.destination,
        "text": message.text,
        "received_at": iso_utc(message.received_at),
        "keyword": message.keyword,
        "rule": message.rule,
        "campaign_id": message.campaign_id,
        "complete": message.complete,
        "reply_path": f"/v1/interactions/{message.id}/reply",
    }
