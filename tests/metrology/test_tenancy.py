"""The tenancy rules as a table: every role against every relation of a principal to a tenant.

The table below is the rule book (metrology/tenancy.py states it in words); hypothesis draws
principals, contract sets and times, and :func:`scope_of` must agree with the table for every
tenant.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrology.tenancy import LOCAL, Contract, ContractScope, Principal, Role, Scope, scope_of

TENANTS = ("acme", "globex", "initech", "calprov", "metlab")

# What a role may do on a tenant, by the principal's relation to that tenant.
OWN = "own tenant"
CLIENT_READ = "client under a read contract in force"
CLIENT_CALIBRATION = "client under a calibration contract in force"
UNRELATED = "no contract in force"

READ, CALIBRATE, ADMINISTER, ACT = "read", "calibrate", "administer", "act on alerts"
RULES: dict[Role, dict[str, set[str]]] = {
    Role.VIEWER: {OWN: {READ}, CLIENT_READ: {READ}, CLIENT_CALIBRATION: {READ}, UNRELATED: set()},
    Role.OPERATOR: {
        OWN: {READ, ACT}, CLIENT_READ: {READ}, CLIENT_CALIBRATION: {READ}, UNRELATED: set(),
    },
    Role.CALIBRATION: {
        OWN: {READ, CALIBRATE}, CLIENT_READ: {READ}, CLIENT_CALIBRATION: {READ, CALIBRATE},
        UNRELATED: set(),
    },
    Role.ADMIN: {
        OWN: {READ, ADMINISTER, ACT}, CLIENT_READ: {READ}, CLIENT_CALIBRATION: {READ},
        UNRELATED: set(),
    },
}  # fmt: skip


def allowed(scope: Scope, tenant: str) -> set[str]:
    checks = {
        READ: scope.may_read(tenant),
        CALIBRATE: scope.may_calibrate(tenant),
        ADMINISTER: scope.may_administer(tenant),
        ACT: scope.may_act_on_alerts(tenant),
    }
    return {name for name, ok in checks.items() if ok}


def relation(principal: Principal, tenant: str, contracts: list[Contract], at: float) -> str:
    """The principal's relation to ``tenant``, computed the long way round."""
    if tenant == principal.tenant:
        return OWN
    scopes = {
        c.scope
        for c in contracts
        if c.provider == principal.tenant
        and c.client == tenant
        and (c.valid_from is None or c.valid_from <= at)
        and (c.valid_until is None or at < c.valid_until)
    }
    if ContractScope.CALIBRATION in scopes:
        return CLIENT_CALIBRATION
    return CLIENT_READ if scopes else UNRELATED


times = st.one_of(st.none(), st.integers(0, 100).map(float))


@st.composite
def contracts(draw: st.DrawFn) -> Contract:
    provider, client = draw(st.lists(st.sampled_from(TENANTS), min_size=2, max_size=2,
                                     unique=True))  # fmt: skip
    start, end = draw(times), draw(times)
    if start is not None and end is not None and end <= start:
        start, end = end, start + 1.0
    return Contract(provider, client, draw(st.sampled_from(ContractScope)), start, end)


principals = st.builds(
    Principal,
    name=st.sampled_from(["ann", "bob"]),
    tenant=st.sampled_from(TENANTS),
    role=st.sampled_from(Role),
    token_id=st.text("0123456789abcdef", min_size=12, max_size=12),
)


@given(principals, st.lists(contracts(), max_size=8), st.integers(-10, 110).map(float))
def test_every_role_on_every_tenant_follows_the_table(
    principal: Principal, given_contracts: list[Contract], at: float
) -> None:
    scope = scope_of(principal, given_contracts, at)
    assert not scope.creates_tenants and not scope.unconfined
    for tenant in TENANTS:
        expected = RULES[principal.role][relation(principal, tenant, given_contracts, at)]
        assert allowed(scope, tenant) == expected, (tenant, principal.role)
    # Nothing outside the known tenants, and never a row without a tenant.
    assert not scope.may_read(None)
    assert allowed(scope, "nobody-knows") == set()


@given(st.lists(contracts(), max_size=8), st.integers(-10, 110).map(float))
def test_the_local_principal_may_do_everything(given_contracts: list[Contract], at: float) -> None:
    local = Principal.local("ops on the server")
    assert local.is_local and local.token_id == LOCAL and local.tenant is None
    scope = scope_of(local, given_contracts, at)
    assert scope.unconfined and scope.creates_tenants
    for tenant in (*TENANTS, "not-yet-created"):
        assert allowed(scope, tenant) == {READ, CALIBRATE, ADMINISTER, ACT}
    assert scope.may_read(None)  # dead letters that name no tenant


def test_a_token_named_local_is_not_the_local_principal() -> None:
    impostor = Principal("local", "acme", Role.ADMIN, LOCAL)
    assert not impostor.is_local
    scope = scope_of(impostor, [], 0.0)
    assert not scope.creates_tenants
    assert allowed(scope, "acme") == {READ, ADMINISTER, ACT}
    assert allowed(scope, "globex") == set()


@pytest.mark.parametrize(
    ("at", "reads"),
    [(9.999, False), (10.0, True), (19.999, True), (20.0, False)],
)
def test_a_contract_is_in_force_from_its_start_until_just_before_its_end(
    at: float, reads: bool
) -> None:
    contract = Contract("calprov", "acme", ContractScope.CALIBRATION, 10.0, 20.0)
    lab = Principal("lab", "calprov", Role.CALIBRATION, "0123456789ab")
    scope = scope_of(lab, [contract], at)
    assert scope.may_read("acme") is reads
    assert scope.may_calibrate("acme") is reads
    # Another provider's contract with the same client grants this one nothing.
    other = Principal("lab", "metlab", Role.CALIBRATION, "0123456789ab")
    assert not scope_of(other, [contract], at).may_read("acme")


@given(contracts(), contracts())
def test_overlap_is_symmetric_and_means_a_shared_instant(first: Contract, second: Contract) -> None:
    assert first.overlaps(second) == second.overlaps(first)
    same_pair = (first.provider, first.client) == (second.provider, second.client)
    # The instants where each is in force, on a grid fine enough for the drawn bounds.
    grid = [x / 2 for x in range(-40, 260)]
    shared = any(first.in_force_at(t) and second.in_force_at(t) for t in grid)
    assert first.overlaps(second) == (same_pair and shared)


def test_back_to_back_contracts_do_not_overlap() -> None:
    periods = [(None, 10.0), (10.0, 20.0), (20.0, None)]
    chain = [Contract("calprov", "acme", ContractScope.READ, a, b) for a, b in periods]
    for earlier, later in pairwise(chain):
        assert not earlier.overlaps(later)
    assert chain[0].overlaps(Contract("calprov", "acme", ContractScope.READ, 9.0, 11.0))
