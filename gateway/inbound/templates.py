"""Reply templates: ``{field}`` replaced by a contact's fields. Pure code.

Only ``{name}`` placeholders (letters, digits, _) are replaced; ``{{`` and ``}}`` give a
brace. No format specs, no attribute or index access (``str.format`` would let a template
reach into objects). A field the contact does not have renders empty.

Fields: ``number`` (the subscriber's), ``name``, ``first_name`` and ``last_name`` (from the
name: first word, the rest), and every attribute of the contact (an attribute named like a
derived field wins: a ``first_name`` attribute is used as is).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from gateway.store.base import Contact

_PLACEHOLDER: Final = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, fields: Mapping[str, Any]) -> str:
    def substitute(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        value = fields.get(m.group(1))
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(substitute, template)


def placeholders(template: str) -> list[str]:
    """The field names a template uses."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def contact_fields(number: str, contact: Contact | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": "", "first_name": "", "last_name": ""}
    if contact is not None:
        name = " ".join(contact.name.split())
        first, _, last = name.partition(" ")
        fields.update(name=name, first_name=first, last_name=last)
        fields.update(contact.attributes)
    fields["number"] = number
    return fields
