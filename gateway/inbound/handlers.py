"""Python handlers named in the configuration as ``package.module:function``.

A handler is an ``async def handler(message, contact, campaign, reply)``: the
:class:`~gateway.inbound.service.InboundMessage`, the sender's
:class:`~gateway.store.base.Contact` (None when unknown), the campaign (None until campaigns
exist) and a :class:`~gateway.inbound.replies.ReplyApi`. What it returns (a string or a
JSON-able value) is logged with the interaction. It is imported when the configuration is
loaded, so a typo stops the daemon from starting instead of failing on the first MO.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

Handler = Callable[[Any, Any, Any, Any], Awaitable[object]]

_SPEC: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


class HandlerError(ValueError):
    """A handler name that does not lead to a usable async function."""


def resolve_handler(spec: str) -> Handler:
    """The function ``spec`` names; HandlerError saying why not."""
    if not _SPEC.fullmatch(spec):
        raise HandlerError(f"must be 'package.module:function', got {spec!r}")
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error at import is the handler's problem to report
        raise HandlerError(f"cannot import {module_name!r}: {exc!r}") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise HandlerError(f"module {module_name!r} has no attribute {name!r}")
    if not inspect.iscoroutinefunction(fn):
        raise HandlerError(f"{spec} must be an async function (async def)")
    try:
        inspect.signature(fn).bind(None, None, None, None)
    except TypeError:
        raise HandlerError(
            f"{spec} must take four arguments: (message, contact, campaign, reply)"
        ) from None
    handler: Handler = fn
    return handler
