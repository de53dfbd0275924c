"""``tag``: add a tag to the sender's contact (created when unknown)."""

from __future__ import annotations

from gateway.inbound.actions.context import ActionContext, ActionResult


async def tag(ctx: ActionContext) -> ActionResult:
    services = ctx.services
    await services.store.tag_contact(ctx.message.source, [ctx.action.tag], services.clock())
    return {"ok": True, "tag": ctx.action.tag}
