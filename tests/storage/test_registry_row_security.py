"""Row-level security on the PostgreSQL registry: a tenant's database role reads its own rows of
every table it is granted, a provider's role its clients' while a contract is in force, no
query of either reads another tenant's row, and neither can write.

Runs on the ``postgres`` fixture (a real PostgreSQL). Its server trusts local logins (the test
harness's ``--auth=trust``): a login is not asked for its password there, so the password a
role was given is checked against the SCRAM verifier PostgreSQL stored for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError

from metrology.assessment import HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.health import Status
from metrology.tenancy import Principal
from metrology.wire import DeadLetter, RejectReason
from storage.errors import ReaderRolesError
from storage.registry import SqlRegistry
from storage.registry.broker_access import BrokerAccess
from storage.registry.row_security import (
    POLICIES,
    ReaderRoles,
    reader_password,
    reader_role_name,
    sync_reader_roles,
)

LOCAL = Principal.local()
SECRET = "readers' secret"
TENANTS = ("acme", "calprov", "globex")


def password_of(tenant: str) -> str:
    return reader_password(SECRET, "postgresql", tenant)


class Registry:
    """The storage test fleet on PostgreSQL (real clock: the policies read the server's time),
    with states, alerts and dead letters of acme and globex, and one reader role per tenant."""

    def __init__(self, url: str, fleet: Fleet, make_snapshot: Callable[..., HealthSnapshot],
                 make_change: Callable[..., StatusChange],
                 make_dead_letter: Callable[..., DeadLetter]) -> None:  # fmt: skip
        self.url = url
        self.registry = SqlRegistry(url)
        self.registry.register_fleet(fleet)
        ops = self.registry.operations
        ops.create_token(LOCAL, {"tenant": "globex", "role": "viewer", "name": "wallboard"})
        for instrument_id in ("acme-n-TT-002", "globex-TT-002"):  # curve points of each tenant
            ops.record_calibration(LOCAL, {
                "instrument_id": instrument_id, "certificate": f"CURVE-{instrument_id}",
                "date": "2026-09-01T00:00:00Z", "expanded_uncertainty": 0.05,
                "interval_days": 365, "points": [{"indication": 0, "correction": 0.02},
                                                 {"indication": 100, "correction": -0.01}],
            })  # fmt: skip
        ops.register_gateway(LOCAL, {"tenant": "globex", "site": "main", "id": "gw-02"})
        BrokerAccess(ops).issue_gateway_credentials(
            LOCAL, {"tenant": "globex", "site": "main", "gateway": "gw-02"}
        )
        instruments = ("acme-n-TT-001", "acme-s-PT-001", "globex-TT-001", "globex-TT-002")
        batch = OutputBatch(
            snapshots=[make_snapshot(i, Status.DRIFTING) for i in instruments],
            changes=[make_change(i) for i in instruments],
            dead_letters=[
                make_dead_letter(RejectReason.MALFORMED_JSON, tenant="acme"),
                make_dead_letter(RejectReason.MALFORMED_JSON, tenant="globex"),
                make_dead_letter(RejectReason.BAD_TOPIC, tenant=None),
            ],
        )
        assert self.registry.write_events(batch) == (4, 3)
        self.prefix = f"cs{uuid.uuid4().hex[:8]}"
        self.engines: list[Engine] = []

    def sync(self, tenants: tuple[str, ...] = TENANTS) -> ReaderRoles:
        return self.registry.transact(
            "reader roles",
            lambda c: sync_reader_roles(c, tenants, password_of, self.prefix),
            write=True,
        )

    def role(self, tenant: str) -> str:
        return reader_role_name(self.prefix, tenant)

    def login(self, tenant: str) -> Engine:
        """An engine logged in as ``tenant``'s role (with its derived password)."""
        url = make_url(self.url).set(username=self.role(tenant), password=password_of(tenant))
        engine = create_engine(url)
        self.engines.append(engine)
        return engine

    def owner_rows(self, table: str) -> list[dict[str, Any]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                found = connection.execute(text(f"SELECT * FROM {table}"))
                return [dict(r._mapping) for r in found]
        finally:
            engine.dispose()

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()
        self.registry.close()


@pytest.fixture
def pg(
    postgres: Any,
    fleet: Fleet,
    make_snapshot: Callable[..., HealthSnapshot],
    make_change: Callable[..., StatusChange],
    make_dead_letter: Callable[..., DeadLetter],
) -> Iterator[Registry]:
    registry = Registry(postgres.url, fleet, make_snapshot, make_change, make_dead_letter)
    registry.sync()
    try:
        yield registry
    finally:
        registry.close()


def rows(engine: Engine, query: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(query))]


def expected_rows(pg: Registry, table: str, reads: set[str], own: str) -> list[dict[str, Any]]:
    """What the policies promise a role reading ``reads`` (its own tenant ``own``) sees."""
    everything = pg.owner_rows(table)
    if table in ("calibrations", "calibration_curve_points"):
        instruments = {r["instrument_id"]: r["tenant"] for r in pg.owner_rows("instruments")}
        return [r for r in everything if instruments[r["instrument_id"]] in reads]
    if table in ("contracts", "tenant_clients"):
        return [r for r in everything if own in (r["provider"], r["client"])]
    key = "tenant_id" if table == "tenants" else "tenant"
    kept = [r for r in everything if r[key] in reads]
    if table == "registry_audit":
        kept = [r for r in kept if r["entity"] != "token"]
    return kept


def by_key(found: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(sorted(r.items())) for r in found)


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_a_tenants_role_reads_its_own_rows_of_every_granted_table(
    pg: Registry, tenant: str
) -> None:
    engine = pg.login(tenant)
    seen_any = 0
    for table in POLICIES:
        with engine.connect() as connection:
            seen = [dict(r._mapping) for r in connection.execute(text(f"SELECT * FROM {table}"))]
        assert by_key(seen) == by_key(expected_rows(pg, table, {tenant}, tenant)), table
        seen_any += bool(seen)
        assert len(seen) < len(pg.owner_rows(table)) or table in ("tenant_clients", "contracts")
    assert seen_any == len(POLICIES)  # every table shows the tenant something
    counts = dict(rows(engine, "SELECT tenant, COUNT(*) FROM instruments GROUP BY tenant"))
    assert counts == {"acme": 4} if tenant == "acme" else {"globex": 2}
    assert dict(rows(engine, "SELECT status, COUNT(*) FROM instrument_state GROUP BY 1")) == {
        "DRIFTING": 2
    }


def test_no_query_of_one_tenant_reads_another_tenants_rows(pg: Registry) -> None:
    acme = pg.login("acme")
    for query in (
        "SELECT * FROM alerts WHERE tenant = 'globex'",
        "SELECT * FROM instruments WHERE tenant <> 'acme'",
        "SELECT * FROM dead_letters WHERE tenant IS NULL OR tenant <> 'acme'",
        "SELECT a.* FROM alerts AS a JOIN instrument_state AS s USING (instrument_id) "
        "WHERE s.tenant = 'globex'",
        "SELECT * FROM calibrations WHERE instrument_id LIKE 'globex%'",
        "WITH every AS (SELECT tenant FROM alerts UNION ALL SELECT tenant FROM sites) "
        "SELECT * FROM every WHERE tenant <> 'acme'",
        "SELECT * FROM tenants WHERE tenant_id IN ('globex', 'calprov')",
        "SELECT * FROM contracts WHERE client = 'globex'",
        "SELECT * FROM registry_audit WHERE tenant = 'globex' OR entity = 'token'",
        "SELECT * FROM calstream_readable_tenants() AS t WHERE t <> 'acme'",
        # A condition that would fail on a globex row never sees one: the policy comes first.
        "SELECT * FROM alerts WHERE 1 / (CASE WHEN tenant = 'globex' THEN 0 ELSE 1 END) = 1 "
        "AND tenant = 'globex'",
    ):
        assert rows(acme, query) == [], query
    assert rows(acme, "SELECT DISTINCT tenant FROM alerts") == [("acme",)]
    # The server's statistics of the tables are not shown to a role under row security.
    owner = create_engine(pg.url)
    with owner.begin() as connection:
        connection.execute(text("ANALYZE alerts"))
    owner.dispose()
    assert rows(acme, "SELECT * FROM pg_stats WHERE tablename = 'alerts'") == []
    refused = {
        "SELECT * FROM api_tokens": "permission denied",
        "SELECT * FROM broker_credentials": "permission denied",
        "SELECT * FROM reader_roles": "permission denied",
        "SELECT * FROM alembic_version": "permission denied",
        f'SET ROLE "{pg.role("globex")}"': "permission denied",
    }
    for query, message in refused.items():
        with pytest.raises(ProgrammingError, match=message), acme.connect() as connection:
            connection.execute(text(query))
    # Turning row security off makes the query fail, not see more.
    with (
        pytest.raises(DBAPIError, match="would be affected by row-level security"),
        acme.connect() as connection,
    ):
        connection.execute(text("SET row_security = off"))
        connection.execute(text("SELECT * FROM alerts"))


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO sites (tenant, site_id, name) VALUES ('acme', 'east', 'East')",
        "UPDATE instruments SET description = 'changed' WHERE tenant = 'acme'",
        "DELETE FROM alerts WHERE tenant = 'acme'",
        "TRUNCATE dead_letters",
        "CREATE TABLE mine (x int)",
        "ALTER TABLE alerts DISABLE ROW LEVEL SECURITY",
        "DROP POLICY calstream_tenant_read ON alerts",
    ],
)
def test_a_tenants_role_cannot_write(pg: Registry, statement: str) -> None:
    before = {t: len(pg.owner_rows(t)) for t in ("sites", "alerts", "dead_letters")}
    with pytest.raises(ProgrammingError), pg.login("acme").begin() as connection:
        connection.execute(text(statement))
    assert {t: len(pg.owner_rows(t)) for t in before} == before
    assert [r["description"] for r in pg.owner_rows("instruments")].count("changed") == 0


def test_a_providers_role_reads_its_clients_while_the_contract_is_in_force(pg: Registry) -> None:
    provider = pg.login("calprov")
    query = "SELECT tenant, COUNT(*) FROM instruments GROUP BY tenant ORDER BY tenant"
    assert rows(provider, query) == [("acme", 4), ("globex", 2)]
    assert rows(provider, "SELECT DISTINCT tenant FROM alerts ORDER BY 1") == [
        ("acme",), ("globex",)
    ]  # fmt: skip
    assert {r[0] for r in rows(provider, "SELECT tenant_id FROM tenants")} == set(TENANTS)
    # globex ends the contract now: from the next statement on, globex is out of reach,
    # without running anything (the policy reads the contract at each query).
    ops = pg.registry.operations
    (contract,) = [c for c in ops.contracts(ops.scope(LOCAL)) if c.client == "globex"]
    ops.end_contract(LOCAL, {"contract_id": contract.contract_id, "reason": "tender lost"})
    assert contract.valid_until is None
    deadline = time.monotonic() + 5  # the server's clock passes the end (same machine)
    while rows(provider, query) != [("acme", 4)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows(provider, query) == [("acme", 4)]
    assert rows(provider, "SELECT DISTINCT tenant FROM alerts") == [("acme",)]
    assert rows(provider, "SELECT COUNT(*) FROM calibrations WHERE instrument_id LIKE 'g%'") == [
        (0,)
    ]
    # Its own contracts stay visible to it, the ended one included; a client's other
    # providers' contracts never are.
    assert sorted(rows(provider, "SELECT client FROM contracts")) == [("acme",), ("globex",)]
    assert rows(pg.login("globex"), "SELECT provider, client FROM contracts") == [
        ("calprov", "globex")
    ]


def test_roles_are_synchronised_idempotently_with_the_derived_passwords(pg: Registry) -> None:
    first = pg.sync()
    assert first.created == ()
    assert first.roles == {t: pg.role(t) for t in TENANTS}
    owner = create_engine(pg.url)
    try:
        with owner.connect() as connection:
            stored = dict(
                connection.execute(
                    text("SELECT rolname, rolpassword FROM pg_authid WHERE rolname LIKE :p"),
                    {"p": f"{pg.prefix}%"},
                ).all()
            )
            login = dict(
                connection.execute(
                    text("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE :p"),
                    {"p": f"{pg.prefix}%"},
                ).all()
            )
            mapping = text("SELECT tenant, role_name FROM reader_roles")
            mapped = dict(connection.execute(mapping).all())
    finally:
        owner.dispose()
    assert login == {first.group: False, **{r: True for r in first.roles.values()}}
    assert mapped == first.roles
    for tenant, role in first.roles.items():
        assert scram_matches(stored[role], password_of(tenant)), role
        assert not scram_matches(stored[role], reader_password("another secret", "postgresql",
                                                               tenant))  # fmt: skip
    # A tenant created later gets its role at the next sync; the others are left as they were.
    pg.registry.operations.create_tenant(LOCAL, {"id": "initech", "name": "Initech"})
    again = pg.sync((*TENANTS, "initech"))
    assert again.created == (pg.role("initech"),)
    assert rows(pg.login("initech"), "SELECT COUNT(*) FROM instruments") == [(0,)]
    assert rows(pg.login("acme"), "SELECT COUNT(*) FROM instruments") == [(4,)]
    # The platform itself (the tables' owner) reads every tenant, and goes on writing.
    assert pg.registry.registered_instruments() == 6
    assert pg.registry.alert_count() == 4
    # The group itself cannot log in.
    with pytest.raises(DBAPIError, match="not permitted to log in"):
        url = make_url(pg.url).set(username=first.group)
        engine = create_engine(url)
        pg.engines.append(engine)
        engine.connect()


def test_long_tenant_ids_get_distinct_role_names_postgresql_keeps_whole() -> None:
    long_a, long_b = "a" * 60 + "-one", "a" * 60 + "-two"
    names = {reader_role_name("calstream", t) for t in (long_a, long_b)}
    assert len(names) == 2 and all(len(n) == 63 for n in names)
    assert reader_role_name("calstream", "acme") == "calstream_tenant_acme"


def test_an_sqlite_registry_has_no_roles_to_confine(tmp_path: Any) -> None:
    with (
        SqlRegistry(f"sqlite:///{tmp_path / 'r.sqlite'}") as registry,
        pytest.raises(ReaderRolesError, match="needs the registry on PostgreSQL"),
    ):
        registry.transact(
            "reader roles", lambda c: sync_reader_roles(c, ["acme"], password_of), write=True
        )


def test_derived_passwords_differ_by_secret_system_and_tenant() -> None:
    passwords = {
        reader_password(secret, system, tenant)
        for secret in ("s1", "s2")
        for system in ("postgresql", "influxdb")
        for tenant in ("acme", "globex")
    }
    assert len(passwords) == 8
    assert all(len(p) == 43 and p.replace("-", "").replace("_", "").isalnum() for p in passwords)
    assert reader_password("s1", "influxdb", "acme") == reader_password("s1", "influxdb", "acme")
    with pytest.raises(ReaderRolesError, match="empty"):
        reader_password("", "influxdb", "acme")


def scram_matches(verifier: str, password: str) -> bool:
    """Whether PostgreSQL's SCRAM-SHA-256 verifier was made from ``password`` (RFC 5802, 7677)."""
    method, iterations_salt, keys = verifier.split("$")
    assert method == "SCRAM-SHA-256"
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
