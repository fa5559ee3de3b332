"""``calstream broker-auth`` and ``calstream gateways``: the broker's logins from the registry.

- ``broker-auth export --out DIR``: mosquitto's ``passwd`` and ``acl`` for the registry as it is
  (:mod:`storage.registry.broker_files`), written atomically; reload mosquitto with SIGHUP.
- ``broker-auth provider-credentials TENANT``: a new password for a calibration provider's alert
  reader, printed once.
- ``gateways credentials TENANT/SITE/GATEWAY``: a new password for a gateway, printed once.
- ``gateways retire TENANT/SITE/GATEWAY --reason ...``: the gateway stops logging in at the next
  export.

Every command runs as the local principal on the registry the settings name
(``CALSTREAM_STORE``, and ``CALSTREAM_REGISTRY`` beside an InfluxDB store).

``app`` is the ``broker-auth`` group; :func:`gateway_credentials` and :func:`retire_gateway` join
the registry's ``gateways`` group (:mod:`calstream.cli.gateways`).
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from calstream.cli.common import StoreOption, fail, load_settings, with_store
from storage.errors import StorageError

if TYPE_CHECKING:
    from calstream.settings import Settings
    from storage.contract import Store

__all__ = [
    "app",
    "export",
    "gateway_credentials",
    "provider_credentials",
    "retire_gateway",
]

app = typer.Typer(
    name="broker-auth",
    help="The MQTT broker's password file and ACL, generated from the registry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why (kept in the registry's audit trail).")
]
GatewayArgument = Annotated[
    str, typer.Argument(metavar="TENANT/SITE/GATEWAY", help="The gateway, as its topic names it.")
]


def _open(store_option: str | None, settings: Settings | None = None) -> Store:
    """The store (and so the registry) the settings name, or ``--store``."""
    from calstream.wiring import store_for

    settings = with_store(settings or load_settings(), store_option)
    try:
        return store_for(settings)
    except (ValueError, StorageError) as exc:
        fail(str(exc))


def _gateway_key(text: str) -> dict[str, str]:
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        fail(f"gateway {text!r}: name it TENANT/SITE/GATEWAY, e.g. acme/north/gw-01")
    tenant, site, gateway = parts
    return {"tenant": tenant, "site": site, "gateway": gateway}


def _print_issued(username: str, password: str) -> None:
    typer.echo(f"{username}\t{password}")
    Console(stderr=True).print(
        f"[bold]{username}[/]: the password above is shown once and kept nowhere (the registry "
        "holds its hash). Run `calstream broker-auth export` and reload the broker (SIGHUP) "
        "before the gateway logs in with it."
    )


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder to write passwd and acl into.")],
    components: Annotated[
        Path,
        typer.Option(
            "--components",
            exists=True,
            dir_okay=False,
            help="mosquitto password file holding calstream's own users (the pipeline, the "
            "forwarders, the simulated gateways, the health check), written with "
            "mosquitto_passwd.",
        ),
    ],
    forwarders: Annotated[
        int, typer.Option("--forwarders", min=0, help="Ingest forwarders calstream-ingest-<n>.")
    ] = 2,
    simulator: Annotated[
        bool,
        typer.Option(
            "--simulator/--no-simulator", help="The simulated gateways' user (calstream simulate)."
        ),
    ] = True,
    health_check: Annotated[
        bool,
        typer.Option("--health-check/--no-health-check", help="The broker health check's user."),
    ] = True,
    store_option: StoreOption = None,
) -> None:
    """Write mosquitto's password file and ACL for the registry as it is (then send SIGHUP)."""
    from storage.registry.broker_access import BrokerAccess
    from storage.registry.broker_files import (
        ACL_FILE,
        PASSWD_FILE,
        acl_text,
        broker_users,
        component_users,
        passwd_text,
        read_password_file,
        write_atomically,
    )

    settings = load_settings()
    pipeline = settings.mqtt_username or settings.client_id
    try:
        hashes = read_password_file(components.read_text(encoding="utf-8"))
        with closing(_open(store_option, settings)) as store:
            accounts = BrokerAccess(store.operations).accounts()
        users = broker_users(
            accounts, component_users(pipeline, forwarders, simulator, health_check), hashes
        )
        written = write_atomically(
            out, {PASSWD_FILE: passwd_text(users), ACL_FILE: acl_text(users)}
        )
    except (OSError, StorageError) as exc:
        fail(str(exc))
    for path in written:
        typer.echo(str(path))
    console = Console(stderr=True)
    console.print(
        f"{len(users)} users: {len(users) - len(accounts.gateways) - len(accounts.providers)} "
        f"of calstream, {len(accounts.gateways)} gateways, {len(accounts.providers)} calibration "
        "providers. Reload mosquitto: kill -HUP <pid> (docker compose kill -s HUP mosquitto)."
    )
    if accounts.gateways_without_credentials:
        console.print(
            "gateways in service without credentials (they cannot log in; "
            "`calstream gateways credentials TENANT/SITE/GATEWAY`): "
            + ", ".join(accounts.gateways_without_credentials)
        )
    if accounts.providers_without_credentials:
        console.print(
            "calibration providers without credentials "
            "(`calstream broker-auth provider-credentials TENANT`): "
            + ", ".join(accounts.providers_without_credentials)
        )


@app.command("provider-credentials")
def provider_credentials(
    tenant: Annotated[str, typer.Argument(help="The calibration provider's tenant id.")],
    reason: ReasonOption = None,
    store_option: StoreOption = None,
) -> None:
    """Issue a new broker password for a calibration provider's alert reader (shown once)."""
    from metrology.tenancy import Principal
    from storage.registry.broker_access import BrokerAccess

    try:
        with closing(_open(store_option)) as store:
            issued = BrokerAccess(store.operations).issue_provider_credentials(
                Principal.local(), {"tenant": tenant, "reason": reason}
            )
    except StorageError as exc:
        fail(str(exc))
    _print_issued(issued.username, issued.password)


def gateway_credentials(
    gateway: GatewayArgument,
    reason: ReasonOption = None,
    store_option: StoreOption = None,
) -> None:
    """Issue a new broker password for a registered gateway (printed once, never stored)."""
    from metrology.tenancy import Principal
    from storage.registry.broker_access import BrokerAccess

    document = {**_gateway_key(gateway), "reason": reason}
    try:
        with closing(_open(store_option)) as store:
            issued = BrokerAccess(store.operations).issue_gateway_credentials(
                Principal.local(), document
            )
    except StorageError as exc:
        fail(str(exc))
    _print_issued(issued.username, issued.password)


def retire_gateway(
    gateway: GatewayArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (required; audited).")],
    store_option: StoreOption = None,
) -> None:
    """Retire a gateway: it keeps its record and cannot log in after the next export."""
    from metrology.tenancy import Principal
    from storage.registry.broker_access import BrokerAccess

    document = {**_gateway_key(gateway), "reason": reason}
    try:
        with closing(_open(store_option)) as store:
            record = BrokerAccess(store.operations).retire_gateway(Principal.local(), document)
    except StorageError as exc:
        fail(str(exc))
    typer.echo(f"{record.tenant}/{record.site}/{record.gateway_id}\tretired")
