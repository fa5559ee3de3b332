"""One InfluxDB database per tenant, and one read-only user per tenant, on a real influxd 1.x.

The sink with ``per_tenant=true`` writes each tenant's points to ``<database>_<tenant>``;
:func:`storage.influx.tenancy.sync_readers` gives each tenant a user that reads its database
(a provider's, its clients' under a contract in force) and nothing else. The server is the
``influxdb`` fixture's (:class:`calstream.servers.influxdb.LocalInfluxDB`) with authentication
on: without it InfluxDB 1.x checks no privilege at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from calstream.servers.influxdb import LocalInfluxDB, influxd_binary
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from storage.errors import ReaderRolesError
from storage.influx import InfluxSink, parse_store_url
from storage.influx.tenancy import reader_user, sync_readers
from tests.storage.test_influx_write import Simulated, simulate

ADMIN, ADMIN_PASSWORD = "admin", "admin-secret"
READS = {"acme": {"acme"}, "globex": {"globex"}, "calprov": {"calprov", "acme", "globex"}}


def password_of(tenant: str) -> str:
    return f"{tenant}-reader-password"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalInfluxDB]:
    try:
        influxd_binary()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    started = LocalInfluxDB(tmp_path / "influxdb", username=ADMIN, password=ADMIN_PASSWORD)
    started.start()
    try:
        yield started
    finally:
        started.kill()


def store_url(server: LocalInfluxDB, options: str = "per_tenant=true") -> str:
    return f"influxdb://{ADMIN}:{ADMIN_PASSWORD}@{server.host}:{server.port}/calstream?{options}"


_SIMULATED: dict[str, Simulated] = {}


@pytest.fixture
def simulated(fleet: Fleet) -> Simulated:
    if "fleet" not in _SIMULATED:
        _SIMULATED["fleet"] = simulate(fleet, days=1.0)
    return _SIMULATED["fleet"]


@pytest.fixture
def written(server: LocalInfluxDB, fleet: Fleet, simulated: Simulated) -> Simulated:
    """The simulated run written with one database per tenant, plus a dead letter that no
    tenant could be found for."""
    with InfluxSink.from_url(store_url(server), fleet, retry_s=5) as sink:
        for batch in simulated.batches:
            sink.write_series(batch)
        untenanted = simulated.batches[0].dead_letters[0]
        sink.write_series(OutputBatch(dead_letters=[replace(untenanted, tenant=None)]))
    return simulated


def as_user(server: LocalInfluxDB, user: str, password: str, statement: str,
            database: str) -> httpx.Response:  # fmt: skip
    return httpx.post(
        f"{server.base_url}/query",
        data={"q": statement, "db": database},
        auth=(user, password),
        timeout=10,
    )


def series(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert "error" not in result, result
    return list(result.get("series") or [])


def tag_values(server: LocalInfluxDB, database: str, measurement: str) -> set[str]:
    found = server.query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "tenant"', database)
    return {row[1] for s in found["results"][0].get("series") or [] for row in s["values"]}


def test_each_tenants_points_are_in_its_own_database(
    server: LocalInfluxDB, written: Simulated, fleet: Fleet
) -> None:
    databases = {
        row[0] for row in server.query("SHOW DATABASES")["results"][0]["series"][0]["values"]
    }
    assert {"calstream", "calstream_acme", "calstream_globex"} <= databases
    readings = {"acme": 0, "globex": 0}
    for batch in written.batches:
        for reading, _ in batch.readings:
            readings[reading.tenant] += 1
    # Which tenants have points of each measurement in the run (the alert series of a quiet
    # tenant is empty).
    present = {
        "reading": {"acme", "globex"},
        "health": {s.tenant for b in written.batches for s in b.snapshots},
        "fleet_status": {s.tenant for b in written.batches for s in b.snapshots},
        "alert": {c.tenant for b in written.batches for c in b.changes},
        "dead_letter": {d.tenant for b in written.batches for d in b.dead_letters},
    }
    assert all(present.values())
    for tenant in ("acme", "globex"):
        database = f"calstream_{tenant}"
        for measurement, tenants in present.items():
            expected = {tenant} & tenants
            assert tag_values(server, database, measurement) == expected, measurement
        count = server.query('SELECT count("seq") FROM "reading"', database)
        assert count["results"][0]["series"][0]["values"][0][1] == readings[tenant] > 100
    # The one dead letter of no tenant is in the base database, and nothing else is.
    base = server.query('SELECT count("count") FROM "dead_letter"', "calstream")
    assert base["results"][0]["series"][0]["values"][0][1] == 1
    assert server.query('SELECT count("seq") FROM "reading"', "calstream")["results"][0] == {
        "statement_id": 0
    }
    with InfluxSink.from_url(store_url(server), fleet) as sink:
        assert sink.reading_count() == sum(readings.values())
        # Written again, every point overwrites itself, in its own database.
        for batch in written.batches[:5]:
            sink.write_series(batch)
        assert sink.reading_count() == sum(readings.values())
        latest = sink._reader.latest_statuses()  # read back from both tenants' databases
    assert {tenant for _, tenant, _, _, _ in latest} == {"acme", "globex"}
    assert len(latest) == 6


def test_each_tenants_user_reads_its_database_and_nothing_else(
    server: LocalInfluxDB, written: Simulated
) -> None:
    target = parse_store_url(store_url(server))
    readers = sync_readers(target, READS, password_of)
    assert readers.users == {t: f"calstream_reader_{t}" for t in READS}
    assert readers.reads["calprov"] == ("calstream_acme", "calstream_calprov", "calstream_globex")
    assert sorted(readers.created) == sorted(readers.users.values())
    user, password = readers.users["acme"], password_of("acme")

    def query(statement: str, database: str = "calstream_acme") -> httpx.Response:
        return as_user(server, user, password, statement, database)

    own = series(query('SELECT count("seq") FROM "reading"'))
    assert own[0]["values"][0][1] > 100
    assert series(query('SHOW TAG VALUES FROM "health" WITH KEY = "tenant"'))[0]["values"] == [
        ["tenant", "acme"]
    ]
    assert series(query("SHOW DATABASES"))[0]["values"] == [["calstream_acme"]]
    refused = [
        ('SELECT * FROM "reading"', "calstream_globex"),
        ('SELECT * FROM "calstream_globex".."reading"', "calstream_acme"),
        ('SELECT * FROM "reading", "calstream_globex".."health"', "calstream_acme"),
        ('SELECT * FROM "dead_letter"', "calstream"),
        ('SELECT * INTO "calstream_acme".."copy" FROM "reading"', "calstream_acme"),
        ('DROP SERIES FROM "reading"', "calstream_acme"),
        ('DROP DATABASE "calstream_acme"', "calstream_acme"),
        ("SHOW USERS", "calstream_acme"),
        ('GRANT READ ON "calstream_globex" TO "calstream_reader_acme"', "calstream_acme"),
        ('CREATE DATABASE "mine"', "calstream_acme"),
    ]
    for statement, database in refused:
        response = query(statement, database)
        assert response.status_code == 403, (statement, response.text)
        assert "not authorized" in response.text, statement
    write = httpx.post(
        f"{server.base_url}/write",
        params={"db": "calstream_acme"},
        content=b'health,tenant=acme,site=north,instrument=x status="OK"',
        auth=(user, password),
    )
    assert write.status_code == 403 and "not authorized to write" in write.text
    wrong = as_user(server, user, password_of("globex"), "SHOW DATABASES", "calstream_acme")
    assert wrong.status_code == 401


def test_a_providers_user_reads_its_clients_until_the_contract_ends(
    server: LocalInfluxDB, written: Simulated
) -> None:
    target = parse_store_url(store_url(server))
    sync_readers(target, READS, password_of)
    user, password = "calstream_reader_calprov", password_of("calprov")
    for client in ("acme", "globex"):
        found = series(as_user(server, user, password, 'SELECT last("status") FROM "health"',
                               f"calstream_{client}"))  # fmt: skip
        assert found, client
    # One InfluxQL statement across the clients' databases (what the provider may read).
    statement = (
        'SELECT count("seq") FROM "calstream_acme".."reading", "calstream_globex".."reading"'
    )
    across = series(as_user(server, user, password, statement, "calstream_calprov"))
    assert across[0]["values"][0][1] > 200
    # globex's contract ended: the next sync takes the grant back, and only that one.
    ended = {**READS, "calprov": {"calprov", "acme"}}
    again = sync_readers(target, ended, password_of)
    assert again.created == ()
    assert again.revoked == ((user, "calstream_globex"),)
    response = as_user(server, user, password, 'SELECT * FROM "health"', "calstream_globex")
    assert response.status_code == 403
    assert series(as_user(server, user, password, 'SELECT last("status") FROM "health"',
                          "calstream_acme"))  # fmt: skip
    # A sync with nothing changed changes nothing.
    assert sync_readers(target, ended, password_of).revoked == ()


def test_a_new_password_replaces_the_old_and_an_admin_flag_is_taken_away(
    server: LocalInfluxDB,
) -> None:
    target = parse_store_url(store_url(server))
    server.query("CREATE USER \"calstream_reader_acme\" WITH PASSWORD 'old' WITH ALL PRIVILEGES")
    readers = sync_readers(target, {"acme": {"acme"}}, password_of)
    assert readers.created == ()
    users = {r[0]: r[1] for r in server.query("SHOW USERS")["results"][0]["series"][0]["values"]}
    assert users["calstream_reader_acme"] is False
    assert as_user(server, "calstream_reader_acme", "old", "SHOW DATABASES", "x").status_code == 401
    new = as_user(server, "calstream_reader_acme", password_of("acme"), "SHOW DATABASES", "x")
    assert series(new)[0]["values"] == [["calstream_acme"]]


def test_readers_need_a_per_tenant_store_and_an_admin(server: LocalInfluxDB) -> None:
    with pytest.raises(ReaderRolesError, match="add per_tenant=true"):
        sync_readers(parse_store_url(store_url(server, "rp=autogen")), READS, password_of)
    sync_readers(parse_store_url(store_url(server)), {"acme": {"acme"}}, password_of)
    not_admin = parse_store_url(
        f"influxdb://calstream_reader_acme:{password_of('acme')}@{server.host}:{server.port}"
        "/calstream?per_tenant=true"
    )
    with pytest.raises(ReaderRolesError, match="must be an InfluxDB admin"):
        sync_readers(not_admin, READS, password_of)
    assert reader_user("calstream_reader", "acme") == "calstream_reader_acme"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("influxdb2://h:8086?org=o&bucket=b&token=t&per_tenant=true", "for InfluxDB 1.x"),
        ("influxdb://h:8086/calstream?per_tenant=true&reads=victoriametrics", "for InfluxDB 1.x"),
        ("influxdb://h:8086/calstream?per_tenant=maybe", "per_tenant='maybe': use true or false"),
    ],
)
def test_per_tenant_is_an_influxdb_1_option(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_store_url(url)


def test_the_target_names_a_database_per_tenant() -> None:
    target = parse_store_url("influxdb://h/calstream?per_tenant=true")
    assert (target.database_of("acme"), target.database_of(None)) == ("calstream_acme", "calstream")
    assert "calstream_<tenant>" in target.redacted_url
    plain = parse_store_url("influxdb://h/calstream")
    assert (plain.per_tenant, plain.database_of("acme")) == (False, "calstream")
