"""``opt_out`` (STOP, STOPALL ...) and ``opt_in`` (START, YES from an opted-out sender).

The opt-out is kept against the number as MTs give it in ``from`` (``replies.sender``), or
against every sender (``scope = "all"``); the dispatcher is told at once so that queued MTs
to the sender are not sent. The confirmation is transactional: it goes although the sender
is now opted out (carriers' codes of conduct ask for it)."""

from __future__ import annotations

from gateway.inbound.actions.context import ActionContext, ActionResult
from gateway.inbound.templates import render


async def opt_out(ctx: ActionContext) -> ActionResult:
    action, replies, services = ctx.action, ctx.replies, ctx.services
    source = ctx.message.source
    scope_all = action.scope == "all"
    sender = None if scope_all else replies.sender
    await services.store.add_opt_out(source, sender, "mo", services.clock())
    replies.opted_out = None  # changed: later replies ask the store
    outbound = services.outbox.outbound
    if outbound is not None:
        outbound.opt_out(source, sender)
    text = action.text
    if not text and ctx.number is not None:
        text = ctx.number.opt_out_all_reply if scope_all else ctx.number.opt_out_reply
    out: ActionResult = {"ok": True, "scope": action.scope}
    if text:
        sent = await replies.reply(render(text, ctx.fields), transactional=True)
        out["reply"] = sent.as_json()
    return out


async def opt_in(ctx: ActionContext) -> ActionResult:
    replies = ctx.replies
    await ctx.services.store.lift_opt_out(ctx.message.source, replies.sender)
    replies.opted_out = None  # changed: later replies ask the store
    text = ctx.action.text or (ctx.number.opt_in_reply if ctx.number is not None else "")
    out: ActionResult = {"ok": True}
    if text:
        sent = await replies.reply(render(text, ctx.fields), transactional=True)
        out["reply"] = sent.as_json()
    return out
