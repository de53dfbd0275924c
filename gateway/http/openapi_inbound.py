"""OpenAPI paths of the inbound routes (merged into gateway.http.openapi's document)."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


_AUTH = {
    "401": _error("No or bad bearer token."),
    "500": _error("Internal error."),
    "503": _error("The store failed."),
}
_BODY = {
    "413": _error("The body is too large."),
    "415": _error("The body is not JSON (Content-Type) or not UTF-8."),
}

_ACTION: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {
            "enum": [
                "reply",
                "send",
                "opt_out",
                "opt_in",
                "help",
                "tag",
                "answer",
                "webhook",
                "handler",
            ]
        },
        "text": {"type": "string", "description": "reply, send, opt_out, opt_in: a template"},
        "delay": {"type": "number", "description": "send: seconds from now"},
        "scope": {"enum": ["number", "all"], "description": "opt_out"},
        "tag": {"type": "string"},
        "question": {"type": "string", "description": "answer: the survey question's name"},
        "url": {"type": "string", "description": "webhook: JSON POST, retried"},
        "handler": {"type": "string", "description": "handler: package.module:function"},
    },
}

_RULE: dict[str, Any] = {
    "type": "object",
    "required": ["name", "actions"],
    "properties": {
        "name": {"type": "string"},
        "keyword": {"type": "string", "description": "first word; case and accents ignored"},
        "aliases": {"type": "array", "items": {"type": "string"}},
        "patterns": {"type": "array", "items": {"type": "string"}},
        "campaign_id": {"type": ["string", "null"]},
        "actions": {"type": "array", "items": _ACTION, "minItems": 1},
    },
}

_NUMBER_SETTINGS: dict[str, Any] = {
    "aliases": {"type": "array", "items": {"type": "string"}},
    "keywords": {"type": "array", "items": _RULE},
    "courtesy_reply": {"type": ["string", "null"]},
    "help_text": {"type": "string"},
    "opt_out_reply": {"type": "string"},
    "opt_out_all_reply": {"type": "string"},
    "opt_in_reply": {"type": "string"},
    "opt_out_keywords": {"type": "array", "items": {"type": "string"}},
    "opt_in_keywords": {"type": "array", "items": {"type": "string"}},
    "help_keywords": {"type": "array", "items": {"type": "string"}},
}

_NUMBER: dict[str, Any] = {
    "type": "object",
    "required": ["number", "source", "keywords", "courtesy_reply"],
    "properties": {
        "number": {"type": "string"},
        "source": {"enum": ["config", "api"]},
        **_NUMBER_SETTINGS,
    },
}

_NUMBER_PARAM = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def inbound_paths() -> dict[str, Any]:
    return {
        "/v1/numbers": {
            "get": {
                "operationId": "listNumbers",
                "summary": "Every inbound number, those of the configuration file included.",
                "responses": {
                    "200": {
                        "description": "The numbers.",
                        "content": _json(
                            {
                                "type": "object",
                                "required": ["items"],
                                "properties": {"items": {"type": "array", "items": _NUMBER}},
                            }
                        ),
                    },
                    **_AUTH,
                },
            }
        },
        "/v1/numbers/{number}": {
            "get": {
                "operationId": "getNumber",
                "summary": "One inbound number.",
                "parameters": [_NUMBER_PARAM],
                "responses": {
                    "200": {"description": "The number.", "content": _json(_NUMBER)},
                    **_AUTH,
                    "404": _error("Not one of our numbers."),
                },
            },
            "put": {
                "operationId": "putNumber",
                "summary": "Create or replace a number managed over the API.",
                "parameters": [_NUMBER_PARAM],
                "requestBody": {
                    "required": True,
                    "content": _json({"type": "object", "properties": _NUMBER_SETTINGS}),
                },
                "responses": {
                    "200": {"description": "The number as stored.", "content": _json(_NUMBER)},
                    "400": _error("Invalid settings; every problem in details."),
                    **_AUTH,
                    **_BODY,
                    "409": _error("The number is in the configuration file."),
                },
            },
            "delete": {
                "operationId": "deleteNumber",
                "summary": "Remove a number managed over the API.",
                "parameters": [_NUMBER_PARAM],
                "responses": {
                    "204": {"description": "Removed."},
                    **_AUTH,
                    "404": _error("Not one of our numbers."),
                    "409": _error("The number is in the configuration file."),
                },
            },
        },
        "/v1/interactions/{id}/reply": {
            "post": {
                "operationId": "replyToInteraction",
                "summary": "A helpdesk answer: an SMS to the MO's sender from the number it"
                " was written to, through the durable outbound path.",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "type": "object",
                            "required": ["text"],
                            "additionalProperties": False,
                            "properties": {"text": {"type": "string", "minLength": 1}},
                        }
                    ),
                },
                "responses": {
                    "202": {
                        "description": "Accepted (stored durably).",
                        "content": _json(
                            {
                                "type": "object",
                                "required": ["id", "interaction_id", "to", "from", "status"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "interaction_id": {"type": "integer"},
                                    "to": {"type": "string"},
                                    "from": {"type": "string"},
                                    "status": {"const": "accepted"},
                                },
                            }
                        ),
                    },
                    "400": _error("Invalid request."),
                    **_AUTH,
                    **_BODY,
                    "404": _error("No such interaction."),
                    "422": _error("The sender opted out of this number."),
                },
            }
        },
    }
