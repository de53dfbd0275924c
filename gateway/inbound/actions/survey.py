"""``answer``: the MO recorded as the answer to a survey question."""

from __future__ import annotations

from gateway.inbound.actions.context import ActionContext, ActionResult
from gateway.inbound.keywords import KeywordRule, fold_word, parse_answer
from gateway.store.base import SurveyAnswer


async def answer(ctx: ActionContext) -> ActionResult:
    message, question = ctx.message, ctx.action.question
    value, kind = survey_answer(message.text, ctx.found.rule)
    await ctx.services.store.record_answer(
        SurveyAnswer(
            interaction_id=message.id,
            number=message.destination,
            source=message.source,
            question=question,
            answer=value,
            kind=kind,
            at=ctx.services.clock(),
            campaign_id=ctx.campaign.id if ctx.campaign else None,
        )
    )
    return {"ok": True, "question": question, "answer": value, "kind": kind}


def survey_answer(text: str, rule: KeywordRule) -> tuple[str, str]:
    """The answer an MO gives: its first word when that is one ("YES", "no thanks", "3"),
    else what follows the rule's keyword ("VOTE 3" -> "3"), else the first word as text."""
    value, kind = parse_answer(text)
    if kind != "text":
        return value, kind
    head, _, rest = text.strip().partition(" ")
    if rule.words and fold_word(head) in rule.words and rest.strip():
        return parse_answer(rest)
    return value, kind
