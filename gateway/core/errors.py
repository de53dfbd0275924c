"""The error values of the core that are not HTTP: one thing wrong with one field.

The HTTP layer (``gateway.http.errors``) turns a list of them into its 400 answer; the SMPP
front into a command_status; campaigns and imports into their own rows' errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    """One thing wrong with one field: ``path`` names it (``to``, ``messages[3].text``)."""

    path: str
    message: str
    index: int | None = None  # the item's position, in a batch

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.index is not None:
            out["index"] = self.index
        return out
