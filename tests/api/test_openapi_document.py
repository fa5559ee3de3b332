"""The OpenAPI 3.1 document: served at /v1/openapi.json and committed as docs/openapi.json."""

from __future__ import annotations

import json

from api_harness import LiveApi

from calstream.api.openapi import COMMITTED, REGENERATE


def test_the_committed_document_is_the_served_one(live: LiveApi) -> None:
    served = live.client(None).get("/v1/openapi.json")
    assert served.status_code == 200
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert served.json() == committed, (
        f"docs/openapi.json differs from the document the API serves: run `{REGENERATE}` "
        "and commit docs/openapi.json"
    )


def test_every_resource_needs_a_token_and_documents_its_problems(live: LiveApi) -> None:
    document = live.client(None).get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) == 32
    for path, method, operation in operations:
        responses = operation["responses"]
        for code, response in responses.items():
            if int(code) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (path, code)
        if path.startswith("/v1/"):
            assert operation["security"] == [{"token": []}], (path, method)
            assert "401" in responses and "422" in responses, (path, method)
        if method in ("post", "patch"):
            assert {"403", "404", "409"} <= set(responses), (path, method)
