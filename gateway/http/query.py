"""Query-string parameters read the same way by every list route."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.errors import FieldError


def query_int(
    query: Mapping[str, str], name: str, low: int, high: int | None, errors: list[FieldError]
) -> int | None:
    """``name`` as an integer in ``low..high`` (no upper bound when ``high`` is None), or
    None when absent; a bad value adds a field error and gives None."""
    value = query.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if number < low or (high is not None and number > high):
        top = f"..{high}" if high is not None else " or more"
        errors.append(FieldError(f"query.{name}", f"must be an integer {low}{top}"))
        return None
    return number
