"""The OpenAPI description of ``/v1/callbacks`` (merged into :mod:`gateway.http.openapi`)."""

from __future__ import annotations

from typing import Any, Final

from gateway.http.callbacks import DEFAULT_LIMIT, MAX_LIMIT
from gateway.http.openapi_parts import limit_param, query_param


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


_ERRORS: Final = {
    "401": _error("No token, or not a valid one."),
    "500": _error("Internal error."),
    "503": _error("The store failed."),
}

CALLBACK_SCHEMAS: Final[dict[str, Any]] = {
    "Callback": {
        "type": "object",
        "required": [
            "id",
            "url",
            "state",
            "attempts",
            "next_at",
            "last_error",
            "created_at",
            "payload",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {
                "type": "integer",
                "minimum": 1,
                "description": "Its X-Smsgw-Callback-Id: never given to another callback.",
            },
            "url": {"type": "string"},
            "state": {
                "enum": ["parked", "pending"],
                "description": "parked: given up (every attempt failed, or the URL is not"
                " allowed); pending: waiting for its next attempt.",
            },
            "attempts": {"type": "integer", "minimum": 0},
            "next_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "The next attempt; null when parked.",
            },
            "last_error": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "payload": {"description": "The JSON body POSTed to the URL."},
        },
    },
    "CallbackPage": {
        "type": "object",
        "required": ["items", "next"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Callback"}},
            "next": {
                "type": ["string", "null"],
                "description": "Cursor of the next page (pass it as 'after'); null at the end.",
            },
        },
    },
    "CallbacksRetried": {
        "type": "object",
        "required": ["retried"],
        "additionalProperties": False,
        "properties": {
            "retried": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "description": "The callbacks re-armed: due now, with a new round of attempts.",
            }
        },
    },
}

CALLBACK_PATHS: Final[dict[str, Any]] = {
    "/v1/callbacks": {
        "get": {
            "operationId": "listCallbacks",
            "summary": "The status-callback outbox, oldest first: parked, pending or all.",
            "parameters": [
                query_param(
                    "state",
                    "parked: given up; pending: still being tried; all: both.",
                    {"enum": ["parked", "pending", "all"], "default": "all"},
                ),
                query_param(
                    "after",
                    "The 'next' cursor of the previous page (same state).",
                    {"type": "string", "pattern": "^[0-9]+$"},
                ),
                limit_param(MAX_LIMIT, DEFAULT_LIMIT),
            ],
            "responses": {
                "200": {"description": "A page.", "content": _json("CallbackPage")},
                "400": _error("A bad or unknown query parameter (each one listed in details)."),
                **_ERRORS,
            },
        }
    },
    "/v1/callbacks/retry": {
        "post": {
            "operationId": "retryParkedCallbacks",
            "summary": "Re-arm every parked callback: due now, with a new round of attempts.",
            "responses": {
                "200": {
                    "description": "The callbacks re-armed.",
                    "content": _json("CallbacksRetried"),
                },
                **_ERRORS,
            },
        }
    },
    "/v1/callbacks/{id}/retry": {
        "post": {
            "operationId": "retryCallback",
            "summary": "Re-arm one callback (parked or pending): due now, a new round of attempts.",
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "The callback re-armed.",
                    "content": _json("CallbacksRetried"),
                },
                "404": _error("No callback with this id (delivered callbacks are removed)."),
                **_ERRORS,
            },
        }
    },
}
