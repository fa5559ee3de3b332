"""Who sees and changes what, against the live API: every role x every relation x every resource.

A caller of each role, of the provider ``calprov`` or the manufacturer ``acme``, calls every
resource on a tenant in each relation to it: its own, a client under a contract in force
(``acme`` for ``calprov``), a client whose contract has ended (``initech``), and a tenant it
has nothing to do with (``globex``). Each answer is the one the tenancy rules give
(:mod:`metrology.tenancy`): allowed, 403 when the caller sees the object but may not do this,
and otherwise 404 with exactly the body of the same request about an object that does not
exist, so the answer does not reveal that it exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from api_harness import Clock, LiveApi, instruments_of, seed, served

from metrology.tenancy import Principal
from storage.sqlite_store import SqliteStore

OWN, CONTRACT, ENDED, OTHER = "own tenant", "client under contract", "client, contract ended", "other tenant"  # fmt: skip
RELATIONS = {
    "calprov": {OWN: "calprov", CONTRACT: "acme", ENDED: "initech", OTHER: "globex"},
    "acme": {OWN: "acme", OTHER: "globex"},
}


@dataclass(frozen=True)
class Target:
    """The objects of one tenant the probes name."""

    tenant: str
    instrument: str
    certificate: str
    token_id: str
    contract_id: int

    def substitute(self, text: str, other: Target) -> str:
        """``text`` (an answer about ``self``) as it would read about ``other``."""
        for mine, theirs in (
            (self.instrument, other.instrument), (self.certificate, other.certificate),
            (self.token_id, other.token_id), (self.tenant, other.tenant),
            (f"contract {self.contract_id}", f"contract {other.contract_id}"),
            (f"'{self.contract_id}'", f"'{other.contract_id}'"),
            (f"/contracts/{self.contract_id}", f"/contracts/{other.contract_id}"),
        ):  # fmt: skip
            text = text.replace(mine, theirs)
        return text


MISSING = Target("nobody", "nobody-TT-001", "CAL-nobody-TT-001-1", "ffffffffffff", 999)


@dataclass(frozen=True)
class Case:
    caller_tenant: str
    role: str
    relation: str

    @property
    def sees(self) -> bool:
        return self.relation in (OWN, CONTRACT)

    @property
    def administers(self) -> bool:
        return self.role == "admin" and self.relation == OWN

    @property
    def calibrates(self) -> bool:
        # calprov's contract with acme grants calibration; initech's has ended
        return self.role == "calibration" and self.relation in (OWN, CONTRACT)

    @property
    def party(self) -> bool:
        """The caller's tenant is a party to the target's contract (provider or client)."""
        return self.relation != OTHER

    def read(self) -> int:
        return 200 if self.sees else 404

    def admin_write(self, success: int) -> int:
        return success if self.administers else 403 if self.sees else 404

    def calibration_write(self) -> int:
        return 201 if self.calibrates else 403 if self.sees else 404

    def contract_read(self) -> int:
        return 200 if self.party else 404

    def contract_end(self) -> int:
        return (200 if self.role == "admin" else 403) if self.party else 404


CASES = [
    Case(tenant, role, relation)
    for tenant, relations in RELATIONS.items()
    for role in ("viewer", "operator", "calibration", "admin")
    for relation in relations
]

Probe = Callable[[httpx.Client, Target], httpx.Response]
AMEND = {"reason": "transposed digits", "interval_days": 180}
CERTIFICATE = {
    "certificate": "NEW-1", "date": "2026-04-01T00:00:00Z", "expanded_uncertainty": 0.05,
    "interval_days": 365,
}  # fmt: skip
INSTRUMENT = {
    "site": "plant", "id": "probe-TT-001", "gateway": "gw-01", "measurand": "temperature",
    "unit": "degC", "range": {"low": 0, "high": 100}, "tolerance": {"mpe": 0.5},
    "period_s": 60, "reference": {"kind": "none"},
}  # fmt: skip


def _probes(case: Case) -> list[tuple[str, Probe, int]]:
    """(what, request, expected status), in an order where no change hides a later answer."""
    window = {"from": "2026-05-28T00:00:00Z", "until": "2026-05-29T00:00:00Z"}
    read, write = case.read(), case.admin_write
    i = "/v1/instruments/{t.instrument}"
    return [
        ("tenant", lambda c, t: c.get(f"/v1/tenants/{t.tenant}"), read),
        ("sites", lambda c, t: c.get("/v1/sites", params={"tenant": t.tenant}), read),
        ("gateways", lambda c, t: c.get("/v1/gateways", params={"tenant": t.tenant}), read),
        ("instruments", lambda c, t: c.get("/v1/instruments", params={"tenant": t.tenant}), read),
        ("instrument", lambda c, t: c.get(i.format(t=t)), read),
        ("health", lambda c, t: c.get(i.format(t=t) + "/health"), read),
        ("series", lambda c, t: c.get(i.format(t=t) + "/series", params=window), read),
        ("history", lambda c, t: c.get(i.format(t=t) + "/status-history"), read),
        ("calibrations", lambda c, t: c.get(i.format(t=t) + "/calibrations"), read),
        ("fleet", lambda c, t: c.get("/v1/fleet/health", params={"tenant": t.tenant}), read),
        ("fleet history", lambda c, t: c.get("/v1/status-history", params={"tenant": t.tenant}),
         read),
        ("dead letters", lambda c, t: c.get("/v1/dead-letters", params={"tenant": t.tenant}),
         read),
        ("due", lambda c, t: c.get("/v1/due", params={"tenant": t.tenant}), read),
        ("audit", lambda c, t: c.get("/v1/audit", params={"tenant": t.tenant}), read),
        ("contract", lambda c, t: c.get(f"/v1/contracts/{t.contract_id}"), case.contract_read()),
        ("tokens", lambda c, t: c.get("/v1/tokens", params={"tenant": t.tenant}), write(200)),
        ("create site", lambda c, t: c.post("/v1/sites", json={"tenant": t.tenant, "id": "new"}),
         write(201)),
        ("register gateway", lambda c, t: c.post(
            "/v1/gateways", json={"tenant": t.tenant, "site": "plant", "id": "gw-new"}),
         write(201)),
        ("register instrument", lambda c, t: c.post(
            "/v1/instruments", json={**INSTRUMENT, "tenant": t.tenant}), write(201)),
        ("change instrument", lambda c, t: c.patch(i.format(t=t), json={"description": "x"}),
         write(200)),
        ("record certificate", lambda c, t: c.post(
            i.format(t=t) + "/calibrations", json=CERTIFICATE), case.calibration_write()),
        ("amend certificate", lambda c, t: c.post(
            i.format(t=t) + f"/calibrations/{t.certificate}/amendments", json=AMEND),
         case.calibration_write()),
        ("create token", lambda c, t: c.post(
            "/v1/tokens", json={"tenant": t.tenant, "role": "viewer", "name": "n"}), write(201)),
        ("revoke token", lambda c, t: c.post(
            f"/v1/tokens/{t.token_id}/revoke", json={"reason": "r"}), write(200)),
        ("create contract", lambda c, t: c.post(
            "/v1/contracts", json={"provider": "gaugeco", "client": t.tenant}), write(201)),
        ("retire instrument", lambda c, t: c.post(
            i.format(t=t) + "/retire", json={"reason": "r"}), write(200)),
        ("create tenant", lambda c, t: c.post("/v1/tenants", json={"id": f"{t.tenant}-2"}), 403),
        # last: ending calprov's contract with acme takes acme out of calprov's scope
        ("end contract", lambda c, t: c.post(
            f"/v1/contracts/{t.contract_id}/end", json={"reason": "r"}), case.contract_end()),
    ]  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[LiveApi, dict[str, Target]]]:
    """A fresh seeded store per case (the probes change it), a provider with no clients
    (``gaugeco``) to make contracts with, calprov as a client of metrolab, and a token of
    every tenant to revoke."""
    clock = Clock()
    store = SqliteStore(tmp_path / "calstream.sqlite", clock=clock)
    seed(store)
    local = Principal.local("setup")
    operations = store.operations
    operations.create_tenant(local, {"id": "gaugeco", "kind": "calibration_provider"})
    own_contract = operations.create_contract(local, {"provider": "metrolab", "client": "calprov"})
    contracts = {c.client: c.contract_id for c in operations.contracts(operations.scope(local))}
    contracts["calprov"] = own_contract.contract_id
    targets = {}
    for tenant in ("acme", "initech", "globex", "calprov"):
        token = operations.create_token(local, {"tenant": tenant, "role": "viewer", "name": "t"})
        targets[tenant] = Target(
            tenant, instruments_of(tenant)[0], f"CAL-{instruments_of(tenant)[0]}-1",
            token.record.token_id, contracts[tenant],
        )  # fmt: skip
    try:
        with served(store, clock) as live:
            yield live, targets
    finally:
        store.close()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.caller_tenant}-{c.role}-{c.relation}")
def test_isolation(world: tuple[LiveApi, dict[str, Target]], case: Case) -> None:
    live, targets = world
    target = targets[RELATIONS[case.caller_tenant][case.relation]]
    if case.caller_tenant == "acme" and case.relation == OWN:
        target = replace(target, contract_id=targets["acme"].contract_id)  # calprov -> acme
    client = live.as_role(case.caller_tenant, case.role)
    wrong = []
    for what, probe, expected in _probes(case):
        response = probe(client, target)
        if response.status_code != expected:
            wrong.append(f"{what}: {response.status_code} (expected {expected}) {response.text}")
            continue
        if expected == 404:
            missing = probe(client, MISSING)
            assert missing.status_code == 404, f"{what} of a missing object: {missing.text}"
            assert response.headers["content-type"] == missing.headers["content-type"]
            assert response.text == MISSING.substitute(missing.text, target), what
    assert not wrong, "\n".join(wrong)


def test_lists_hold_only_what_the_caller_reads(
    world: tuple[LiveApi, dict[str, Target]],
) -> None:
    live, _ = world
    expected = {"calprov": {"calprov", "acme"}, "acme": {"acme"}, "globex": {"globex"}}
    for tenant, readable in expected.items():
        client = live.as_role(tenant, "viewer")
        for path, key in (
            ("/v1/tenants", "tenant_id"), ("/v1/sites", "tenant"), ("/v1/gateways", "tenant"),
            ("/v1/instruments", "tenant"), ("/v1/status-history", "tenant"),
            ("/v1/dead-letters", "tenant"), ("/v1/due", "tenant"), ("/v1/audit", "tenant"),
        ):  # fmt: skip
            items = client.get(path, params={"limit": 1000} if "v1/s" in path else None)
            assert items.status_code == 200, items.text
            assert {item[key] for item in items.json()["items"]} == readable, (tenant, path)
        worst = client.get("/v1/fleet/health", params={"worst": 100}).json()
        assert sum(worst["counts"].values()) == 2 * len(readable)
        assert {w["tenant"] for w in worst["worst"]} == readable
