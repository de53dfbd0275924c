"""Actions that answer the sender: ``reply``, ``send`` (a follow-up later) and ``help``."""

from __future__ import annotations

from gateway.inbound.actions.context import ActionContext, ActionResult
from gateway.inbound.templates import render


async def reply(ctx: ActionContext) -> ActionResult:
    """``reply`` and ``send``: ``text`` (a template) to the sender, ``delay`` seconds later."""
    action = ctx.action
    result = await ctx.replies.reply(render(action.text, ctx.fields), delay=action.delay)
    return result.as_json()


async def help_text(ctx: ActionContext) -> ActionResult:
    """``help``: the number's ``help_text``; transactional (sent to an opted-out sender)."""
    text = ctx.number.help_text if ctx.number is not None else ""
    if not text:
        return {"ok": False, "error": "the number has no help_text"}
    return (await ctx.replies.reply(render(text, ctx.fields), transactional=True)).as_json()
