"""The OpenAPI paths and schemas of the lists, imports, contacts, opt-outs and campaigns
routes (gateway.http.campaigns); merged into the document by gateway.http.openapi."""

from __future__ import annotations

from typing import Any, Final


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("Error"))}


def _nullable(schema_type: str, **extra: Any) -> dict[str, Any]:
    return {"type": [schema_type, "null"], **extra}


def _path_param(name: str, description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "path", "required": True}
    param["schema"] = {"type": "string"}
    if description:
        param["description"] = description
    return param


_COMMON: Final = {
    "401": _error("No token, or not a valid one."),
    "500": _error("Internal error."),
    "503": _error("The store failed, or campaigns are not available in this process."),
}
_JSON_POST: Final = {
    "400": _error("Field errors (all of them) or a body that is not JSON."),
    "413": _error("The body is larger than the gateway's http.max_body_bytes."),
    "415": _error("The body is not application/json."),
    **_COMMON,
}

_DATE: Final = {"type": "string", "format": "date-time"}
_COUNT: Final = {"type": "integer", "minimum": 0}
_UNDELIVERED: Final = ("undeliverable", "expired", "rejected", "failed")
_BY_STATUS: Final = {
    "type": "object",
    "required": list(_UNDELIVERED),
    "additionalProperties": False,
    "properties": {status: _COUNT for status in _UNDELIVERED},
}
_TIMELINE_FIGURES: Final = (
    "sent",
    "delivered",
    "undelivered",
    "clicks",
    "unique_clickers",
    "bot_requests",
    "replies",
    "unique_responders",
    "opt_outs",
    "resubscriptions",
    "replies_from_others",
)


def _timeline(periods: int) -> dict[str, Any]:
    """Each figure of the statistics as a list, one value per period from the start."""
    series = {"type": "array", "items": _COUNT, "minItems": periods, "maxItems": periods}
    return {
        "type": "object",
        "required": [*_TIMELINE_FIGURES, "undelivered_by_status", "undelivered_by_error"],
        "additionalProperties": False,
        "properties": {
            **{name: series for name in _TIMELINE_FIGURES},
            "undelivered_by_status": {
                "type": "object",
                "required": list(_UNDELIVERED),
                "additionalProperties": False,
                "properties": {status: series for status in _UNDELIVERED},
            },
            "undelivered_by_error": {"type": "object", "additionalProperties": series},
        },
    }


_RULES: Final = {
    "type": "array",
    "description": "Keyword rules, in the shape of [[inbound.numbers.rules]] of"
    " conf/gateway.toml: {name, keyword, aliases, patterns, actions: [{type, ...}]}.",
    "items": {"type": "object"},
}
_WINDOW: Final = {
    "type": ["object", "null"],
    "required": ["from", "to"],
    "additionalProperties": False,
    "description": "Daily send window, local time in time_zone (IANA; default UTC), or"
    " in each recipient's own local time with time_zone 'recipient_local' (kept inside the"
    " gateway's [compliance] quiet_hours); 'to' before 'from' runs across midnight.",
    "properties": {
        "from": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "to": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "time_zone": {"type": "string", "examples": ["Europe/Paris", "recipient_local"]},
    },
}
_DIGEST: Final = {
    "type": ["object", "null"],
    "required": ["to"],
    "additionalProperties": False,
    "properties": {
        "to": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
        "days": {"type": "integer", "minimum": 1},
    },
}

_PAGE_PARAMETERS: Final = [
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "The 'next' of the previous page.",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
]
_NEXT: Final = {
    "type": ["string", "null"],
    "description": "Pass as 'after' for the next page; null on the last page.",
}


def _page(item: str) -> dict[str, Any]:
    """A page of a list: its items (schema ``item``) and the cursor to the next page."""
    return {
        "type": "object",
        "required": ["items", "next"],
        "additionalProperties": False,
        "properties": {"items": {"type": "array", "items": _ref(item)}, "next": _NEXT},
    }


SCHEMAS: Final[dict[str, Any]] = {
    "ContactSummary": {
        "type": "object",
        "required": ["number", "name", "attributes"],
        "additionalProperties": False,
        "properties": {
            "number": {"type": "string"},
            "name": {"type": "string"},
            "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "ContactPage": _page("ContactSummary"),
    "ContactPatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": ["string", "null"], "maxLength": 200},
            "attributes": {
                "type": "object",
                "description": "Merged into the contact's attributes; null (or '') removes"
                " a key. Keys are lower-case, at most 100 of them.",
                "additionalProperties": {"type": ["string", "null"], "maxLength": 1000},
            },
        },
    },
    "ContactDeleted": {
        "type": "object",
        "required": ["number", "deleted"],
        "additionalProperties": False,
        "properties": {"number": {"type": "string"}, "deleted": {"const": True}},
    },
    "ListDeleted": {
        "type": "object",
        "required": ["id", "deleted", "members_removed"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "integer"},
            "deleted": {"const": True},
            "members_removed": _COUNT,
        },
    },
    "OptOutPage": _page("OptOut"),
    "ContactList": {
        "type": "object",
        "required": ["id", "name", "contacts"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "contacts": _COUNT,
            "created_at": _DATE,
        },
    },
    "ContactLists": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {"items": {"type": "array", "items": _ref("ContactList")}},
    },
    "ImportStarted": {
        "type": "object",
        "required": ["import_id", "status"],
        "additionalProperties": False,
        "properties": {
            "import_id": {"type": "string"},
            "status": {"enum": ["running", "done", "failed"]},
            "list_id": {"type": "integer"},
        },
    },
    "Import": {
        "type": "object",
        "required": ["import_id", "list_id", "status", "rows", "imported", "rejected", "errors"],
        "additionalProperties": False,
        "properties": {
            "import_id": {"type": "string"},
            "list_id": {"type": "integer"},
            "status": {"enum": ["running", "done", "failed"]},
            "rows": _COUNT,
            "imported": _COUNT,
            "rejected": _COUNT,
            "errors": {
                "type": "array",
                "maxItems": 1000,
                "description": "The first 1000 rejected rows; the header is row 1.",
                "items": {
                    "type": "object",
                    "required": ["row", "error"],
                    "additionalProperties": False,
                    "properties": {"row": {"type": "integer"}, "error": {"type": "string"}},
                },
            },
            "opt_in_source": {"type": "string"},
            "failure": _nullable("string", description="Why a failed import stopped."),
            "bytes": {
                **_COUNT,
                "description": "The file's size (0 for an import recorded before sizes were).",
            },
            "bytes_read": {
                **_COUNT,
                "description": "How far the parsing got: the progress is bytes_read / bytes.",
            },
            "created_at": _DATE,
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Contact": {
        "type": "object",
        "required": ["number", "name", "attributes", "tags", "lists", "opt_outs"],
        "additionalProperties": False,
        "properties": {
            "number": {"type": "string"},
            "name": {"type": "string"},
            "attributes": {"type": "object"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "lists": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "name", "opt_in_source", "opt_in_at"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "opt_in_source": {"type": "string"},
                        "opt_in_at": _DATE,
                    },
                },
            },
            "opt_outs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sender", "source", "at"],
                    "additionalProperties": False,
                    "properties": {
                        "sender": _nullable("string", description="null: every sender"),
                        "source": {"type": "string"},
                        "at": _DATE,
                    },
                },
            },
        },
    },
    "OptOutRequest": {
        "type": "object",
        "required": ["number"],
        "additionalProperties": False,
        "properties": {
            "number": {"type": "string"},
            "sender": _nullable(
                "string",
                description="Opt out of this sender only; without it, of every sender (POST)"
                " or lift every opt-out of the number (DELETE).",
            ),
        },
    },
    "OptOut": {
        "type": "object",
        "required": ["number", "sender"],
        "additionalProperties": False,
        "properties": {
            "number": {"type": "string"},
            "sender": _nullable("string"),
            "source": {"type": "string"},
            "at": _DATE,
            "removed": {"type": "boolean"},
        },
    },
    "CampaignRequest": {
        "type": "object",
        "required": ["name", "from"],
        "description": "text, or template_id: one of the two is required.",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "from": {"type": "string"},
            "template_id": {
                "type": "string",
                "description": "A saved template of the account (POST /v1/templates) whose"
                " text the campaign takes (a copy: changing the template later does not"
                " change the campaign). Not with text.",
            },
            "text": {
                "type": "string",
                "description": "Template: {name}, {first_name}, {last_name}, {number} and any"
                " contact attribute, e.g. {city}; {link:https://...} becomes each recipient's"
                " own short link (with [links]).",
            },
            "lists": {"type": "array", "items": {"type": "integer"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "two_way": {"type": "boolean"},
            "keywords": _RULES,
            "courtesy_reply": _nullable("string"),
            "reply_window_days": {"type": ["number", "null"], "minimum": 0},
            "start_at": {"type": ["string", "null"], "format": "date-time"},
            "send_window": _WINDOW,
            "tps": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "digest": _DIGEST,
            "track_links": {
                "type": "boolean",
                "default": False,
                "description": "Shorten and count every plain http(s) URL of the text too"
                " ({link:URL} always is); needs [links] configured.",
            },
        },
    },
    "Campaign": {
        "type": "object",
        "required": ["id", "name", "status", "from", "text", "progress"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "status": {"enum": ["draft", "scheduled", "running", "paused", "cancelled", "done"]},
            "from": {"type": "string"},
            "text": {"type": "string"},
            "lists": {"type": "array", "items": {"type": "integer"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "two_way": {"type": "boolean"},
            "keywords": _RULES,
            "courtesy_reply": _nullable("string"),
            "reply_window_days": {"type": "number"},
            "start_at": {"type": ["string", "null"], "format": "date-time"},
            "send_window": _WINDOW,
            "tps": {"type": ["number", "null"]},
            "digest": _DIGEST,
            "track_links": {"type": "boolean"},
            "created_at": _DATE,
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "responders_of": {
                "type": "object",
                "description": "For a send-to-responders campaign: the campaign and keyword,"
                " or clicked (those who clicked its short links).",
                "properties": {
                    "campaign_id": {"type": "string"},
                    "keyword": _nullable("string"),
                    "clicked": {"type": "boolean"},
                },
            },
            "progress": {
                "type": "object",
                "required": ["recipients", "handled", "fraction"],
                "additionalProperties": False,
                "properties": {
                    "recipients": _COUNT,
                    "handled": _COUNT,
                    "skipped_opted_out": _COUNT,
                    "skipped_invalid": _COUNT,
                    "fraction": {"type": "number", "minimum": 0, "maximum": 1},
                },
            },
        },
    },
    "Campaigns": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {"items": {"type": "array", "items": _ref("Campaign")}},
    },
    "CampaignStats": {
        "type": "object",
        "required": [
            "recipients",
            "sent",
            "delivered",
            "undeliverable",
            "expired",
            "pending",
            "delivery_rate",
            "replies",
            "unique_responders",
            "reply_rate",
            "opt_outs",
            "answers_per_keyword",
            "median_seconds_to_first_reply",
            "per_hour",
            "per_day",
            "clicks",
            "unique_clickers",
            "click_rate",
            "bot_requests",
            "clicks_per_hour",
            "clicks_per_day",
        ],
        "additionalProperties": False,
        "properties": {
            "recipients": _COUNT,
            "sent": _COUNT,
            "delivered": _COUNT,
            "undeliverable": _COUNT,
            "expired": _COUNT,
            "pending": _COUNT,
            "delivery_rate": {"type": "number", "minimum": 0, "maximum": 1},
            "replies": _COUNT,
            "unique_responders": _COUNT,
            "reply_rate": {"type": "number", "minimum": 0},
            "opt_outs": _COUNT,
            "answers_per_keyword": {"type": "object", "additionalProperties": _COUNT},
            "median_seconds_to_first_reply": {"type": ["number", "null"]},
            "per_hour": {"type": "array", "items": _COUNT, "minItems": 24, "maxItems": 24},
            "per_day": {"type": "array", "items": _COUNT, "minItems": 10, "maxItems": 10},
            "messages": _COUNT,
            "rejected": _COUNT,
            "failed": _COUNT,
            "skipped_opted_out": _COUNT,
            "skipped_invalid": _COUNT,
            "resubscriptions": _COUNT,
            "replies_from_others": _COUNT,
            "waiting_for_window": {
                **_COUNT,
                "description": "Recipients waiting for their send window or the quiet hours"
                " to end in their local time (part of pending).",
            },
            "clicks": {
                **_COUNT,
                "description": "Requests for the campaign's short links made by people,"
                " repeats included (bots and previews are in bot_requests).",
            },
            "unique_clickers": {**_COUNT, "description": "Recipients with a click."},
            "click_rate": {
                "type": "number",
                "minimum": 0,
                "description": "unique_clickers / sent.",
            },
            "bot_requests": {
                **_COUNT,
                "description": "Requests by bots and link previews (HEAD, an empty or a"
                " prefetcher's User-Agent).",
            },
            "clicks_per_hour": {
                "type": "array",
                "items": _COUNT,
                "minItems": 24,
                "maxItems": 24,
            },
            "clicks_per_day": {"type": "array", "items": _COUNT, "minItems": 10, "maxItems": 10},
            "undelivered": {
                **_COUNT,
                "description": "Messages that ended undelivered (undeliverable, expired,"
                " rejected or failed), sent or not.",
            },
            "undelivered_by_status": _BY_STATUS,
            "undelivered_by_error": {
                "type": "object",
                "description": "The 20 most frequent errors ('(none)': no error text; the"
                " rest under '(other)').",
                "additionalProperties": _COUNT,
            },
            "funnel": _ref("CampaignFunnel"),
            "timelines": {
                "type": "object",
                "required": ["per_hour", "per_day"],
                "additionalProperties": False,
                "properties": {
                    "per_hour": _timeline(24),
                    "per_day": _timeline(10),
                },
            },
        },
    },
    "Template": {
        "type": "object",
        "required": ["id", "name", "text", "created_at", "updated_at"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "text": {"type": "string", "description": "With {field} placeholders."},
            "created_at": _DATE,
            "updated_at": _DATE,
        },
    },
    "Templates": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {"items": {"type": "array", "items": _ref("Template")}},
    },
    "TemplateRequest": {
        "type": "object",
        "required": ["name", "text"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "text": {"type": "string", "minLength": 1, "maxLength": 1600},
        },
    },
    "TemplateRendering": {
        "type": "object",
        "required": ["number", "text", "encoding", "parts", "characters", "problem"],
        "additionalProperties": False,
        "properties": {
            "number": _nullable("string"),
            "text": {"type": "string"},
            "encoding": {
                "type": ["string", "null"],
                "description": "gsm7, latin1 or ucs2; null when the text would be refused.",
            },
            "parts": _COUNT,
            "characters": _COUNT,
            "problem": _nullable("string", description="Why the text would be refused."),
        },
    },
    "TemplatePreview": {
        "type": "object",
        "required": ["sample"],
        "additionalProperties": False,
        "properties": {
            "sample": _ref("TemplateRendering"),
            "audience": {
                "type": "object",
                "required": ["contacts", "longest"],
                "additionalProperties": False,
                "properties": {
                    "contacts": _COUNT,
                    "longest": {"oneOf": [_ref("TemplateRendering"), {"type": "null"}]},
                },
            },
        },
    },
    "CampaignFunnel": {
        "type": "object",
        "description": "audience -> skipped (opted out, invalid) -> sent -> delivered ->"
        " clicked (unique_clickers) -> replied (unique_responders); each the figure of the"
        " same name.",
        "required": [
            "audience",
            "skipped_opted_out",
            "skipped_invalid",
            "sent",
            "delivered",
            "clicked",
            "replied",
        ],
        "additionalProperties": False,
        "properties": {
            key: _COUNT
            for key in (
                "audience",
                "skipped_opted_out",
                "skipped_invalid",
                "sent",
                "delivered",
                "clicked",
                "replied",
            )
        },
    },
    "SendToResponders": {
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {
            "name": _nullable("string"),
            "text": {"type": "string"},
            "keyword": _nullable("string", description="Only those whose reply had it."),
            "clicked": {
                "type": ["boolean", "null"],
                "description": "true: to the recipients who clicked one of the campaign's"
                " short links (people, not bots), instead of those who replied; not with"
                " keyword.",
            },
        },
    },
}


def _campaign_action(action: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"{action}Campaign",
            "summary": summary,
            "parameters": [_path_param("id")],
            "responses": {
                "200": {"description": "The campaign.", "content": _json(_ref("Campaign"))},
                "404": _error("No campaign with this id."),
                "409": _error("invalid_state: the campaign's status does not allow it."),
                **_COMMON,
            },
        }
    }


PATHS: Final[dict[str, Any]] = {
    "/v1/lists": {
        "post": {
            "operationId": "createList",
            "summary": "Create a contact list.",
            "requestBody": {
                "required": True,
                "content": _json(
                    {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {"name": {"type": "string"}},
                    }
                ),
            },
            "responses": {
                "201": {"description": "Created.", "content": _json(_ref("ContactList"))},
                **_JSON_POST,
            },
        },
        "get": {
            "operationId": "listLists",
            "summary": "Every contact list, with its number of contacts.",
            "responses": {
                "200": {"description": "Lists.", "content": _json(_ref("ContactLists"))},
                **_COMMON,
            },
        },
    },
    "/v1/lists/{id}": {
        "get": {
            "operationId": "getList",
            "summary": "One contact list.",
            "parameters": [_path_param("id")],
            "responses": {
                "200": {"description": "The list.", "content": _json(_ref("ContactList"))},
                "404": _error("No list with this id."),
                **_COMMON,
            },
        },
        "delete": {
            "operationId": "deleteList",
            "summary": "Delete a list and its memberships (the contacts and opt-outs stay).",
            "parameters": [_path_param("id")],
            "responses": {
                "200": {"description": "Deleted.", "content": _json(_ref("ListDeleted"))},
                "404": _error("No list with this id."),
                "409": _error(
                    "An import is still running into it, or a draft or scheduled campaign"
                    " takes its audience from it."
                ),
                **_COMMON,
            },
        },
    },
    "/v1/lists/{id}/import": {
        "post": {
            "operationId": "importContacts",
            "summary": "Import contacts from CSV (streamed; parsed in the background).",
            "description": "Header row; column 'number' required, 'name' optional, any other"
            " column becomes an attribute. Numbers are normalised to E.164; bad rows are"
            " reported by row number (the header is row 1).",
            "parameters": [
                _path_param("id"),
                {
                    "name": "opt_in_source",
                    "in": "query",
                    "required": False,
                    "description": "Recorded with each contact's opt-in (default 'import').",
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            "responses": {
                "202": {"description": "Import started.", "content": _json(_ref("ImportStarted"))},
                "400": _error("A bad opt_in_source."),
                "404": _error("No list with this id."),
                "413": _error("The file is larger than 1 GiB."),
                "415": _error("The body is not text/csv."),
                **_COMMON,
            },
        }
    },
    "/v1/imports/{id}": {
        "get": {
            "operationId": "getImport",
            "summary": "An import's progress and its row errors.",
            "parameters": [_path_param("id")],
            "responses": {
                "200": {"description": "The import.", "content": _json(_ref("Import"))},
                "404": _error("No import with this id."),
                **_COMMON,
            },
        }
    },
    "/v1/contacts": {
        "get": {
            "operationId": "searchContacts",
            "summary": "Contacts by number, a page at a time; a token that is not admin sees"
            " the members of its account's lists only.",
            "parameters": [
                {
                    "name": "q",
                    "in": "query",
                    "required": False,
                    "description": "Part of the name (ASCII case ignored) or, digits, of the"
                    " number.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 100},
                },
                {
                    "name": "list_id",
                    "in": "query",
                    "required": False,
                    "description": "Only the members of this list.",
                    "schema": {"type": "integer"},
                },
                *_PAGE_PARAMETERS,
            ],
            "responses": {
                "200": {"description": "A page.", "content": _json(_ref("ContactPage"))},
                "400": _error("A bad or unknown query parameter (each one in details)."),
                **_COMMON,
            },
        }
    },
    "/v1/contacts/{number}": {
        "get": {
            "operationId": "getContact",
            "summary": "A contact: name, attributes, tags, lists with opt-in, opt-outs.",
            "parameters": [_path_param("number", "E.164 ('+' URL-encoded as %2B) or national.")],
            "responses": {
                "200": {"description": "The contact.", "content": _json(_ref("Contact"))},
                "404": _error("No contact and no opt-out for this number."),
                **_COMMON,
            },
        },
        "patch": {
            "operationId": "editContact",
            "summary": "Set a contact's name, add, change or remove attributes.",
            "parameters": [_path_param("number", "E.164 ('+' URL-encoded as %2B) or national.")],
            "requestBody": {"required": True, "content": _json(_ref("ContactPatch"))},
            "responses": {
                "200": {"description": "The contact.", "content": _json(_ref("ContactSummary"))},
                "404": _error("No contact with this number (that this token may see)."),
                **_JSON_POST,
            },
        },
        "delete": {
            "operationId": "deleteContact",
            "summary": "Take the number out of the token's lists (an admin: of every list) and,"
            " once it is in none, forget its name, attributes and tags. Its opt-outs stay.",
            "parameters": [_path_param("number", "E.164 ('+' URL-encoded as %2B) or national.")],
            "responses": {
                "200": {"description": "Deleted.", "content": _json(_ref("ContactDeleted"))},
                "404": _error("No contact with this number (that this token may see)."),
                **_COMMON,
            },
        },
    },
    "/v1/opt-outs/export.csv": {
        "get": {
            "operationId": "exportOptOuts",
            "summary": "Every opt-out (a token that is not admin: of its lists' numbers) as"
            " CSV: number, sender (empty: every sender), source, at.",
            "parameters": [
                {
                    "name": "bom",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": ["0", "1"]},
                }
            ],
            "responses": {
                "200": {
                    "description": "CSV, UTF-8 (with a BOM unless bom=0).",
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
                "400": _error("A bad or unknown query parameter."),
                **_COMMON,
            },
        }
    },
    "/v1/opt-outs": {
        "get": {
            "operationId": "listOptOuts",
            "summary": "Opt-outs with their source and time, by number, a page at a time (a"
            " token that is not admin: of its lists' numbers).",
            "parameters": _PAGE_PARAMETERS,
            "responses": {
                "200": {"description": "A page.", "content": _json(_ref("OptOutPage"))},
                "400": _error("A bad or unknown query parameter (each one in details)."),
                **_COMMON,
            },
        },
        "post": {
            "operationId": "addOptOut",
            "summary": "Opt a number out of one sender, or of every sender.",
            "requestBody": {"required": True, "content": _json(_ref("OptOutRequest"))},
            "responses": {
                "201": {"description": "Recorded.", "content": _json(_ref("OptOut"))},
                **_JSON_POST,
            },
        },
        "delete": {
            "operationId": "removeOptOut",
            "summary": "Lift an opt-out (of one sender; without sender, every one).",
            "requestBody": {"required": True, "content": _json(_ref("OptOutRequest"))},
            "responses": {
                "200": {"description": "Lifted.", "content": _json(_ref("OptOut"))},
                **_JSON_POST,
            },
        },
    },
    "/v1/campaigns": {
        "post": {
            "operationId": "createCampaign",
            "summary": "Create a campaign (a draft: start it to send).",
            "requestBody": {"required": True, "content": _json(_ref("CampaignRequest"))},
            "responses": {
                "201": {"description": "Created.", "content": _json(_ref("Campaign"))},
                **_JSON_POST,
            },
        },
        "get": {
            "operationId": "listCampaigns",
            "summary": "Every campaign.",
            "responses": {
                "200": {"description": "Campaigns.", "content": _json(_ref("Campaigns"))},
                **_COMMON,
            },
        },
    },
    "/v1/campaigns/{id}": {
        "get": {
            "operationId": "getCampaign",
            "summary": "A campaign and its progress.",
            "parameters": [_path_param("id")],
            "responses": {
                "200": {"description": "The campaign.", "content": _json(_ref("Campaign"))},
                "404": _error("No campaign with this id."),
                **_COMMON,
            },
        },
        "put": {
            "operationId": "replaceCampaign",
            "summary": "Edit a draft: the body replaces every field, as POST /v1/campaigns"
            " takes them (checked the same way). Only a draft can be edited.",
            "parameters": [_path_param("id")],
            "requestBody": {"required": True, "content": _json(_ref("CampaignRequest"))},
            "responses": {
                "200": {"description": "The campaign.", "content": _json(_ref("Campaign"))},
                "404": _error("No campaign with this id."),
                "409": _error("invalid_state: the campaign is no longer a draft."),
                **_JSON_POST,
            },
        },
    },
    "/v1/campaigns/{id}/start": _campaign_action(
        "start", "Start a draft: running now, or scheduled until start_at."
    ),
    "/v1/campaigns/{id}/pause": _campaign_action("pause", "Stop making messages for now."),
    "/v1/campaigns/{id}/resume": _campaign_action("resume", "Go on where it was paused."),
    "/v1/campaigns/{id}/cancel": _campaign_action("cancel", "Stop for good."),
    "/v1/campaigns/{id}/stats": {
        "get": {
            "operationId": "getCampaignStats",
            "summary": "Delivery and reply statistics.",
            "parameters": [_path_param("id")],
            "responses": {
                "200": {"description": "Statistics.", "content": _json(_ref("CampaignStats"))},
                "404": _error("No campaign with this id."),
                **_COMMON,
            },
        }
    },
    "/v1/campaigns/{id}/clicks.csv": {
        "get": {
            "operationId": "exportCampaignClicks",
            "summary": "The campaign's short link requests as CSV, oldest first: at, number,"
            " code, target, bot (yes for bots and previews), user_agent.",
            "parameters": [
                _path_param("id"),
                {
                    "name": "bom",
                    "in": "query",
                    "required": False,
                    "description": "0: no UTF-8 byte order mark (1, the default, for Excel).",
                    "schema": {"enum": ["0", "1"], "default": "1"},
                },
            ],
            "responses": {
                "200": {
                    "description": "Streamed CSV (UTF-8, CRLF).",
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
                "400": _error("A bad or unknown query parameter."),
                "404": _error("No campaign with this id."),
                **_COMMON,
            },
        }
    },
    "/v1/campaigns/{id}/send-to-responders": {
        "post": {
            "operationId": "sendToResponders",
            "summary": "A new campaign (draft) to everyone who replied, optionally only with"
            " one keyword.",
            "parameters": [_path_param("id")],
            "requestBody": {"required": True, "content": _json(_ref("SendToResponders"))},
            "responses": {
                "201": {"description": "The new campaign.", "content": _json(_ref("Campaign"))},
                "404": _error("No campaign with this id."),
                **_JSON_POST,
            },
        }
    },
    "/v1/templates": {
        "post": {
            "operationId": "createTemplate",
            "summary": "Save a message template.",
            "requestBody": {"required": True, "content": _json(_ref("TemplateRequest"))},
            "responses": {
                "201": {"description": "Created.", "content": _json(_ref("Template"))},
                **_JSON_POST,
            },
        },
        "get": {
            "operationId": "listTemplates",
            "summary": "The account's templates.",
            "responses": {
                "200": {"description": "Templates.", "content": _json(_ref("Templates"))},
                **_COMMON,
            },
        },
    },
    "/v1/templates/{id}": {
        "get": {
            "operationId": "getTemplate",
            "summary": "One template.",
            "parameters": [_path_param("id")],
            "responses": {
                "200": {"description": "The template.", "content": _json(_ref("Template"))},
                "404": _error("No template with this id."),
                **_COMMON,
            },
        },
        "put": {
            "operationId": "updateTemplate",
            "summary": "Replace a template's name and text.",
            "parameters": [_path_param("id")],
            "requestBody": {"required": True, "content": _json(_ref("TemplateRequest"))},
            "responses": {
                "200": {"description": "The template.", "content": _json(_ref("Template"))},
                "404": _error("No template with this id."),
                **_JSON_POST,
            },
        },
        "delete": {
            "operationId": "deleteTemplate",
            "summary": "Delete a template (campaigns made from it keep their text).",
            "parameters": [_path_param("id")],
            "responses": {
                "204": {"description": "Deleted."},
                "404": _error("No template with this id."),
                **_COMMON,
            },
        },
    },
    "/v1/templates/{id}/preview": {
        "post": {
            "operationId": "previewTemplate",
            "summary": "Render a template for a sample contact, and find its longest rendering"
            " across lists.",
            "description": "contact: a number (its stored fields) or an object of fields"
            " (number, name, attributes); none: empty fields. lists: the account's lists,"
            " read a page at a time; the longest rendering is the one with the most parts,"
            " then characters (one the gateway would refuse first).",
            "parameters": [_path_param("id")],
            "requestBody": {
                "required": False,
                "content": _json(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "contact": {
                                "oneOf": [
                                    {"type": "string"},
                                    {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    {"type": "null"},
                                ]
                            },
                            "lists": {"type": "array", "items": {"type": "integer"}},
                        },
                    }
                ),
            },
            "responses": {
                "200": {"description": "Renderings.", "content": _json(_ref("TemplatePreview"))},
                "404": _error("No template with this id."),
                **_JSON_POST,
            },
        }
    },
}
