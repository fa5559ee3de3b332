"""``calstream dashboards``: export the generated dashboards, push them to a Grafana, create the
tenants' organisations there.

``calstream dashboards provision`` (the tenants' organisations, from the registry) is
registered beside these by the command line (``calstream.cli.grafana_tenants``): it reads the
registry, which the dashboards do not import.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="dashboards",
    help="Grafana dashboards as code: export the JSON or push it to a running Grafana.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class FlavourChoice(StrEnum):
    SQLITE = "sqlite"
    INFLUXDB = "influxdb"
    ALL = "all"


FlavourOption = Annotated[
    FlavourChoice,
    typer.Option(
        "--flavour",
        help="sqlite (embedded store, frser-sqlite-datasource), influxdb (InfluxQL) or all.",
    ),
]


@app.command("export")
def export_command(
    directory: Annotated[
        Path, typer.Argument(help="Folder to write <flavour>/<dashboard>.json into.")
    ],
    flavour: FlavourOption = FlavourChoice.ALL,
) -> None:
    """Write the dashboards as Grafana JSON (what deploy/grafana provisions from files)."""
    from dashboards.build import export, selected

    for path in export(directory, selected(flavour.value)):
        typer.echo(str(path))


@app.command("push")
def push_command(
    url: Annotated[str, typer.Option("--url", help="Grafana base URL, e.g. http://localhost:3000")],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="GRAFANA_TOKEN",
            help="Service account token with Editor rights (or GRAFANA_TOKEN): pushes the "
            "dashboards.",
        ),
    ] = None,
    flavour: FlavourOption = FlavourChoice.ALL,
    organisations: Annotated[
        Path | None,
        typer.Option(
            "--organisations",
            exists=True,
            dir_okay=False,
            help="organisations.yaml of `calstream dashboards provision`: create the tenants' "
            "organisations and have Grafana read its provisioning files again (instead of "
            "pushing dashboards).",
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user", envvar="GRAFANA_USER", help="Grafana server admin (for --organisations)."
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="GRAFANA_PASSWORD",
            help="Its password (or GRAFANA_PASSWORD).",
        ),
    ] = None,
) -> None:
    """Save the dashboards (or the tenants' organisations) in a running Grafana.

    Needs: pip install 'calstream\\[grafana]'."""
    from dashboards.errors import DashboardError

    console = Console(stderr=True)
    try:
        if organisations is not None:
            from dashboards.organisations import read_manifest
            from dashboards.push import push_organisations

            if not (user and password):
                console.print(
                    "[bold red]error:[/] --organisations needs a Grafana server admin: --user "
                    "and --password (or GRAFANA_USER and GRAFANA_PASSWORD)"
                )
                raise typer.Exit(2)
            planned = read_manifest(organisations.read_text(encoding="utf-8"))
            for done in push_organisations(url, (user, password), planned):
                typer.echo(f"{done.org_id}\t{done.tenant}\t{done.action}\t{done.name}")
            return
        if not token:
            console.print("[bold red]error:[/] pushing dashboards needs --token (or GRAFANA_TOKEN)")
            raise typer.Exit(2)
        from dashboards.build import selected
        from dashboards.push import push

        pushed = push(url, token, selected(flavour.value))
    except DashboardError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    for dashboard in pushed:
        typer.echo(f"{dashboard.uid}\t{dashboard.folder_uid}\t{dashboard.url}")
