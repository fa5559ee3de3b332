"""``calstream dashboards``: export the generated dashboards, or push them to a Grafana."""

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
        str,
        typer.Option(
            "--token",
            envvar="GRAFANA_TOKEN",
            help="Service account token with Editor rights (or GRAFANA_TOKEN).",
        ),
    ],
    flavour: FlavourOption = FlavourChoice.ALL,
) -> None:
    """Save the dashboards in a running Grafana (needs: pip install 'calstream\\[grafana]')."""
    from dashboards.build import selected
    from dashboards.push import PushError, push

    try:
        pushed = push(url, token, selected(flavour.value))
    except PushError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    for dashboard in pushed:
        typer.echo(f"{dashboard.uid}\t{dashboard.folder_uid}\t{dashboard.url}")
