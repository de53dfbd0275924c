"""The OpenAPI 3.1 document of the whole HTTP API, served at ``/v1/openapi.json``.

Built as plain data next to the code it describes; ``tests/test_api_openapi.py`` keeps it
true: the document is a valid OpenAPI 3.1 description, every route of the app is in it and
nothing else is, and the answers the tests get match the response schemas given here.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from gateway.core import validation as check
from gateway.core.intake import FIELDS
from gateway.core.model import MessageStatus
from gateway.http import message_list, openapi_campaigns
from gateway.http.auth import ROUTE_SCOPES
from gateway.http.errors import ERROR_CODES
from gateway.http.messages import (
    IDEMPOTENCY_HEADER,
    MAX_BATCH,
    MAX_IDEMPOTENCY_KEY,
    REPLAYED_HEADER,
)
from gateway.http.openapi_callbacks import CALLBACK_PATHS, CALLBACK_SCHEMAS
from gateway.http.openapi_inbound import inbound_paths
from gateway.http.openapi_interactions import INTERACTION_PATHS, INTERACTION_SCHEMAS

OPENAPI_VERSION: Final = "3.1.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("Error"))}


def _nullable(schema_type: str, **extra: Any) -> dict[str, Any]:
    return {"type": [schema_type, "null"], **extra}


_STATUSES: Final = [s.value for s in MessageStatus]
_ENCODINGS: Final = ["gsm7", "ucs2", "latin1"]

_MESSAGE_REQUEST: Final = {
    "type": "object",
    "description": "One message. Optional fields may also be null, which means left out.",
    "required": ["to", "from", "text"],
    "additionalProperties": False,
    "properties": {
        "to": {
            "type": "string",
            "description": "Destination phone number: international ('+' and the country"
            " code), or national when the gateway has a default region. Answered in E.164.",
            "examples": ["+33612345678"],
        },
        "from": {
            "type": "string",
            "description": "Sender: a short code (3-8 digits), a phone number (normalised to"
            " E.164) or an alphanumeric id (1-11 of A-Z a-z 0-9 and space, with a letter).",
            "examples": ["ACME", "36180", "+447700900123"],
        },
        "text": {"type": "string", "minLength": 1},
        "client_ref": _nullable(
            "string",
            minLength=1,
            maxLength=check.MAX_CLIENT_REF,
            description="Your reference, returned in GET and callbacks.",
        ),
        "callback_url": _nullable(
            "string",
            format="uri",
            maxLength=check.MAX_URL,
            description="http(s) URL that receives status changes (POST, JSON), signed"
            " with X-Smsgw-Signature when the account has signing secrets.",
        ),
        "validity": _nullable(
            "integer",
            minimum=check.MIN_VALIDITY,
            maximum=check.MAX_VALIDITY,
            description="Seconds the message may wait to be sent (from scheduled_at when"
            " set); the gateway's default when left out.",
        ),
        "scheduled_at": {
            "description": "Send no earlier than this: ISO-8601 with a UTC offset, or epoch"
            " seconds; at most a year ahead. A past time means now.",
            "oneOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number"},
                {"type": "null"},
            ],
        },
        "priority": _nullable(
            "integer",
            minimum=0,
            maximum=check.MAX_PRIORITY,
            default=0,
            description="Higher is sent first.",
        ),
        "encoding": _nullable(
            "string",
            enum=[*check.ENCODINGS, None],
            default="auto",
            description="auto picks gsm7, else latin1 where the carrier takes it, else ucs2.",
        ),
        "campaign_id": _nullable("string", minLength=1, maxLength=check.MAX_CAMPAIGN_ID),
    },
}
assert set(_MESSAGE_REQUEST["properties"]) == FIELDS  # type: ignore[call-overload]

_SCHEMAS: Final[dict[str, Any]] = {
    "MessageRequest": _MESSAGE_REQUEST,
    "BatchRequest": {
        "type": "object",
        "required": ["messages"],
        "additionalProperties": False,
        "properties": {
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": _ref("MessageRequest"),
            }
        },
    },
    "MessageAccepted": {
        "type": "object",
        "required": ["id", "status", "parts", "encoding", "to"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{26}$"},
            "status": {"const": "accepted"},
            "parts": {"type": "integer", "minimum": 1, "description": "PDUs to send."},
            "encoding": {"enum": _ENCODINGS},
            "to": {"type": "string", "description": "The destination in E.164."},
        },
    },
    "BatchAccepted": {
        "type": "object",
        "required": ["messages"],
        "additionalProperties": False,
        "properties": {
            "messages": {
                "type": "array",
                "items": _ref("MessageAccepted"),
                "description": "One answer per message, in the order of the request.",
            }
        },
    },
    "Part": {
        "type": "object",
        "required": ["part", "status", "carrier", "carrier_message_id", "attempts", "error"],
        "additionalProperties": False,
        "properties": {
            "part": {"type": "integer", "minimum": 1},
            "status": {"type": "string", "examples": _STATUSES},
            "carrier": _nullable("string"),
            "carrier_message_id": _nullable("string"),
            "attempts": {"type": "integer", "minimum": 0},
            "error": _nullable("string"),
        },
    },
    "HistoryEntry": {
        "type": "object",
        "required": ["at", "status", "part"],
        "additionalProperties": True,
        "description": "A status change; further fields (carrier, error ...) as recorded.",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "status": {"type": "string", "examples": _STATUSES},
            "part": _nullable("integer", minimum=1),
        },
    },
    "Message": {
        "type": "object",
        "required": [
            "id",
            "status",
            "to",
            "from",
            "encoding",
            "carrier",
            "client_ref",
            "campaign_id",
            "possible_duplicate",
            "error",
            "created_at",
            "parts",
            "history",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": _STATUSES},
            "to": {"type": "string"},
            "from": {"type": "string"},
            "encoding": {"enum": _ENCODINGS},
            "carrier": _nullable("string"),
            "client_ref": _nullable("string"),
            "campaign_id": _nullable("string"),
            "possible_duplicate": {
                "type": "boolean",
                "description": "A part may have reached the carrier twice (no answer to a"
                " submit before a retry).",
            },
            "error": _nullable("string"),
            "created_at": {"type": "string", "format": "date-time"},
            "parts": {"type": "array", "items": _ref("Part")},
            "history": {"type": "array", "items": _ref("HistoryEntry")},
        },
    },
    "MessageItem": {
        "type": "object",
        "required": [
            "id",
            "status",
            "to",
            "from",
            "encoding",
            "parts",
            "carrier",
            "client_ref",
            "campaign_id",
            "possible_duplicate",
            "error",
            "created_at",
            "updated_at",
        ],
        "additionalProperties": False,
        "description": "A message's fate without its parts and history (GET"
        " /v1/messages/{id} has them).",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{26}$"},
            "status": {"enum": _STATUSES},
            "to": {"type": "string"},
            "from": {"type": "string"},
            "encoding": {"enum": _ENCODINGS},
            "parts": {"type": "integer", "minimum": 1, "description": "PDUs it takes."},
            "carrier": _nullable("string"),
            "client_ref": _nullable("string"),
            "campaign_id": _nullable("string"),
            "possible_duplicate": {"type": "boolean"},
            "error": _nullable("string"),
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {
                "type": "string",
                "format": "date-time",
                "description": "Its last status change.",
            },
        },
    },
    "MessagePage": {
        "type": "object",
        "required": ["items", "next"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": _ref("MessageItem")},
            "next": {
                "type": ["string", "null"],
                "description": "Cursor of the next page (pass it as 'after' with the same"
                " filters and order); null on the last page.",
            },
        },
    },
    "FieldError": {
        "type": "object",
        "required": ["path", "message"],
        "additionalProperties": False,
        "properties": {
            "path": {
                "type": "string",
                "description": "The field: 'to', 'messages[3].text', 'headers.Idempotency-Key';"
                " empty for the body as a whole.",
            },
            "message": {"type": "string"},
            "index": {"type": "integer", "minimum": 0, "description": "Batch item."},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "examples": list(ERROR_CODES)},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": _ref("FieldError")},
                },
            }
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "binds"],
        "additionalProperties": False,
        "properties": {
            "status": {"enum": ["ok", "degraded", "draining"]},
            "binds": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["carrier", "bind", "type", "state", "connects", "last_error"],
                    "additionalProperties": False,
                    "properties": {
                        "carrier": {"type": "string"},
                        "bind": {"type": "string"},
                        "type": {"enum": ["tx", "rx", "trx"]},
                        "state": {"type": "string"},
                        "connects": {"type": "integer", "minimum": 0},
                        "last_error": _nullable("string"),
                    },
                },
            },
            "cluster": {
                "type": "object",
                "description": "The cluster as this node sees it: nodes, live or not, their"
                " bind slots and lease ages, whether this node is fenced.",
            },
            "receipts": {
                "type": "object",
                "description": "Receipt correlation per carrier, since the start.",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "matched": {"type": "integer", "minimum": 0},
                        "unmatched": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Receipts still matching no message after their"
                            " hold for a late submit_sm_resp (and unparsable ones).",
                        },
                        "held": {"type": "integer", "minimum": 0},
                        "expired_no_receipt": {"type": "integer", "minimum": 0},
                        "id_reading": {
                            "enum": ["as_given", "decimal_to_hex", "hex_to_decimal", None],
                            "description": "auto id forms: the reading of receipt ids that"
                            " matched most.",
                        },
                        "last_unmatched_id": _nullable("string"),
                    },
                },
            },
            "front": {
                "type": "object",
                "description": "The SMPP server front (when configured): upstream binds.",
                "required": ["listen", "accounts"],
                "properties": {
                    "listen": {"type": "string"},
                    "accounts": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["account", "binds", "held"],
                            "properties": {
                                "account": {"type": "string"},
                                "binds": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["type", "peer"],
                                        "properties": {
                                            "type": {"enum": ["tx", "rx", "trx"]},
                                            "peer": {"type": "string"},
                                        },
                                    },
                                },
                                "held": {"type": "integer", "minimum": 0},
                            },
                        },
                    },
                },
            },
            "store": {
                "type": "object",
                "description": "The database's state (disk space, file identity). While it"
                " refuses new work (accepting false) /healthz answers 503.",
                "required": ["status", "reason", "reasons", "accepting", "sending"],
                "properties": {
                    "status": {"enum": ["ok", "degraded"]},
                    "reason": {
                        "enum": [
                            "disk_full",
                            "disk_low",
                            "file_missing",
                            "file_replaced",
                            "db_replaced",
                            "db_read_only",
                            "db_unreachable",
                            "write_failed",
                            None,
                        ],
                        "description": "The most urgent reason it is degraded (null: ok).",
                    },
                    "reasons": {
                        "type": "object",
                        "description": "Every reason, with a sentence for people.",
                        "additionalProperties": {"type": "string"},
                    },
                    "accepting": {"type": "boolean", "description": "Takes new work."},
                    "sending": {"type": "boolean", "description": "Begins new submits."},
                    "path": {"type": "string"},
                    "free_bytes": _nullable("integer"),
                    "min_free_bytes": {"type": "integer", "minimum": 0},
                    "wal_bytes": {"type": "integer", "minimum": 0},
                    "file_bytes": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}

_IDEMPOTENCY_PARAMETER: Final = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the first answer (202) is stored with the messages,"
    " and a request with the same key and the byte-identical body gets it again, creating"
    " nothing. The same key with another body is refused (422 idempotency_mismatch). Keys"
    " are per token.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
}

_REPLAYED: Final = {
    REPLAYED_HEADER: {
        "description": "'true' when the answer is replayed for an Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_TIME: Final = {
    "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number", "minimum": 0}]
}
_LIST_PARAMETERS: Final = [
    _query(
        "campaign_id",
        "Only this campaign's messages.",
        {"type": "string", "minLength": 1, "maxLength": check.MAX_CAMPAIGN_ID},
    ),
    _query(
        "status",
        "Only messages in one of these statuses, separated by commas.",
        {"type": "string", "examples": ["failed,undeliverable"]},
    ),
    _query(
        "to",
        "Only messages to this destination (E.164).",
        {"type": "string", "minLength": 1, "maxLength": message_list.MAX_TO},
    ),
    _query(
        "client_ref",
        "Only messages with this client_ref.",
        {"type": "string", "minLength": 1, "maxLength": check.MAX_CLIENT_REF},
    ),
    _query("since", "Made at or after this time (ISO-8601 with offset, or epoch s).", _TIME),
    _query("until", "Made before this time (ISO-8601 with offset, or epoch seconds).", _TIME),
    _query(
        "after",
        "The 'next' cursor of the previous page (same filters and order).",
        {"type": "string", "pattern": "^[0-9a-f]{26}$"},
    ),
    _query(
        "limit",
        "Messages per page.",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": message_list.MAX_LIMIT,
            "default": message_list.DEFAULT_LIMIT,
        },
    ),
    _query(
        "order",
        "desc: newest first; asc: oldest first.",
        {"enum": ["desc", "asc"], "default": "desc"},
    ),
]

_AUTH_ERRORS: Final = {"401": _error("No token, or not a valid one.")}

_POST_ERRORS: Final = {
    "400": _error(
        "Field errors (all of them, with each batch item's index), invalid JSON or UTF-8,"
        " or a bad Idempotency-Key."
    ),
    **_AUTH_ERRORS,
    "409": _error("A concurrent request with the same Idempotency-Key did not settle."),
    "413": _error("The body is larger than the gateway's http.max_body_bytes."),
    "415": _error("The body is not application/json."),
    "422": _error(
        "opted_out: a destination opted out of the sender (a batch is refused whole, with"
        " the index of each such item); idempotency_mismatch: the key was used with another"
        " body."
    ),
    "500": _error("Internal error."),
    "503": _error(
        "store_unavailable: the store failed; nothing was accepted. draining: the gateway is"
        " shutting down and accepts nothing; retry after Retry-After seconds, or on another"
        " node."
    ),
}


_FORBIDDEN: Final = _error(
    "forbidden: the token lacks the scope this operation needs (x-scope); see the README's"
    " token section."
)


def openapi_document() -> dict[str, Any]:
    """The document, fresh each call (callers may change their copy)."""
    document = _document()
    # Every operation behind a token says which scope it needs (gateway.http.auth).
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation.get("security") == []:
                continue
            scope = ROUTE_SCOPES.get((method.upper(), path))
            if scope is not None:
                operation["x-scope"] = scope
            operation["responses"].setdefault("403", _FORBIDDEN)
    return document


def _document() -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "smsgw HTTP API",
            "version": "1",
            "description": "Submit SMS through the gateway and follow their fate. Errors are"
            ' always {"error": {"code", "message", "details"}}.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Bind states; 'degraded' when a bind is not bound.",
                    "security": [],
                    "responses": {
                        "200": {"description": "Health.", "content": _json(_ref("Health"))},
                        "503": {
                            "description": "Shutting down (status 'draining'; Retry-After"
                            " set), or the store refuses new work (status 'degraded',"
                            " store.accepting false).",
                            "content": _json(_ref("Health")),
                        },
                    },
                },
                "head": {
                    "operationId": "healthHead",
                    "summary": "As GET, without the body.",
                    "security": [],
                    "responses": {"200": {"description": "Health, headers only."}},
                },
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics, text exposition format 0.0.4.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Metrics.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                },
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": _json({"type": "object"}),
                        }
                    },
                }
            },
            "/v1/messages": {
                "get": {
                    "operationId": "listMessages",
                    "summary": "Messages listed and searched, a page at a time (keyset"
                    " cursor); a token that is not admin sees its account's only.",
                    "parameters": _LIST_PARAMETERS,
                    "responses": {
                        "200": {"description": "A page.", "content": _json(_ref("MessagePage"))},
                        "400": _error("A bad or unknown query parameter (each one in details)."),
                        **_AUTH_ERRORS,
                        "500": _error("Internal error."),
                        "503": _error("The store failed."),
                    },
                },
                "post": {
                    "operationId": "submitMessage",
                    "summary": "Accept one message; 202 once it is stored durably.",
                    "parameters": [_IDEMPOTENCY_PARAMETER],
                    "requestBody": {"required": True, "content": _json(_ref("MessageRequest"))},
                    "responses": {
                        "202": {
                            "description": "Accepted.",
                            "headers": _REPLAYED,
                            "content": _json(_ref("MessageAccepted")),
                        },
                        **_POST_ERRORS,
                    },
                },
            },
            "/v1/messages/batch": {
                "post": {
                    "operationId": "submitBatch",
                    "summary": "Accept up to 10,000 messages in one transaction: all or none.",
                    "parameters": [_IDEMPOTENCY_PARAMETER],
                    "requestBody": {"required": True, "content": _json(_ref("BatchRequest"))},
                    "responses": {
                        "202": {
                            "description": "Accepted; answers in request order.",
                            "headers": _REPLAYED,
                            "content": _json(_ref("BatchAccepted")),
                        },
                        **_POST_ERRORS,
                    },
                }
            },
            "/v1/messages/{id}": {
                "get": {
                    "operationId": "getMessage",
                    "summary": "A message's status, parts and history.",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The message.", "content": _json(_ref("Message"))},
                        **_AUTH_ERRORS,
                        "404": _error("No message with this id."),
                        "500": _error("Internal error."),
                        "503": _error("The store failed."),
                    },
                }
            },
            **inbound_paths(),
            **copy.deepcopy(INTERACTION_PATHS),
            **copy.deepcopy(CALLBACK_PATHS),
            **copy.deepcopy(openapi_campaigns.PATHS),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": copy.deepcopy(
                {
                    **_SCHEMAS,
                    **INTERACTION_SCHEMAS,
                    **CALLBACK_SCHEMAS,
                    **openapi_campaigns.SCHEMAS,
                }
            ),
        },
    }
