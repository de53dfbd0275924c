"""The OpenAPI description of ``/v1/interactions`` (merged into :mod:`gateway.http.openapi`)."""

from __future__ import annotations

from typing import Any, Final

from gateway.http.interactions import (
    CARE_STATES,
    DEFAULT_LIMIT,
    MAX_ASSIGNEE,
    MAX_EXPORT_IDS,
    MAX_FILTER,
    MAX_LIMIT,
)
from gateway.http.openapi_parts import limit_param, query_param
from gateway.reports.csvfile import COLUMNS


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_TEXT: Final = {"type": "string", "minLength": 1, "maxLength": MAX_FILTER}
_FILTERS: Final = [
    query_param("campaign_id", "Only interactions logged under this campaign.", _TEXT),
    query_param(
        "number", "Only MOs sent to this number of ours (short code or long number).", _TEXT
    ),
    query_param("source", "Only MOs from this subscriber (E.164 when numeric).", _TEXT),
]
_ERRORS: Final = {
    "400": _error("A bad or unknown query parameter (each one listed in details)."),
    "401": _error("No token, or not a valid one."),
    "500": _error("Internal error."),
    "503": _error("The store failed."),
}

INTERACTION_SCHEMAS: Final[dict[str, Any]] = {
    "InteractionEmailRequest": {
        "type": "object",
        "required": ["to"],
        "additionalProperties": False,
        "properties": {
            "to": {
                "type": "array",
                "minItems": 1,
                "maxItems": 5,
                "items": {"type": "string", "format": "email"},
            },
            "campaign_id": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_FILTER},
            "number": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_FILTER},
            "source": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_FILTER},
            "ids": {
                "type": ["array", "null"],
                "minItems": 1,
                "maxItems": MAX_EXPORT_IDS,
                "items": {"type": "integer", "minimum": 1},
            },
        },
    },
    "InteractionEmailSent": {
        "type": "object",
        "required": ["to", "rows", "truncated"],
        "additionalProperties": False,
        "properties": {
            "to": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "integer", "minimum": 0},
            "truncated": {"type": "boolean"},
        },
    },
    "Interaction": {
        "type": "object",
        "required": [
            "id",
            "source",
            "destination",
            "text",
            "received_at",
            "keyword",
            "campaign_id",
            "actions",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "source": {"type": "string", "description": "The subscriber who wrote."},
            "destination": {"type": "string", "description": "Our number written to."},
            "text": {"type": "string"},
            "received_at": {"type": "string", "format": "date-time"},
            "keyword": {"type": ["string", "null"], "description": "The keyword matched."},
            "campaign_id": {"type": ["string", "null"]},
            "actions": {
                "type": "array",
                "items": {"type": "object"},
                "description": "What was done, in order: one object per action, with its"
                " 'type' (reply, opt_out, tag ...) and its outcome.",
            },
            "rule": {"type": ["string", "null"], "description": "The rule that matched."},
            "state": {
                "enum": ["pending", "done", "quarantined"],
                "description": "pending until the actions have run; quarantined when its"
                " handling failed or did not finish [inbound].max_attempts times (see"
                " last_error; POST /v1/interactions/{id}/retry handles it again).",
            },
            "attempts": {
                "type": "integer",
                "minimum": 0,
                "description": "Handling attempts begun that did not finish.",
            },
            "last_error": {
                "type": ["string", "null"],
                "description": "Why the last attempt failed, or why it was quarantined.",
            },
            "carrier": {"type": "string"},
            "complete": {
                "type": "boolean",
                "description": "false for a long MO whose missing parts never came.",
            },
            "care_state": {
                "enum": list(CARE_STATES),
                "description": "Customer care, apart from state: open (every MO starts so),"
                " answered (a helpdesk reply went), closed (PATCH).",
            },
            "assignee": {
                "type": ["string", "null"],
                "description": "Who in customer care handles it (PATCH).",
            },
        },
    },
    "InteractionPage": {
        "type": "object",
        "required": ["items", "next"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Interaction"}},
            "next": {
                "type": ["string", "null"],
                "description": "Cursor of the next page (pass it as 'after'); null at the end.",
            },
        },
    },
}

_ID: Final = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

INTERACTION_SCHEMAS["ThreadItem"] = {
    "type": "object",
    "required": [
        "type",
        "at",
        "from",
        "to",
        "text",
        "interaction_id",
        "reply",
        "interaction",
        "message",
    ],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["mo", "mt"], "description": "mo: from the subscriber; mt: to them."},
        "at": {
            "type": "string",
            "format": "date-time",
            "description": "An MO's reception, an MT's creation.",
        },
        "from": {"type": "string"},
        "to": {"type": "string"},
        "text": {"type": ["string", "null"]},
        "interaction_id": {
            "type": ["integer", "null"],
            "description": "The MO, or the MO an MT answered; null for another MT.",
        },
        "reply": {
            "enum": ["auto", "helpdesk", None],
            "description": "An MT sent for an MO: by its actions (auto) or through"
            " POST /v1/interactions/{id}/reply (helpdesk).",
        },
        "interaction": {
            "oneOf": [{"$ref": "#/components/schemas/Interaction"}, {"type": "null"}],
            "description": "An MO's interaction (state, care_state, assignee ...).",
        },
        "message": {
            "oneOf": [{"$ref": "#/components/schemas/MessageItem"}, {"type": "null"}],
            "description": "An MT's message, with its delivery status.",
        },
    },
}
_THREAD_PROPERTIES = {
    **INTERACTION_SCHEMAS["Interaction"]["properties"],
    "thread": {
        "type": "array",
        "items": {"$ref": "#/components/schemas/ThreadItem"},
        "description": "The MO, then the messages sent for it, oldest first.",
    },
}
INTERACTION_SCHEMAS["InteractionThread"] = {
    **INTERACTION_SCHEMAS["Interaction"],
    "required": [*INTERACTION_SCHEMAS["Interaction"]["required"], "thread"],
    "properties": _THREAD_PROPERTIES,
}
INTERACTION_SCHEMAS["Conversation"] = {
    "type": "object",
    "required": ["number", "items", "next"],
    "additionalProperties": False,
    "properties": {
        "number": {"type": "string"},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/ThreadItem"}},
        "next": {
            "type": ["string", "null"],
            "description": "Cursor of the next page (pass it as 'after'); null at the end.",
        },
    },
}

INTERACTION_PATHS: Final[dict[str, Any]] = {
    "/v1/interactions/{id}": {
        "get": {
            "operationId": "getInteraction",
            "summary": "An interaction with its thread (the MO, its auto- and helpdesk replies"
            " with their delivery status).",
            "parameters": [_ID],
            "responses": {
                "200": {
                    "description": "The interaction and its thread.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/InteractionThread"}
                        }
                    },
                },
                "404": _error("No such interaction."),
                **_ERRORS,
            },
        },
        "patch": {
            "operationId": "updateInteractionCare",
            "summary": "Set customer care: care_state (open, answered, closed), assignee.",
            "parameters": [_ID],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "minProperties": 1,
                            "properties": {
                                "care_state": {"enum": list(CARE_STATES)},
                                "assignee": {
                                    "type": ["string", "null"],
                                    "minLength": 1,
                                    "maxLength": MAX_ASSIGNEE,
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The interaction as it now is.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Interaction"}}
                    },
                },
                "404": _error("No such interaction."),
                "413": _error("The body is too large."),
                "415": _error("The body is not JSON."),
                **_ERRORS,
            },
        },
    },
    "/v1/conversations": {
        "get": {
            "operationId": "getConversation",
            "summary": "A subscriber's thread across campaigns: every MO from and MT to a"
            " number, by time, a page at a time (keyset cursor).",
            "parameters": [
                {
                    "name": "number",
                    "in": "query",
                    "required": True,
                    "description": "The subscriber (E.164 when numeric).",
                    "schema": _TEXT,
                },
                query_param(
                    "after",
                    "The 'next' cursor of the previous page (same number and order).",
                    {"type": "string", "pattern": "^([0-9]+|-)\\.([0-9a-f]{26}|-)$"},
                ),
                limit_param(MAX_LIMIT, DEFAULT_LIMIT),
                query_param(
                    "order",
                    "asc: oldest first (a chat); desc: newest first.",
                    {"enum": ["asc", "desc"], "default": "asc"},
                ),
            ],
            "responses": {
                "200": {
                    "description": "A page.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/Conversation"}
                        }
                    },
                },
                **_ERRORS,
            },
        }
    },
    "/v1/interactions/email": {
        "post": {
            "operationId": "emailInteractions",
            "summary": "E-mail the interactions selected (filters and/or ids) as the export's"
            " CSV, attached, through the digest's SMTP settings ([digest.smtp]).",
            "description": "At most 50,000 rows are attached, oldest first (truncated then"
            " says so); the export has them all.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/InteractionEmailRequest"}
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The mail server took the e-mail.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/InteractionEmailSent"}
                        }
                    },
                },
                "400": _error("Field errors (all of them) or a body that is not JSON."),
                "401": _error("No token, or not a valid one."),
                "413": _error("The body is larger than the gateway's http.max_body_bytes."),
                "415": _error("The body is not application/json."),
                "500": _error("Internal error."),
                "502": _error("The mail server did not take the e-mail (email_failed)."),
                "503": _error(
                    "The store failed, or no [digest] section gives SMTP settings"
                    " (email_unavailable)."
                ),
            },
        }
    },
    "/v1/interactions": {
        "get": {
            "operationId": "listInteractions",
            "summary": "The MO log, a page at a time (keyset cursor).",
            "parameters": [
                *_FILTERS,
                query_param(
                    "after",
                    "The 'next' cursor of the previous page (same filters and order).",
                    {"type": "string", "pattern": "^[0-9]+$"},
                ),
                limit_param(MAX_LIMIT, DEFAULT_LIMIT),
                query_param(
                    "order",
                    "desc: newest first; asc: oldest first.",
                    {"enum": ["desc", "asc"], "default": "desc"},
                ),
                query_param(
                    "state",
                    "Only interactions in this state (quarantined: the dead letters).",
                    {"enum": ["pending", "done", "quarantined"]},
                ),
            ],
            "responses": {
                "200": {
                    "description": "A page.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/InteractionPage"}
                        }
                    },
                },
                **_ERRORS,
            },
        }
    },
    "/v1/interactions/{id}/retry": {
        "post": {
            "operationId": "retryInteraction",
            "summary": "Handle a quarantined interaction again (pending, attempts reset).",
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                }
            ],
            "responses": {
                "202": {
                    "description": "Pending again; the inbound service handles it.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Interaction"}}
                    },
                },
                "404": _error("No such interaction."),
                "409": _error("The interaction is not quarantined."),
                **_ERRORS,
            },
        }
    },
    "/v1/interactions/export.csv": {
        "get": {
            "operationId": "exportInteractions",
            "summary": "The MO log as CSV, streamed: all, new since the last export, or ids.",
            "description": "UTF-8 with a byte order mark (Excel needs it to read UTF-8; bom=0"
            " leaves it out), comma-separated, CRLF. Columns: " + ", ".join(COLUMNS) + ", then the"
            " sender's contact: name and one attr.<key> column per attribute key of the exported"
            " senders' contacts (at most 100; the rest as JSON in other_attributes). A cell"
            " starting with = + - @ tab or CR gets a leading apostrophe (formula injection)."
            " new=1 exports what this token has not exported yet with the same filters; the"
            " mark moves only once the file was written to the end.",
            "parameters": [
                *_FILTERS,
                query_param(
                    "new",
                    "1: only interactions not yet exported in this scope (token and filters).",
                    {"enum": ["0", "1"], "default": "0"},
                ),
                query_param(
                    "ids",
                    f"Comma-separated interaction ids (at most {MAX_EXPORT_IDS}); not with new=1.",
                    {"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"},
                ),
                query_param(
                    "bom",
                    "0 leaves out the UTF-8 byte order mark.",
                    {"enum": ["0", "1"], "default": "1"},
                ),
            ],
            "responses": {
                "200": {
                    "description": "The CSV file (Content-Disposition: attachment).",
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
                **_ERRORS,
            },
        }
    },
}
