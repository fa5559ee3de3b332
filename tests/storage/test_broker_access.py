"""Broker credentials in the registry (SQLite store, SQL registry on SQLite and PostgreSQL):
mosquitto's hash checked against the real ``mosquitto_passwd``, issuing and retiring as audited
operations with their refusals, who may log in at a given time, and the two files rendered from
it (deterministic, atomic)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrology.tenancy import Principal, Role
from metrology.wire import READINGS_SUBSCRIPTION
from storage.errors import (
    BrokerAuthError,
    ConflictError,
    InvalidDocumentError,
    NotFoundError,
    PermissionDeniedError,
)
from storage.registry.broker_access import (
    MOSQUITTO_ITERATIONS,
    BrokerAccess,
    mosquitto_hash,
    mosquitto_verify,
)
from storage.registry.broker_files import (
    acl_text,
    broker_users,
    component_users,
    passwd_text,
    read_password_file,
    write_atomically,
)
from storage.registry.tables import broker_credentials
from tests.storage.conftest import T0, Clock, Registry

LOCAL = Principal.local()
ACME_ADMIN = Principal("acme-admin", "acme", Role.ADMIN, "tok-acme-admin")
ACME_VIEWER = Principal("acme-viewer", "acme", Role.VIEWER, "tok-acme-viewer")
GLOBEX_ADMIN = Principal("globex-admin", "globex", Role.ADMIN, "tok-globex-admin")
GW = {"tenant": "acme", "site": "north", "gateway": "gw-01"}


def mosquitto_passwd_line(tmp_path: Path, user: str, password: str) -> str:
    """What Debian's mosquitto_passwd writes for ``user``."""
    path = tmp_path / f"passwd-{user}"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), user, password], check=True)
    return path.read_text().strip()


# --- mosquitto's $7$ hash ---


def test_the_hash_is_the_format_mosquitto_passwd_writes(tmp_path: Path) -> None:
    line = mosquitto_passwd_line(tmp_path, "alice", "s3cret: with spaces")
    user, encoded = line.split(":", 1)
    _, kind, iterations, salt, key = encoded.split("$")
    assert (user, kind, int(iterations)) == ("alice", "7", MOSQUITTO_ITERATIONS)
    assert mosquitto_verify("s3cret: with spaces", encoded)
    assert not mosquitto_verify("s3cret: with spaces!", encoded)
    # The same salt gives mosquitto_passwd's very key: the format is the same, field by field.
    import base64

    ours = mosquitto_hash("s3cret: with spaces", salt=base64.b64decode(salt))
    assert ours == encoded
    assert (len(base64.b64decode(salt)), len(base64.b64decode(key))) == (12, 64)


@settings(max_examples=25, deadline=None)
@given(password=st.text(min_size=1, max_size=40), other=st.text(max_size=40))
def test_a_hash_verifies_its_password_and_no_other(password: str, other: str) -> None:
    encoded = mosquitto_hash(password)
    assert encoded.startswith(f"$7${MOSQUITTO_ITERATIONS}$")
    assert mosquitto_verify(password, encoded)
    assert mosquitto_verify(other, encoded) == (other == password)
    assert mosquitto_hash(password) != encoded  # a new salt every time


@pytest.mark.parametrize("encoded", ["", "$6$x$y", "$7$101$not base64!$x", "$7$x$AAAA$AAAA"])
def test_a_malformed_hash_verifies_nothing(encoded: str) -> None:
    assert not mosquitto_verify("anything", encoded)


# --- issuing credentials ---


@pytest.fixture
def loaded(registry: Registry, fleet: object) -> Registry:
    registry.register_fleet(fleet)  # type: ignore[arg-type]
    return registry


def stored_hashes(registry: Registry) -> dict[str, str]:
    def read(connection: object) -> dict[str, str]:
        rows = connection.execute(broker_credentials.select())  # type: ignore[attr-defined]
        return {r.username: r.password_hash for r in rows}

    return registry.transact("read", read, write=False)


def test_issuing_gateway_credentials_keeps_only_the_hash_and_audits_it(
    loaded: Registry, clock: Clock
) -> None:
    access = BrokerAccess(loaded.operations)
    issued = access.issue_gateway_credentials(ACME_ADMIN, {**GW, "reason": "commissioning"})
    assert (issued.username, issued.issued_at) == ("acme-north-gw-01", T0)
    assert len(issued.password) == 43 and issued.password not in repr(issued)
    (encoded,) = stored_hashes(loaded).values()
    assert mosquitto_verify(issued.password, encoded)
    (entry,) = loaded.operations.audit_trail(loaded.operations.scope(LOCAL), limit=1).items
    assert (entry.operation, entry.entity, entry.entity_key, entry.tenant, entry.reason) == (
        "issue_broker_credentials", "broker_login", "acme-north-gw-01", "acme", "commissioning"
    )  # fmt: skip
    assert entry.before is None and entry.after is not None
    assert "password_hash" not in entry.after and encoded not in str(entry.after)
    assert (entry.after["issued_by"], entry.after["site"]) == ("acme-admin", "north")
    change = loaded.operations.changes_since(0)[-1]
    assert (change.kind, change.key) == ("broker_login", "acme-north-gw-01")

    # Issued again: a new password replaces the old one (one row), the old one stops matching.
    clock.advance(60)
    again = access.issue_gateway_credentials(LOCAL, GW)
    hashes = stored_hashes(loaded)
    assert list(hashes) == ["acme-north-gw-01"]
    assert mosquitto_verify(again.password, hashes["acme-north-gw-01"])
    assert not mosquitto_verify(issued.password, hashes["acme-north-gw-01"])
    (entry,) = loaded.operations.audit_trail(loaded.operations.scope(LOCAL), limit=1).items
    assert entry.before is not None and entry.after is not None
    assert (entry.before["issued_at"], entry.after["issued_at"]) == (T0, T0 + 60)


def test_credential_refusals_with_their_reasons(loaded: Registry) -> None:
    access = BrokerAccess(loaded.operations)
    with pytest.raises(NotFoundError, match="gateway: acme/north/gw-09 is not registered"):
        access.issue_gateway_credentials(LOCAL, {**GW, "gateway": "gw-09"})
    with pytest.raises(PermissionDeniedError, match=r"'acme-viewer' \(viewer of acme\) may not"):
        access.issue_gateway_credentials(ACME_VIEWER, GW)
    with pytest.raises(PermissionDeniedError, match="tenant 'acme' is not in the scope"):
        access.issue_gateway_credentials(GLOBEX_ADMIN, GW)
    with pytest.raises(InvalidDocumentError, match="gateway"):
        access.issue_gateway_credentials(LOCAL, {"tenant": "acme", "site": "north"})
    with pytest.raises(ConflictError, match="'acme' is a manufacturer, not a calibration"):
        access.issue_provider_credentials(LOCAL, {"tenant": "acme"})
    # Ids with dashes can spell one user name twice: the second gateway is refused.
    ops = loaded.operations
    ops.create_tenant(LOCAL, {"id": "acme-north", "name": "dashes"})
    ops.create_site(LOCAL, {"tenant": "acme-north", "id": "gw"})
    ops.register_gateway(LOCAL, {"tenant": "acme-north", "site": "gw", "id": "01"})
    access.issue_gateway_credentials(LOCAL, GW | {"gateway": "gw-01"})
    with pytest.raises(ConflictError, match=r"'acme-north-gw-01' is already the login of gateway"):
        access.issue_gateway_credentials(LOCAL, {"tenant": "acme-north", "site": "gw",
                                                 "gateway": "01"})  # fmt: skip
    assert list(stored_hashes(loaded)) == ["acme-north-gw-01"]


def test_retiring_a_gateway_is_audited_and_refused_while_instruments_use_it(
    loaded: Registry, clock: Clock
) -> None:
    access = BrokerAccess(loaded.operations)
    with pytest.raises(ConflictError, match=r"acme/north/gw-01 still carries 3 instrument"):
        access.retire_gateway(ACME_ADMIN, {**GW, "reason": "replaced"})
    with pytest.raises(InvalidDocumentError, match="reason"):
        access.retire_gateway(ACME_ADMIN, GW)
    ops = loaded.operations
    ops.register_gateway(ACME_ADMIN, {"tenant": "acme", "site": "north", "id": "gw-02"})
    gw02 = {**GW, "gateway": "gw-02"}
    access.issue_gateway_credentials(ACME_ADMIN, gw02)
    clock.advance(5)
    retired = access.retire_gateway(ACME_ADMIN, {**gw02, "reason": "replaced"})
    assert (retired.gateway_id, retired.retired_at) == ("gw-02", T0 + 5)
    (entry,) = ops.audit_trail(ops.scope(LOCAL), limit=1).items
    assert (entry.operation, entry.entity_key, entry.reason) == (
        "retire_gateway", "acme/north/gw-02", "replaced"
    )  # fmt: skip
    with pytest.raises(ConflictError, match="was retired at"):
        access.retire_gateway(ACME_ADMIN, {**gw02, "reason": "again"})
    with pytest.raises(ConflictError, match="was retired at"):
        access.issue_gateway_credentials(ACME_ADMIN, gw02)
    assert [g.retired_at for g in ops.gateways(ops.scope(LOCAL), "acme") if g.site == "north"] == [
        None, T0 + 5
    ]  # fmt: skip


def test_who_may_log_in_follows_retirement_credentials_and_contracts_in_force(
    loaded: Registry, clock: Clock
) -> None:
    access = BrokerAccess(loaded.operations)
    ops = loaded.operations
    assert access.accounts().gateways == ()
    assert access.accounts().gateways_without_credentials == (
        "acme/north/gw-01", "acme/south/gw-01", "globex/main/gw-01"
    )  # fmt: skip
    assert access.accounts().providers_without_credentials == ("calprov",)
    for gateway in ({**GW}, {**GW, "site": "south"}, {"tenant": "globex", "site": "main",
                                                      "gateway": "gw-01"}):  # fmt: skip
        access.issue_gateway_credentials(LOCAL, gateway)
    access.issue_provider_credentials(LOCAL, {"tenant": "calprov"})
    accounts = access.accounts()
    assert [g.username for g in accounts.gateways] == [
        "acme-north-gw-01", "acme-south-gw-01", "globex-main-gw-01"
    ]  # fmt: skip
    ((provider),) = accounts.providers
    assert (provider.username, provider.clients) == ("provider-calprov", ("acme", "globex"))
    # globex ends its contract an hour from now: in force until then, not after.
    (contract,) = [c for c in ops.contracts(ops.scope(LOCAL)) if c.client == "globex"]
    ops.end_contract(LOCAL, {"contract_id": contract.contract_id, "reason": "tender lost",
                             "at": "2026-05-28T21:26:40Z"})  # fmt: skip
    assert access.accounts(at=T0 + 3599).providers[0].clients == ("acme", "globex")
    assert access.accounts(at=T0 + 3600).providers[0].clients == ("acme",)
    assert accounts.at == T0


# --- the files ---


def test_the_files_are_deterministic_complete_and_written_atomically(
    loaded: Registry, tmp_path: Path
) -> None:
    access = BrokerAccess(loaded.operations)
    access.issue_gateway_credentials(LOCAL, GW)
    access.issue_provider_credentials(LOCAL, {"tenant": "calprov"})
    components = component_users("calstream-pipeline", forwarders=1, simulator=False)
    hashes = {c.name: mosquitto_hash(f"{c.name}-pw") for c in components}
    users = broker_users(access.accounts(), components, hashes)
    assert [(u.name, u.writes, u.reads) for u in users] == [
        ("calstream-pipeline", ("calstream/v1/+/alerts",), (READINGS_SUBSCRIPTION,)),
        ("calstream-ingest-1", (), (READINGS_SUBSCRIPTION,)),
        ("calstream-healthcheck", (), ("$SYS/broker/uptime",)),
        ("acme-north-gw-01", ("calstream/v1/acme/north/gw-01/readings",),
         ("calstream/v1/acme/alerts",)),
        ("provider-calprov", (), ("calstream/v1/acme/alerts", "calstream/v1/globex/alerts")),
    ]  # fmt: skip
    passwd = passwd_text(users)
    assert read_password_file(passwd) == {u.name: u.password_hash for u in users}
    acl = acl_text(users)
    assert "user provider-calprov\ntopic read calstream/v1/acme/alerts\n" in acl
    # The same registry again: byte for byte the same files.
    again = broker_users(access.accounts(), components, hashes)
    assert (passwd_text(again), acl_text(again)) == (passwd, acl)

    out = tmp_path / "broker"
    paths = write_atomically(out, {"passwd": passwd, "acl": acl})
    assert [p.name for p in paths] == ["passwd", "acl"]
    assert sorted(p.name for p in out.iterdir()) == ["acl", "passwd"]  # no temporary left
    assert (out / "passwd").read_text() == passwd
    assert (out / "passwd").stat().st_mode & 0o777 == 0o600
    write_atomically(out, {"passwd": "replaced\n"})
    assert (out / "passwd").read_text() == "replaced\n"
    assert sorted(p.name for p in out.iterdir()) == ["acl", "passwd"]


def test_a_missing_component_password_or_a_clash_of_names_is_refused(loaded: Registry) -> None:
    access = BrokerAccess(loaded.operations)
    components = component_users("calstream-pipeline", forwarders=0)
    with pytest.raises(BrokerAuthError, match=r"no password for calstream's user 'calstream-pip"):
        broker_users(access.accounts(), components, {})
    # A gateway spelled like a component's user name.
    ops = loaded.operations
    ops.create_tenant(LOCAL, {"id": "calstream", "name": "clash"})
    ops.create_site(LOCAL, {"tenant": "calstream", "id": "simulated"})
    ops.register_gateway(LOCAL, {"tenant": "calstream", "site": "simulated", "id": "gateways"})
    access.issue_gateway_credentials(
        LOCAL, {"tenant": "calstream", "site": "simulated", "gateway": "gateways"}
    )
    hashes = {c.name: mosquitto_hash("x") for c in components}
    with pytest.raises(BrokerAuthError, match="'calstream-simulated-gateways' is both"):
        broker_users(access.accounts(), components, hashes)
    with pytest.raises(BrokerAuthError, match="line 2 of the components' password file"):
        read_password_file("# calstream's users\nno-colon-here\n")
