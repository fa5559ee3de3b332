"""``calstream grafana-roles`` and ``calstream dashboards provision``: what each tenant's Grafana
organisation may read, from the registry as it is now.

- ``grafana-roles``: the tenants' read-only logins where the data is. On a PostgreSQL registry,
  one login role per tenant under row-level security (:mod:`storage.registry.row_security`); on
  an InfluxDB 1.x store with one database per tenant (``per_tenant=true``), one read-only user
  per tenant with ``READ`` on the databases it may read (:mod:`storage.influx.tenancy`).
- ``dashboards provision --out DIR``: Grafana's provisioning files, one organisation per tenant
  with datasources that log in as those roles and users (:mod:`dashboards.organisations`).

Both derive each login's password from one secret (``--reader-secret`` or
``CALSTREAM_READER_SECRET``: :func:`storage.registry.row_security.reader_password`), so they
agree without the passwords being stored anywhere. Who reads what follows
:func:`metrology.tenancy.scope_of`: a tenant reads itself, a calibration provider also each
client under a contract in force now.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from calstream.cli.common import StoreOption, fail, load_settings, with_store
from storage.errors import StorageError

if TYPE_CHECKING:
    from metrology.tenancy import Contract
    from storage.contract import Store
    from storage.influx import InfluxTarget
    from storage.registry import SqlRegistry
    from storage.registry.records import TenantRecord

__all__ = ["grafana_roles", "provision"]

SecretOption = Annotated[
    str,
    typer.Option(
        "--reader-secret",
        envvar="CALSTREAM_READER_SECRET",
        help="Secret the tenants' read-only passwords are derived from (or "
        "CALSTREAM_READER_SECRET); the same for grafana-roles and dashboards provision.",
    ),
]
RolePrefixOption = Annotated[
    str,
    typer.Option(
        "--role-prefix",
        help="PostgreSQL roles <prefix>_reader and <prefix>_tenant_<tenant> (roles belong to the "
        "whole server: one prefix per registry database).",
    ),
]
UserPrefixOption = Annotated[
    str, typer.Option("--influxdb-user-prefix", help="InfluxDB users <prefix>_<tenant>.")
]


@dataclass(frozen=True, slots=True)
class _Tenancy:
    """The registry's tenants and contracts at one time."""

    at: float
    tenants: list[TenantRecord]
    contracts: list[Contract]

    def reads(self) -> dict[str, frozenset[str]]:
        """Each tenant's readable tenants now (its own, and a provider's clients in force)."""
        from metrology.tenancy import Principal, Role, scope_of

        readable = {}
        for t in self.tenants:
            scope = scope_of(Principal("grafana", t.tenant_id, Role.VIEWER, "grafana"),
                             self.contracts, self.at)  # fmt: skip
            readable[t.tenant_id] = frozenset(scope.reads or ())
        return readable

    def former_clients(self, provider: str, reads: frozenset[str]) -> tuple[str, ...]:
        """Clients ``provider`` had a contract with, none of them in force now (``reads``: what
        it reads now)."""
        ever = {c.client for c in self.contracts if c.provider == provider}
        return tuple(sorted(ever - reads))


def _tenancy(store: Store) -> _Tenancy:
    from metrology.tenancy import Principal

    operations = store.operations
    scope = operations.scope(Principal.local())
    contracts = [record.contract for record in operations.contracts(scope)]
    return _Tenancy(scope.at, operations.tenants(scope), contracts)


def _registry(store: Store) -> SqlRegistry | None:
    """The store's SQL registry when it is PostgreSQL (None: SQLite, no roles to confine)."""
    from storage.registry import SqlRegistry

    registry = getattr(store, "registry", store)
    if isinstance(registry, SqlRegistry) and registry.url.startswith("postgresql"):
        return registry
    return None


def _per_tenant_influx(store_url: str) -> InfluxTarget | None:
    from storage.influx import parse_store_url
    from storage.select import store_kind

    if store_kind(store_url) != "influxdb":
        return None
    target = parse_store_url(store_url)
    return target if target.per_tenant else None


def grafana_roles(
    reader_secret: SecretOption,
    role_prefix: RolePrefixOption = "calstream",
    influxdb_user_prefix: UserPrefixOption = "calstream_reader",
    store_option: StoreOption = None,
) -> None:
    """Create or update each tenant's read-only database role and InfluxDB user.

    The PostgreSQL registry's row-level security reads the role; the InfluxDB user reads one
    database per tenant. What a contract no longer grants is revoked."""
    from calstream.wiring import store_for
    from storage.influx.tenancy import sync_readers
    from storage.registry.row_security import reader_password, sync_reader_roles

    settings = with_store(load_settings(), store_option)
    console = Console(stderr=True)
    try:
        with closing(store_for(settings)) as store:
            tenancy = _tenancy(store)
            reads = tenancy.reads()
            registry = _registry(store)
            target = _per_tenant_influx(settings.store_url)
            if registry is None and target is None:
                fail(
                    "nothing to confine: the registry is not PostgreSQL and the store is not "
                    "InfluxDB with one database per tenant (per_tenant=true). The embedded SQLite "
                    "store has no users: a tenant reads its data through the API"
                )
            if registry is not None:
                roles = registry.transact(
                    "reader roles",
                    lambda c: sync_reader_roles(
                        c, list(reads), lambda t: reader_password(reader_secret, "postgresql", t),
                        role_prefix,
                    ),
                    write=True,
                )  # fmt: skip
                for tenant, role in roles.roles.items():
                    typer.echo(f"postgresql\t{tenant}\t{role}")
                console.print(
                    f"PostgreSQL: {len(roles.roles)} tenant roles under row-level security "
                    f"({len(roles.created)} new), group {roles.group}"
                )
            if target is not None:
                readers = sync_readers(
                    target, reads, lambda t: reader_password(reader_secret, "influxdb", t),
                    influxdb_user_prefix,
                )  # fmt: skip
                for tenant, user in readers.users.items():
                    typer.echo(f"influxdb\t{tenant}\t{user}\t{','.join(readers.reads[tenant])}")
                console.print(
                    f"InfluxDB: {len(readers.users)} read-only users ({len(readers.created)} new), "
                    f"{len(readers.revoked)} grants revoked"
                )
    except (ValueError, StorageError) as exc:
        fail(str(exc))


def provision(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the provisioning into.")],
    reader_secret: SecretOption,
    influxdb_url: Annotated[
        str | None,
        typer.Option(
            "--influxdb-url",
            help="InfluxDB as Grafana reaches it (default: the store URL's server).",
        ),
    ] = None,
    registry_host: Annotated[
        str | None,
        typer.Option(
            "--registry-host",
            help="PostgreSQL registry as Grafana reaches it, host:port (default: the registry "
            "URL's).",
        ),
    ] = None,
    registry_sslmode: Annotated[
        str, typer.Option("--registry-sslmode", help="sslmode of the registry datasource.")
    ] = "require",
    dashboards_path: Annotated[
        str | None,
        typer.Option(
            "--dashboards-path",
            help="Where Grafana finds OUT/dashboards (default: its path here; a container "
            "mounts it elsewhere).",
        ),
    ] = None,
    role_prefix: RolePrefixOption = "calstream",
    influxdb_user_prefix: UserPrefixOption = "calstream_reader",
    store_option: StoreOption = None,
) -> None:
    """Write Grafana provisioning: one organisation per tenant, its datasources and dashboards.

    A tenant's datasources read its own data only (a provider's: its clients' under contracts
    in force)."""
    from sqlalchemy.engine import make_url

    from calstream.wiring import store_for
    from dashboards.errors import DashboardError
    from dashboards.organisations import (
        MANIFEST,
        InfluxConnection,
        ReaderLogin,
        RegistryConnection,
        TenantOrganisation,
        provisioning_files,
        read_manifest,
        write_files,
    )
    from metrology.fleet import TenantKind
    from storage.influx.tenancy import reader_user
    from storage.registry.row_security import reader_password, reader_role_name

    settings = with_store(load_settings(), store_option)
    try:
        with closing(store_for(settings)) as store:
            tenancy = _tenancy(store)
            registry = _registry(store)
            target = _per_tenant_influx(settings.store_url)
            reads = tenancy.reads()
            organisations = []
            for t in tenancy.tenants:
                provider = t.tenant_kind is TenantKind.CALIBRATION_PROVIDER
                influx_login = registry_login = None
                if target is not None:
                    influx_login = ReaderLogin(
                        reader_user(influxdb_user_prefix, t.tenant_id),
                        reader_password(reader_secret, "influxdb", t.tenant_id),
                    )
                if registry is not None:
                    registry_login = ReaderLogin(
                        reader_role_name(role_prefix, t.tenant_id),
                        reader_password(reader_secret, "postgresql", t.tenant_id),
                    )
                organisations.append(
                    TenantOrganisation(
                        t.tenant_id, t.name, provider,
                        clients=tuple(sorted(reads[t.tenant_id] - {t.tenant_id})),
                        former_clients=tenancy.former_clients(t.tenant_id, reads[t.tenant_id]),
                        influxdb=influx_login, registry=registry_login,
                    )
                )  # fmt: skip
            influx = None
            if target is not None:
                databases = {t.tenant_id: target.database_of(t.tenant_id) for t in tenancy.tenants}
                influx = InfluxConnection(influxdb_url or target.base_url, databases)
            connection = None
            if registry is not None:
                url = make_url(registry.url)
                host = registry_host or f"{url.host or 'localhost'}:{url.port or 5432}"
                connection = RegistryConnection(host, url.database or "", registry_sslmode)
            manifest = out / MANIFEST
            previous = read_manifest(manifest.read_text()) if manifest.exists() else []
            files = provisioning_files(
                organisations, previous, influx=influx, registry=connection,
                dashboards_path=dashboards_path or str(out.resolve() / "dashboards"),
            )  # fmt: skip
            written = write_files(out, files)
    except (ValueError, OSError, StorageError, DashboardError) as exc:
        fail(str(exc))
    for path in written:
        typer.echo(str(path))
    Console(stderr=True).print(
        f"{len(organisations)} organisations. Copy {out / 'datasources'} and "
        f"{out / 'dashboards'} into Grafana's provisioning folder, then create the "
        f"organisations and have Grafana read the files: `calstream dashboards push "
        f"--organisations {manifest} --user <server admin>`."
    )
