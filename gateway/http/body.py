"""Reading a request body as JSON, refusing everything else with a clear 4xx.

Size is bounded before we get here: aiohttp stops reading past ``client_max_size`` (the
``http.max_body_bytes`` setting) and the error middleware turns that into our 413.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, NoReturn

from aiohttp import web

from gateway.http.errors import INVALID_JSON, UNSUPPORTED_MEDIA_TYPE, ApiError

JSON_MEDIA_TYPE: Final = "application/json"

# A \uD800-\uDFFF escape in the raw text: the only way a JSON document decodes to a string
# that is not valid Unicode (a lone surrogate), which SQLite and UTF-8 could not take later.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _bad_json(message: str) -> ApiError:
    return ApiError(400, INVALID_JSON, message)


def _refuse_constant(name: str) -> NoReturn:
    raise _bad_json(f"the body is not valid JSON: {name} is not a JSON number")


_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)
"""What ``json.loads(text, parse_constant=...)`` builds anew for every call (it reuses its
default decoder only without arguments): one, made once."""


def _has_lone_surrogate(value: Any) -> bool:
    # Iterative: the document may be nested as deep as the decoder allowed.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_json_content_type(request: web.Request) -> None:
    """415 unless the body is declared as ``application/json`` (UTF-8, the only charset
    JSON allows on the wire, RFC 8259 section 8.1)."""
    if request.content_type != JSON_MEDIA_TYPE:
        raise ApiError(
            415,
            UNSUPPORTED_MEDIA_TYPE,
            f"send the body as {JSON_MEDIA_TYPE} (got {request.content_type})",
        )
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise ApiError(415, UNSUPPORTED_MEDIA_TYPE, f"the body must be UTF-8, not {charset}")


def parse_json(raw: bytes) -> Any:
    """The JSON value of ``raw``; ApiError 400 for anything that is not strict UTF-8 JSON
    (NaN and Infinity included) or is nested deeper than the decoder's recursion limit."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad_json(f"the body is not valid UTF-8 (bad byte at offset {exc.start})") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise _bad_json(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise _bad_json("the body is nested too deeply to be a request") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise _bad_json(f"the body is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise _bad_json("the body holds a \\u escape of a lone UTF-16 surrogate (not Unicode)")
    return value


async def read_body(request: web.Request) -> bytes:
    """The raw body of a JSON request (checked for its content type first)."""
    check_json_content_type(request)
    return await request.read()
