"""``calstream dashboards provision``: one Grafana organisation per tenant, checked file by file
without a Grafana server, and its datasources' logins checked against the real servers they
name (the ``postgres`` fixture's registry, an influxd 1.x with authentication) after
``calstream grafana-roles`` made them. Creating the organisations in a live Grafana runs
against a configured server only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from calstream.cli import grafana_tenants
from calstream.servers.influxdb import LocalInfluxDB, influxd_binary
from dashboards.build import JSON_DIR
from dashboards.organisations import (
    InfluxConnection,
    Organisation,
    ReaderLogin,
    TenantOrganisation,
    organisation_plan,
    provisioning_files,
    read_manifest,
    tenant_dashboard,
)
from dashboards.provider import PROVIDER
from metrology.assessment import HealthSnapshot
from metrology.batch import OutputBatch
from metrology.fleet import load_fleet
from metrology.health import Status
from metrology.tenancy import Principal
from storage.influx import InfluxSink
from storage.registry import SqlRegistry
from storage.registry.row_security import reader_password
from tests.storage.conftest import T0, fleet_document

SECRET = "grafana readers' secret"
ADMIN, ADMIN_PASSWORD = "admin", "admin-secret"
LOCAL = Principal.local()
runner = CliRunner()


def command_app() -> typer.Typer:
    """The two commands as the calstream command line registers them."""
    app = typer.Typer()
    app.command("grafana-roles")(grafana_tenants.grafana_roles)
    app.command("provision")(grafana_tenants.provision)
    return app


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[LocalInfluxDB]:
    try:
        influxd_binary()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    server = LocalInfluxDB(tmp_path / "influxdb", username=ADMIN, password=ADMIN_PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.kill()


class Platform:
    """A PostgreSQL registry with the storage test fleet (acme, globex; calprov serves both)
    and per-tenant InfluxDB databases holding each tenant's health points."""

    def __init__(self, registry_url: str, influxd: LocalInfluxDB, folder: Path) -> None:
        self.registry_url = registry_url
        self.influxd = influxd
        self.store = (
            f"influxdb://{ADMIN}:{ADMIN_PASSWORD}@{influxd.host}:{influxd.port}/calstream"
            "?per_tenant=true"
        )
        self.out = folder / "grafana"
        self.prefix = f"cs{uuid.uuid4().hex[:8]}"
        fleet = load_fleet(fleet_document())
        with SqlRegistry(registry_url) as registry:
            registry.register_fleet(fleet)
        snapshots = [
            HealthSnapshot(instrument_id=i, tenant=i.split("-")[0], site="s", status=Status.OK,
                           conditions=(Status.OK,), reasons=("ok",), evaluated_at=T0,
                           last_reading_at=T0, numbers={})
            for i in ("acme-n-TT-001", "globex-TT-001")
        ]  # fmt: skip
        with InfluxSink.from_url(self.store, fleet) as sink:
            sink.write_series(OutputBatch(snapshots=snapshots))

    def run(self, *args: str) -> Any:
        env = {"CALSTREAM_REGISTRY": self.registry_url, "CALSTREAM_READER_SECRET": SECRET}
        result = runner.invoke(command_app(), [*args, "--store", self.store], env=env)
        assert result.exit_code == 0, result.output
        return result

    def roles(self) -> Any:
        return self.run("grafana-roles", "--role-prefix", self.prefix)

    def provision(self) -> Any:
        return self.run("provision", "--out", str(self.out), "--role-prefix", self.prefix,
                        "--registry-sslmode", "disable")  # fmt: skip

    def file(self, relative: str) -> Any:
        return yaml.safe_load((self.out / relative).read_text())

    def end_contract(self, client: str) -> None:
        with SqlRegistry(self.registry_url) as registry:
            ops = registry.operations
            (contract,) = [c for c in ops.contracts(ops.scope(LOCAL)) if c.client == client]
            ops.end_contract(LOCAL, {"contract_id": contract.contract_id, "reason": "ended"})


@pytest.fixture
def platform(postgres: Any, influxd: LocalInfluxDB, tmp_path: Path) -> Platform:
    return Platform(postgres.url, influxd, tmp_path)


def datasources_by_org(platform: Platform) -> dict[int, dict[str, dict[str, Any]]]:
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for datasource in platform.file("datasources/calstream-tenants.yaml")["datasources"]:
        found.setdefault(datasource["orgId"], {})[datasource["uid"]] = datasource
    return found


# --- the files ---


def test_every_tenant_has_an_organisation_with_its_datasources_and_dashboards(
    platform: Platform,
) -> None:
    platform.roles()
    result = platform.provision()
    written = sorted(Path(p).relative_to(platform.out).as_posix() for p in result.stdout.split())
    assert written == [
        "dashboards/calstream-tenants.yaml", "dashboards/provider/provider.json",
        "dashboards/tenant/fleet.json", "dashboards/tenant/instrument.json",
        "datasources/calstream-tenants.yaml", "organisations.yaml",
    ]  # fmt: skip
    manifest = platform.file("organisations.yaml")["organisations"]
    assert [(o["orgId"], o["tenant"], o["name"]) for o in manifest] == [
        (2, "acme", "ACME Precision Parts (acme)"),
        (3, "calprov", "Cal Provider (calprov)"),
        (4, "globex", "Globex (globex)"),
    ]
    sources = datasources_by_org(platform)
    assert {org: sorted(by_uid) for org, by_uid in sources.items()} == {
        2: ["calstream-influxdb", "calstream-registry"],
        3: ["calstream-influxdb", "calstream-influxdb-acme", "calstream-influxdb-globex",
            "calstream-registry"],
        4: ["calstream-influxdb", "calstream-registry"],
    }  # fmt: skip
    for org, tenant in ((2, "acme"), (3, "calprov"), (4, "globex")):
        influx = sources[org]["calstream-influxdb"]
        assert (influx["user"], influx["jsonData"]["dbName"], influx["isDefault"]) == (
            f"calstream_reader_{tenant}", f"calstream_{tenant}", True
        )  # fmt: skip
        assert influx["secureJsonData"]["password"] == reader_password(SECRET, "influxdb", tenant)
        assert influx["url"] == platform.influxd.base_url
        registry = sources[org]["calstream-registry"]
        assert registry["user"] == f"{platform.prefix}_tenant_{tenant}"
        assert registry["secureJsonData"]["password"] == reader_password(
            SECRET, "postgresql", tenant
        )
        url = make_url(platform.registry_url)
        assert registry["url"] == f"{url.host}:{url.port}"
        assert registry["jsonData"]["database"] == url.database
    for client in ("acme", "globex"):
        per_client = sources[3][f"calstream-influxdb-{client}"]
        assert (per_client["user"], per_client["jsonData"]["dbName"]) == (
            "calstream_reader_calprov", f"calstream_{client}"
        )  # fmt: skip
    providers = platform.file("dashboards/calstream-tenants.yaml")["providers"]
    placed = sorted((p["orgId"], p["folder"], Path(p["options"]["path"]).name) for p in providers)
    assert placed == [
        (2, "calstream", "tenant"), (3, "calstream", "tenant"),
        (3, "calstream clients", "provider"), (4, "calstream", "tenant"),
    ]  # fmt: skip
    assert (platform.out / "datasources/calstream-tenants.yaml").stat().st_mode & 0o777 == 0o600
    # The same registry again: the same files, byte for byte.
    before = {p: p.read_bytes() for p in platform.out.rglob("*") if p.is_file()}
    platform.provision()
    assert {p: p.read_bytes() for p in platform.out.rglob("*") if p.is_file()} == before


def test_each_datasource_logs_in_to_its_own_tenants_data_only(platform: Platform) -> None:
    """The logins the files give Grafana, tried on the real InfluxDB and PostgreSQL."""
    platform.roles()
    platform.provision()
    sources = datasources_by_org(platform)

    def influx(datasource: dict[str, Any], database: str) -> httpx.Response:
        return httpx.post(
            f"{datasource['url']}/query",
            data={"q": 'SELECT last("status") FROM "health" GROUP BY "tenant"', "db": database},
            auth=(datasource["user"], datasource["secureJsonData"]["password"]),
        )

    def tenants_seen(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        series = response.json()["results"][0].get("series") or []
        return {s["tags"]["tenant"] for s in series}

    acme = sources[2]["calstream-influxdb"]
    assert tenants_seen(influx(acme, "calstream_acme")) == {"acme"}
    assert influx(acme, "calstream_globex").status_code == 403
    provider = sources[3]
    for client in ("acme", "globex"):
        datasource = provider[f"calstream-influxdb-{client}"]
        assert tenants_seen(influx(datasource, datasource["jsonData"]["dbName"])) == {client}

    def registry_tenants(datasource: dict[str, Any]) -> set[str]:
        url = make_url(platform.registry_url).set(
            username=datasource["user"], password=datasource["secureJsonData"]["password"]
        )
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                return set(connection.execute(text("SELECT tenant FROM instruments")).scalars())
        finally:
            engine.dispose()

    assert registry_tenants(sources[2]["calstream-registry"]) == {"acme"}
    assert registry_tenants(sources[4]["calstream-registry"]) == {"globex"}
    assert registry_tenants(provider["calstream-registry"]) == {"acme", "globex"}

    # globex ends its contract: the next roles run revokes InfluxDB's grant, the next
    # provisioning deletes the provider's globex datasource; PostgreSQL follows by itself.
    platform.end_contract("globex")
    assert registry_tenants(provider["calstream-registry"]) == {"acme"}
    revoked = platform.roles()
    assert "1 grants revoked" in " ".join(revoked.stderr.split())
    assert influx(provider["calstream-influxdb-globex"], "calstream_globex").status_code == 403
    platform.provision()
    document = platform.file("datasources/calstream-tenants.yaml")
    assert document["deleteDatasources"] == [{"name": "calstream InfluxDB: globex", "orgId": 3}]
    assert "calstream-influxdb-globex" not in datasources_by_org(platform)[3]


def test_an_embedded_store_has_no_organisations_to_provision(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'calstream.sqlite'}"
    for args in (["provision", "--out", str(tmp_path / "out")], ["grafana-roles"]):
        result = runner.invoke(
            command_app(), [*args, "--store", store], env={"CALSTREAM_READER_SECRET": SECRET}
        )
        assert result.exit_code == 2
        words = " ".join(result.output.split())
        assert "SQLite" in words and ("cannot be confined" in words or "API" in words), words
    assert not (tmp_path / "out").exists()


# --- organisation ids ---


def test_organisation_ids_are_kept_and_new_tenants_take_the_next() -> None:
    tenants = [TenantOrganisation(t, t.title()) for t in ("globex", "acme")]
    first = organisation_plan(tenants)
    assert [(o.org_id, o.tenant) for o in first] == [(2, "acme"), (3, "globex")]
    # A new tenant sorts first, and takes the next id: nobody else's changes.
    grown = [*tenants, TenantOrganisation("aaa", "Aaa")]
    assert [(o.org_id, o.tenant) for o in organisation_plan(grown, first)] == [
        (2, "acme"), (3, "globex"), (4, "aaa")
    ]  # fmt: skip
    # An id set by hand (Grafana numbered it otherwise) is kept, and the next one follows it.
    edited = [Organisation(7, "Acme (acme)", "acme"), Organisation(3, "Globex", "globex")]
    assert [(o.org_id, o.tenant) for o in organisation_plan(grown, edited)] == [
        (3, "globex"), (7, "acme"), (8, "aaa")
    ]  # fmt: skip


def test_the_manifest_round_trips_and_a_foreign_file_is_refused() -> None:
    from dashboards.errors import ProvisioningError

    tenants = [TenantOrganisation("acme", "ACME", influxdb=ReaderLogin("u", "p$w"))]
    files = provisioning_files(
        tenants, influx=InfluxConnection("http://influx:8086", {"acme": "calstream_acme"}),
        dashboards_path="/var/lib/grafana/calstream",
    )  # fmt: skip
    assert read_manifest(files["organisations.yaml"]) == [Organisation(2, "ACME (acme)", "acme")]
    datasources = yaml.safe_load(files["datasources/calstream-tenants.yaml"])["datasources"]
    assert datasources[0]["secureJsonData"]["password"] == "p$$w"  # Grafana expands $NAME
    with pytest.raises(ProvisioningError, match="not calstream's list of organisations"):
        read_manifest("organisations: [{name: x}]")
    with pytest.raises(ProvisioningError, match="no InfluxDB database for tenant"):
        provisioning_files(
            tenants, influx=InfluxConnection("http://influx:8086", {}), dashboards_path="/x"
        )


# --- the dashboards of a tenant's organisation ---


@pytest.mark.parametrize("key", ["fleet", "instrument", "provider"])
def test_tenant_dashboards_read_the_datasource_variable_only(key: str) -> None:
    from dashboards.fleet import FLEET
    from dashboards.instrument import INSTRUMENT

    spec = {"fleet": FLEET, "instrument": INSTRUMENT, "provider": PROVIDER}[key]
    document = tenant_dashboard(spec)
    committed = json.loads((JSON_DIR / "influxdb" / f"{key}.json").read_text())
    assert document["uid"] == committed["uid"]
    assert len(document["panels"]) == len(committed["panels"])
    first, *others = document["templating"]["list"]
    assert (first["type"], first["name"], first["query"], first["regex"]) == (
        "datasource", "datasource", "influxdb", "/^calstream InfluxDB/"
    )  # fmt: skip
    assert [v["name"] for v in others] == [v["name"] for v in committed["templating"]["list"]]
    text_ = json.dumps(document)
    refs = [v for v in _walk(document) if isinstance(v, dict) and "uid" in v and "type" in v]
    datasource_refs = [r for r in refs if r["type"] == "influxdb"]
    assert datasource_refs and all(r["uid"] == "${datasource}" for r in datasource_refs)
    assert "calstream-sqlite" not in text_ and '"calstream-influxdb"' not in text_.replace(
        '"value": "calstream-influxdb"', ""
    )
    links = [v for v in _walk(document) if isinstance(v, str) and v.startswith("/d/calstream-")]
    assert links and all("var-datasource=${datasource}" in link for link in links)


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# --- a live Grafana ---

GRAFANA_ADMIN = os.environ.get("CALSTREAM_TEST_GRAFANA_ADMIN", "")


@pytest.mark.skipif(
    not GRAFANA_ADMIN or importlib.util.find_spec("grafana_client") is None,
    reason="no Grafana server configured: set CALSTREAM_TEST_GRAFANA_ADMIN=URL,USER,PASSWORD (a "
    "server admin of a Grafana whose organisations the test may create) and `pip install "
    "'calstream[grafana]'` to create the tenants' organisations in it",
)
def test_push_creates_the_tenants_organisations_in_a_real_grafana(tmp_path: Path) -> None:
    import grafana_client  # type: ignore[import-not-found, unused-ignore]

    from calstream.cli import app

    url, user, password = GRAFANA_ADMIN.split(",", 2)
    api = grafana_client.GrafanaApi.from_url(url, credential=(user, password))
    next_id = max(o["id"] for o in api.organizations.list_organization()) + 1
    suffix = os.urandom(3).hex()
    planned = [Organisation(next_id + n, f"calstream test {t} {suffix}", t)
               for n, t in enumerate(("acme", "globex"))]  # fmt: skip
    manifest = tmp_path / "organisations.yaml"
    listed = [{"orgId": o.org_id, "name": o.name, "tenant": o.tenant} for o in planned]
    manifest.write_text(yaml.safe_dump({"organisations": listed}))
    args = ["dashboards", "push", "--url", url, "--organisations", str(manifest),
            "--user", user, "--password", password]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[2] for line in result.stdout.splitlines()] == ["created", "created"]
    for organisation in planned:
        assert api.client.GET(f"/orgs/{organisation.org_id}")["name"] == organisation.name
    again = runner.invoke(app, args)
    assert [line.split("\t")[2] for line in again.stdout.splitlines()] == ["kept", "kept"]
