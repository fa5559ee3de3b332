"""One Grafana organisation per tenant: the provisioning files of every tenant's organisation.

Grafana isolates organisations from one another: a user of one sees none of another's
datasources or dashboards. Each tenant gets one, holding:

- datasources that read that tenant's data only, with the tenant's read-only logins (made by
  ``calstream grafana-roles``):

  - ``calstream InfluxDB`` (uid ``calstream-influxdb``): the tenant's own InfluxDB 1.x database,
    InfluxQL, as the tenant's user (granted ``READ`` on that database alone);
  - for a calibration provider, ``calstream InfluxDB: <client>`` (uid
    ``calstream-influxdb-<client>``) per client under a contract in force: that client's
    database, as the provider's user (granted ``READ`` there while the contract is in force);
    the datasource of a client whose contract ended is deleted (``deleteDatasources``);
  - ``calstream registry`` (uid ``calstream-registry``): the PostgreSQL registry as the tenant's
    login role, whose rows row-level security confines to the tenant (and a provider's clients
    under a contract in force);

- the InfluxDB dashboards (fleet and instrument; the provider dashboard too for a provider),
  built with a ``datasource`` variable in place of the fixed datasource: in a provider's
  organisation it switches between its own data and each client's (one InfluxDB database per
  tenant: no datasource reads two). Links between the dashboards carry the choice.

The SQLite flavour is not provisioned in tenants' organisations: Grafana's SQLite datasource
reads the whole embedded store file, every tenant's rows, and a file has no users to confine.

Organisations cannot be created from provisioning files (Grafana refuses to start when a file
names an organisation that does not exist): ``calstream dashboards push --organisations``
creates them through the HTTP API from ``organisations.yaml`` (:func:`organisation_plan`).
Grafana numbers organisations in the order they are created, and the files address them by
number, so the numbers are planned here and kept: a tenant keeps the id the previous
``organisations.yaml`` gave it, a new tenant takes the next free one (main organisation: 1).

Written files (:func:`provisioning_files`), byte for byte the same for the same input::

    organisations.yaml                   the organisations to create, by id (read by push)
    datasources/calstream-tenants.yaml   every tenant's datasources, each with its orgId
    dashboards/calstream-tenants.yaml    one dashboard provider per organisation (orgId, path)
    dashboards/tenant/fleet.json, instrument.json, dashboards/provider/provider.json
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from dashboards.build import dashboard_document, render
from dashboards.datasources import INFLUXDB, Datasource
from dashboards.errors import ProvisioningError
from dashboards.flavours import INFLUXDB_FLAVOUR
from dashboards.fleet import FLEET
from dashboards.instrument import INSTRUMENT
from dashboards.model import DashboardSpec
from dashboards.provider import PROVIDER

__all__ = [
    "MANIFEST",
    "REGISTRY_DATASOURCE_UID",
    "InfluxConnection",
    "Organisation",
    "ReaderLogin",
    "RegistryConnection",
    "TenantOrganisation",
    "organisation_plan",
    "provisioning_files",
    "read_manifest",
    "tenant_dashboard",
    "write_files",
]

MANIFEST = "organisations.yaml"
DATASOURCES_FILE = "datasources/calstream-tenants.yaml"
DASHBOARD_PROVIDERS_FILE = "dashboards/calstream-tenants.yaml"
MAIN_ORGANISATION = 1
"""Grafana's own organisation (the platform's, with the committed dashboards)."""

VARIABLE = "datasource"
REGISTRY_DATASOURCE_UID = "calstream-registry"
POSTGRESQL_TYPE = "grafana-postgresql-datasource"
"""Grafana's core PostgreSQL plugin (``postgres`` before Grafana 10.2)."""

_TENANT_DATASOURCE = Datasource(type=INFLUXDB.type, uid=f"${{{VARIABLE}}}", name=INFLUXDB.name)
_TENANT_FLAVOUR = replace(INFLUXDB_FLAVOUR, datasource=_TENANT_DATASOURCE)
TENANT_DASHBOARDS = (FLEET, INSTRUMENT)
PROVIDER_DASHBOARDS = (PROVIDER,)


@dataclass(frozen=True, slots=True)
class ReaderLogin:
    """A read-only login of one tenant on one server."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TenantOrganisation:
    """What one tenant's organisation is given (from the registry, as it is now)."""

    tenant: str
    name: str
    provider: bool = False
    clients: tuple[str, ...] = ()
    """A provider's clients under a contract in force: a datasource each."""
    former_clients: tuple[str, ...] = ()
    """Clients it had a contract with, none in force now: their datasources are deleted."""
    influxdb: ReaderLogin | None = None
    registry: ReaderLogin | None = None


@dataclass(frozen=True, slots=True)
class InfluxConnection:
    """How Grafana reaches InfluxDB, and each tenant's database there."""

    url: str
    databases: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RegistryConnection:
    """How Grafana reaches the PostgreSQL registry."""

    host: str
    """``host:port``."""
    database: str
    ssl_mode: str = "require"


@dataclass(frozen=True, slots=True)
class Organisation:
    """One line of ``organisations.yaml``."""

    org_id: int
    name: str
    tenant: str


def _organisation_name(tenant: TenantOrganisation) -> str:
    return (
        tenant.tenant if tenant.name in ("", tenant.tenant) else f"{tenant.name} ({tenant.tenant})"
    )


def read_manifest(text: str) -> list[Organisation]:
    """The organisations of an ``organisations.yaml``; :class:`ProvisioningError` if it is not
    one."""
    try:
        document = yaml.safe_load(text) or {}
        return [
            Organisation(int(o["orgId"]), str(o["name"]), str(o["tenant"]))
            for o in document.get("organisations") or []
        ]
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ProvisioningError(
            f"{MANIFEST} is not calstream's list of organisations: {exc}"
        ) from exc


def organisation_plan(
    tenants: Sequence[TenantOrganisation], previous: Iterable[Organisation] = ()
) -> list[Organisation]:
    """Each tenant's organisation: the id ``previous`` gave it, else the next free one (in
    tenant id order), with the tenant's current name. Sorted by id."""
    kept = {o.tenant: o.org_id for o in previous}
    used = {MAIN_ORGANISATION, *kept.values()}
    plan = []
    for tenant in sorted(tenants, key=lambda t: t.tenant):
        org_id = kept.get(tenant.tenant)
        if org_id is None:
            org_id = max(used) + 1
            used.add(org_id)
        plan.append(Organisation(org_id, _organisation_name(tenant), tenant.tenant))
    return sorted(plan, key=lambda o: o.org_id)


def _links_carry_the_datasource(node: Any) -> Any:
    """Every link to a calstream dashboard keeps the datasource chosen."""
    if isinstance(node, dict):
        return {k: _links_carry_the_datasource(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_links_carry_the_datasource(v) for v in node]
    if isinstance(node, str) and node.startswith("/d/calstream-"):
        return f"{node}{'&' if '?' in node else '?'}var-{VARIABLE}=${{{VARIABLE}}}"
    return node


def _datasource_variable() -> dict[str, Any]:
    variable = (
        dashboard_builder.DatasourceVariable(VARIABLE)
        .label("Data")
        .description("Whose data: this organisation's own, or a client's (calibration providers)")
        .type(INFLUXDB.type)
        .regex(f"/^{INFLUXDB.name}/")
        .current(model.VariableOption(selected=True, text=INFLUXDB.name, value=INFLUXDB.uid))
    )
    built: dict[str, Any] = json.loads(json.dumps(variable.build(), cls=JSONEncoder))
    return built


def tenant_dashboard(spec: DashboardSpec) -> dict[str, Any]:
    """The InfluxDB flavour of ``spec`` on the ``datasource`` variable (see the module)."""
    document = _links_carry_the_datasource(dashboard_document(spec, _TENANT_FLAVOUR))
    document["templating"]["list"].insert(0, _datasource_variable())
    return dict(document)


def _escape(value: str) -> str:
    """Grafana expands ``$NAME`` in provisioning files; ``$$`` is a literal ``$``."""
    return value.replace("$", "$$")


def _influx_datasource(
    org_id: int, name: str, uid: str, url: str, database: str, login: ReaderLogin, default: bool
) -> dict[str, Any]:
    return {
        "name": name,
        "uid": uid,
        "orgId": org_id,
        "type": INFLUXDB.type,
        "access": "proxy",
        "url": url,
        "user": login.user,
        "isDefault": default,
        "editable": False,
        "jsonData": {"version": "InfluxQL", "dbName": database, "httpMode": "POST"},
        "secureJsonData": {"password": _escape(login.password)},
    }


def _datasources(
    tenant: TenantOrganisation,
    org_id: int,
    influx: InfluxConnection | None,
    registry: RegistryConnection | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(datasources, datasources to delete) of one organisation."""
    found: list[dict[str, Any]] = []
    deleted: list[dict[str, Any]] = []
    if influx is not None and tenant.influxdb is not None:
        found.append(
            _influx_datasource(org_id, INFLUXDB.name, INFLUXDB.uid, influx.url,
                               influx.databases[tenant.tenant], tenant.influxdb, True)
        )  # fmt: skip
        for client in tenant.clients:
            found.append(
                _influx_datasource(org_id, f"{INFLUXDB.name}: {client}",
                                   f"{INFLUXDB.uid}-{client}", influx.url,
                                   influx.databases[client], tenant.influxdb, False)
            )  # fmt: skip
        for client in tenant.former_clients:
            deleted.append({"name": f"{INFLUXDB.name}: {client}", "orgId": org_id})
    if registry is not None and tenant.registry is not None:
        found.append(
            {
                "name": "calstream registry",
                "uid": REGISTRY_DATASOURCE_UID,
                "orgId": org_id,
                "type": POSTGRESQL_TYPE,
                "access": "proxy",
                "url": registry.host,
                "user": tenant.registry.user,
                "isDefault": influx is None,
                "editable": False,
                "jsonData": {
                    "database": registry.database,
                    "sslmode": registry.ssl_mode,
                    "postgresVersion": 1500,
                },
                "secureJsonData": {"password": _escape(tenant.registry.password)},
            }
        )
    return found, deleted


def _dashboard_provider(name: str, org_id: int, folder: str, path: str) -> dict[str, Any]:
    return {
        "name": name,
        "orgId": org_id,
        "folder": folder,
        "folderUid": folder.replace(" ", "-"),
        "type": "file",
        "disableDeletion": False,
        "allowUiUpdates": False,
        "updateIntervalSeconds": 60,
        "options": {"path": path},
    }


_HEADER = """\
# Written by `calstream dashboards provision` from the registry: do not edit, provision again.
"""


def _yaml(document: dict[str, Any]) -> str:
    return _HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def provisioning_files(
    tenants: Sequence[TenantOrganisation],
    previous: Iterable[Organisation] = (),
    *,
    influx: InfluxConnection | None = None,
    registry: RegistryConnection | None = None,
    dashboards_path: str,
) -> dict[str, str]:
    """Every file to write, by path relative to the provisioning folder (module docstring).

    ``dashboards_path`` is where Grafana finds the ``dashboards/`` folder written here (its
    own path for it: a container mounts it elsewhere). :class:`ProvisioningError` when there is
    nothing to read with (no InfluxDB and no registry) or a tenant lacks a database.
    """
    if influx is None and registry is None:
        raise ProvisioningError(
            "a tenant's organisation needs a datasource: InfluxDB with one database per tenant, "
            "or the registry on PostgreSQL (the embedded SQLite store cannot be confined)"
        )
    if influx is not None:
        named = {t.tenant for t in tenants} | {c for t in tenants for c in t.clients}
        missing = sorted(named - set(influx.databases))
        if missing:
            raise ProvisioningError(f"no InfluxDB database for tenant(s) {', '.join(missing)}")
    plan = organisation_plan(tenants, previous)
    by_tenant = {t.tenant: t for t in tenants}
    datasources: list[dict[str, Any]] = []
    deleted: list[dict[str, Any]] = []
    providers: list[dict[str, Any]] = []
    for organisation in plan:
        tenant = by_tenant[organisation.tenant]
        found, gone = _datasources(tenant, organisation.org_id, influx, registry)
        datasources += found
        deleted += gone
        if influx is not None:
            providers.append(
                _dashboard_provider(f"calstream-{tenant.tenant}", organisation.org_id,
                                    "calstream", f"{dashboards_path}/tenant")
            )  # fmt: skip
            if tenant.provider:
                providers.append(
                    _dashboard_provider(f"calstream-{tenant.tenant}-clients", organisation.org_id,
                                        "calstream clients", f"{dashboards_path}/provider")
                )  # fmt: skip
    files = {
        MANIFEST: _yaml(
            {
                "organisations": [
                    {"orgId": o.org_id, "name": o.name, "tenant": o.tenant} for o in plan
                ]
            }
        ),
        DATASOURCES_FILE: _yaml(
            {"apiVersion": 1, "deleteDatasources": deleted, "datasources": datasources}
        ),
        DASHBOARD_PROVIDERS_FILE: _yaml({"apiVersion": 1, "providers": providers}),
    }
    if influx is not None:
        for folder, specs in (("tenant", TENANT_DASHBOARDS), ("provider", PROVIDER_DASHBOARDS)):
            for spec in specs:
                files[f"dashboards/{folder}/{spec.key}.json"] = render(tenant_dashboard(spec))
    return files


def write_files(directory: Path, files: Mapping[str, str]) -> list[Path]:
    """Write ``files`` under ``directory``; the datasources file, which holds passwords, is
    readable by its owner only."""
    written = []
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600 if relative == DATASOURCES_FILE else 0o644)
        written.append(path)
    return written
