"""The registry over HTTP: each resource's success and each refusal with its problem details.

Tenants, sites, gateways, contracts, tokens and the audit trail, against uvicorn on a free port
over an embedded store (``api_harness``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from api_harness import LiveApi, problem

from storage.registry.tokens import REFUSED


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).isoformat()


# --- tenants ---


def test_tenants_list_what_the_caller_reads(live: LiveApi) -> None:
    provider = live.as_role("calprov", "viewer").get("/v1/tenants")
    assert provider.status_code == 200
    assert [t["tenant_id"] for t in provider.json()["items"]] == ["acme", "calprov"]
    manufacturer = live.as_role("globex", "admin").get("/v1/tenants/globex")
    assert manufacturer.status_code == 200
    assert manufacturer.json() == {
        "tenant_id": "globex", "name": "Globex", "kind": "manufacturer", "decision_rule": None,
        "interval_policy": None, "shared_gateways": False,
    }  # fmt: skip


def test_a_token_never_creates_a_tenant(live: LiveApi) -> None:
    response = live.as_role("acme", "admin").post("/v1/tenants", json={"id": "newco"})
    assert response.status_code == 403
    assert problem(response)["type"] == "urn:calstream:problem:forbidden"
    assert "created by the server's own command line" in problem(response)["detail"]
    assert "newco" not in [t.tenant_id for t in live.store.operations.tenants(_local(live))]


def test_tenant_document_refuses_unknown_and_invalid_fields(live: LiveApi) -> None:
    response = live.as_role("acme", "admin").post(
        "/v1/tenants", json={"id": "bad id!", "colour": "red"}
    )
    assert response.status_code == 422
    body = problem(response)
    assert body["type"] == "urn:calstream:problem:invalid-field"
    assert {(e["pointer"], e["location"]) for e in body["errors"]} == {
        ("#/id", "body"),
        ("#/colour", "body"),
    }


# --- sites and gateways ---


def test_sites_created_by_the_tenants_admin_once(live: LiveApi) -> None:
    admin = live.as_role("acme", "admin")
    created = admin.post("/v1/sites", json={"tenant": "acme", "id": "south", "name": "South"})
    assert created.status_code == 201
    assert created.json() == {"tenant": "acme", "site_id": "south", "name": "South"}
    again = admin.post("/v1/sites", json={"tenant": "acme", "id": "south"})
    assert again.status_code == 409
    assert problem(again)["type"] == "urn:calstream:problem:conflict"
    listed = admin.get("/v1/sites", params={"tenant": "acme"}).json()["items"]
    assert [s["site_id"] for s in listed] == ["plant", "south"]


def test_an_operator_may_not_create_a_site(live: LiveApi) -> None:
    response = live.as_role("acme", "operator").post(
        "/v1/sites", json={"tenant": "acme", "id": "south"}
    )
    assert response.status_code == 403
    assert problem(response)["type"] == "urn:calstream:problem:forbidden"


def test_gateways_registered_at_a_registered_site(live: LiveApi) -> None:
    admin = live.as_role("globex", "admin")
    made = admin.post(
        "/v1/gateways",
        json={"tenant": "globex", "site": "plant", "id": "gw-02", "description": "line 2"},
    )
    assert made.status_code == 201
    assert made.json()["gateway_id"] == "gw-02" and made.json()["retired_at"] is None
    assert made.json()["created_at"] == live.clock.now
    nowhere = admin.post(
        "/v1/gateways", json={"tenant": "globex", "site": "nowhere", "id": "gw-03"}
    )
    assert nowhere.status_code == 404
    assert "site: globex/nowhere is not registered" in problem(nowhere)["detail"]
    listed = admin.get("/v1/gateways").json()["items"]
    assert [(g["site"], g["gateway_id"]) for g in listed] == [
        ("plant", "gw-01"),
        ("plant", "gw-02"),
    ]


# --- contracts ---


def test_contracts_are_created_by_the_clients_admin_and_ended_with_a_reason(
    live: LiveApi,
) -> None:
    globex = live.as_role("globex", "admin")
    created = globex.post(
        "/v1/contracts", json={"provider": "calprov", "client": "globex", "scope": "read"}
    )
    assert created.status_code == 201
    contract = created.json()
    assert (contract["provider"], contract["client"], contract["scope"]) == (
        "calprov", "globex", "read",
    )  # fmt: skip
    provider = live.as_role("calprov", "viewer")
    assert provider.get("/v1/instruments", params={"tenant": "globex"}).status_code == 200

    number = contract["contract_id"]
    no_reason = globex.post(f"/v1/contracts/{number}/end", json={})
    assert no_reason.status_code == 422
    assert [e["pointer"] for e in problem(no_reason)["errors"]] == ["#/reason"]
    past = globex.post(
        f"/v1/contracts/{number}/end", json={"reason": "x", "at": "2020-01-01T00:00:00Z"}
    )
    assert past.status_code == 422
    assert [e["pointer"] for e in problem(past)["errors"]] == ["#/at"]
    ended = globex.post(f"/v1/contracts/{number}/end", json={"reason": "budget"})
    assert ended.status_code == 200
    assert ended.json()["end_reason"] == "budget"
    assert ended.json()["valid_until"] == live.clock.now
    live.clock.advance(1)
    assert provider.get("/v1/instruments", params={"tenant": "globex"}).status_code == 404
    twice = globex.post(f"/v1/contracts/{number}/end", json={"reason": "again"})
    assert twice.status_code == 409
    shown = globex.get(f"/v1/contracts/{number}")
    assert shown.status_code == 200 and shown.json()["ended_at"] is not None


def test_overlapping_contract_is_a_conflict(live: LiveApi) -> None:
    response = live.as_role("acme", "admin").post(
        "/v1/contracts", json={"provider": "calprov", "client": "acme"}
    )
    assert response.status_code == 409
    assert "overlaps" in problem(response)["detail"]


def test_contract_numbers_out_of_range_name_the_path_parameter(live: LiveApi) -> None:
    response = live.as_role("acme", "admin").get("/v1/contracts/99999999999")
    assert response.status_code == 422
    assert problem(response)["errors"][0] | {"detail": ""} == {
        "location": "path", "field": "contract_id", "detail": "",
    }  # fmt: skip


# --- tokens ---


def test_a_token_is_shown_once_and_never_listed(live: LiveApi) -> None:
    admin = live.as_role("acme", "admin")
    created = admin.post(
        "/v1/tokens", json={"tenant": "acme", "role": "viewer", "name": "dashboard"}
    )
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    issued = created.json()
    secret = issued["token"]
    assert secret.startswith(f"cs_{issued['record']['token_id']}_")
    assert issued["record"]["created_by"] == "admin@acme"
    listed = admin.get("/v1/tokens")
    assert listed.status_code == 200
    assert secret not in listed.text
    names = sorted(t["name"] for t in listed.json()["items"])
    assert names == ["admin@acme", "dashboard"]
    viewer = live.client(secret)
    assert viewer.get("/v1/tenants").json()["items"][0]["tenant_id"] == "acme"


def test_revoked_and_expired_tokens_are_refused_like_unknown_ones(live: LiveApi) -> None:
    admin = live.as_role("acme", "admin")
    revoked = live.token("acme", "viewer")
    expiring = live.token("acme", "viewer", expires_in_s=60)
    revoked_id = revoked.split("_")[1]
    answer = admin.post(f"/v1/tokens/{revoked_id}/revoke", json={"reason": "left the company"})
    assert answer.status_code == 200 and answer.json()["revoked_at"] == live.clock.now
    assert live.client(expiring).get("/v1/tenants").status_code == 200
    live.clock.advance(61)
    unknown = "cs_000000000000_" + "A" * 43
    refusals = [
        live.client(token).get("/v1/instruments")
        for token in (revoked, expiring, unknown, "not-a-token")
    ]
    refusals.append(live.client(None).get("/v1/instruments"))
    refusals.append(httpx_basic(live))
    for response in refusals:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert len({r.text for r in refusals}) == 1
    assert REFUSED not in refusals[0].text  # storage's wording stays in the log
    again = admin.post(f"/v1/tokens/{revoked_id}/revoke", json={"reason": "again"})
    assert again.status_code == 409


def httpx_basic(live: LiveApi) -> object:
    import httpx

    return httpx.get(f"{live.url}/v1/instruments", auth=("acme", "secret"))


def test_tokens_are_administered_by_admins_only(live: LiveApi) -> None:
    viewer = live.as_role("acme", "viewer")
    assert viewer.get("/v1/tokens").json() == {"items": []}
    refused = viewer.get("/v1/tokens", params={"tenant": "acme"})
    assert refused.status_code == 403
    made = viewer.post("/v1/tokens", json={"tenant": "acme", "role": "admin", "name": "me"})
    assert made.status_code == 403
    bad_role = live.as_role("acme", "admin").post(
        "/v1/tokens", json={"tenant": "acme", "role": "root", "name": "x"}
    )
    assert bad_role.status_code == 422
    assert [e["pointer"] for e in problem(bad_role)["errors"]] == ["#/role"]
    past = live.as_role("acme", "admin").post(
        "/v1/tokens",
        json={"tenant": "acme", "role": "viewer", "name": "x", "expires_at": _iso(1e9)},
    )
    assert past.status_code == 422
    assert [e["pointer"] for e in problem(past)["errors"]] == ["#/expires_at"]


def test_text_that_a_database_cannot_store_is_refused_naming_the_field(live: LiveApi) -> None:
    admin = live.as_role("acme", "admin")
    nul = admin.post("/v1/tokens", json={"tenant": "acme", "role": "viewer", "name": "a\x00b"})
    assert nul.status_code == 422
    assert [e["pointer"] for e in problem(nul)["errors"]] == ["#/name"]
    surrogate = admin.post(
        "/v1/sites",
        content=b'{"tenant": "acme", "id": "s2", "name": "x\\ud800y"}',
        headers={"content-type": "application/json"},
    )
    assert surrogate.status_code == 422
    assert [e["pointer"] for e in problem(surrogate)["errors"]] == ["#/name"]
    key = admin.post(
        "/v1/sites",
        content=b'{"tenant": "acme", "id": "s2", "\\ud800": 1}',
        headers={"content-type": "application/json"},
    )
    assert key.status_code == 422  # not even JSON text a Unicode string can hold
    assert [e["pointer"] for e in problem(key)["errors"]] == ["#"]


# --- the audit trail ---


def test_the_audit_trail_pages_newest_first_with_next_links(live: LiveApi) -> None:
    admin = live.as_role("acme", "admin")
    for n in range(5):
        live.clock.advance(1)
        assert admin.post("/v1/sites", json={"tenant": "acme", "id": f"s{n}"}).status_code == 201
    since = _iso(live.clock.now - 4.5)
    first = admin.get("/v1/audit", params={"tenant": "acme", "limit": 2, "from": since})
    assert first.status_code == 200
    page = first.json()
    assert [e["entity_key"] for e in page["items"]] == ["acme/s4", "acme/s3"]
    assert page["items"][0]["principal"] == "admin@acme"
    assert page["items"][0]["after"] == {"tenant": "acme", "site_id": "s4", "name": ""}
    second = admin.get(page["next"]).json()
    assert [e["entity_key"] for e in second["items"]] == ["acme/s2", "acme/s1"]
    third = admin.get(second["next"]).json()
    assert [e["entity_key"] for e in third["items"]] == ["acme/s0"]
    assert third["next"] is None
    until = admin.get(
        "/v1/audit", params={"tenant": "acme", "from": since, "until": _iso(live.clock.now - 1.5)}
    )
    assert [e["entity_key"] for e in until.json()["items"]] == ["acme/s2", "acme/s1", "acme/s0"]


def test_audit_refusals_name_the_query_parameter(live: LiveApi) -> None:
    admin = live.as_role("acme", "admin")
    naive = admin.get("/v1/audit", params={"from": "2026-01-01T00:00:00"})
    backwards = admin.get(
        "/v1/audit", params={"from": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    )
    cursor = admin.get("/v1/audit", params={"cursor": "bm90LWEtY3Vyc29y"})
    limit = admin.get("/v1/audit", params={"limit": 0})
    for response, name in ((naive, "from"), (backwards, "until"), (cursor, "cursor"),
                           (limit, "limit")):  # fmt: skip
        assert response.status_code == 422, response.text
        assert [(e["location"], e["field"]) for e in problem(response)["errors"]] == [
            ("query", name)
        ]


def test_a_provider_reads_its_clients_audit_trail_not_anyone_elses(live: LiveApi) -> None:
    provider = live.as_role("calprov", "viewer")
    tenants = {
        e["tenant"] for e in provider.get("/v1/audit", params={"limit": 1000}).json()["items"]
    }
    assert tenants == {"acme", "calprov"}
    assert provider.get("/v1/audit", params={"tenant": "globex"}).status_code == 404


def _local(live: LiveApi) -> object:
    from metrology.tenancy import Principal

    return live.store.operations.scope(Principal.local())
