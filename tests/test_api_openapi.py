"""The OpenAPI document stays true: valid OpenAPI 3.1, the same routes as the app, and the
schemas the real answers follow (every answer of every API test is checked against it by
tests.api_fakes; here the checker itself is proven to bite)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.http.openapi import openapi_document
from tests.api_fakes import CHECKER, FakeOutbound, FakeStore, make_config, router_for, running_api

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def test_the_document_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = openapi_document()
    assert document["openapi"].startswith("3.1.")
    validator.validate(document)


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_of_the_app_is_documented_and_nothing_else() -> None:
    from gateway.http.app import make_app
    from gateway.http.auth import CONSOLE_ROUTES

    config = make_config()
    app = make_app(
        [],
        config=config,
        store=FakeStore(),
        outbound=FakeOutbound([]),
        router=router_for(config),
        registry=CollectorRegistry(),
    )
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        # The web console's HTML pages are not API: they have their own decisions.
        and (route.method, route.resource.canonical) not in CONSOLE_ROUTES
    }
    assert routed == documented_routes(openapi_document())


async def test_the_served_document_is_the_built_one() -> None:
    async with running_api() as api:
        got = await api.get("/v1/openapi.json", token=None)
        assert got.body == openapi_document()


def test_the_message_request_schema_matches_what_intake_takes() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = openapi_document()
    schema = {"$ref": "#/components/schemas/MessageRequest", "components": document["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate({"to": "+33612345678", "from": "ACME", "text": "Hi", "priority": 9})
    validator.validate({"to": "x", "from": "y", "text": "z", "scheduled_at": 1.5, "encoding": None})
    assert not validator.is_valid({"to": "+33612345678", "from": "ACME"})
    assert not validator.is_valid({"to": "x", "from": "y", "text": "z", "unknown": 1})
    assert not validator.is_valid({"to": "x", "from": "y", "text": "z", "priority": 10})


def test_the_checker_refuses_answers_the_document_does_not_describe() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises(jsonschema.ValidationError):
        CHECKER.check("POST", "/v1/messages", 202, {"id": "x", "status": "accepted"})
    with pytest.raises(jsonschema.ValidationError):
        CHECKER.check("GET", "/v1/messages/abc", 404, {"error": "not found"})
    with pytest.raises(AssertionError, match="undocumented"):
        CHECKER.check("GET", "/v1/messages/abc", 418, {})
    # An undocumented path or method must still answer with the error shape.
    with pytest.raises(jsonschema.ValidationError):
        CHECKER.check("GET", "/nowhere", 404, {"detail": "Not Found"})


async def test_real_answers_are_checked_against_the_document() -> None:
    pytest.importorskip("jsonschema")
    before = CHECKER.checked
    async with running_api() as api:
        good = {"to": "+33612345678", "from": "ACME", "text": "Hi"}
        posted = await api.post("/v1/messages", good)
        await api.post("/v1/messages/batch", {"messages": [good, good]})
        await api.get(f"/v1/messages/{posted.body['id']}")
        await api.get("/healthz", token=None)
        await api.post("/v1/messages", {"to": 1})
        await api.get("/v1/messages/unknown")
        await api.post("/v1/messages", good, token=None)
    assert CHECKER.checked - before == 7
