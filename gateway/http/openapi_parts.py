"""Pieces of the OpenAPI document that several route groups repeat."""

from __future__ import annotations

from typing import Any


def query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def limit_param(maximum: int, default: int) -> dict[str, Any]:
    """The ``limit`` query parameter of a paged list: items per page."""
    return query_param(
        "limit",
        "Items per page.",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    )
