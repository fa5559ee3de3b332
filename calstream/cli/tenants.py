"""`calstream tenants list|show|create`: the tenants (``/v1/tenants``)."""

from __future__ import annotations

from typing import Annotated

import typer

from calstream.cli.common import DbOption, JsonOption, StoreOption
from calstream.cli.resources import (
    ApiOption,
    FileOption,
    Reach,
    ReasonOption,
    TokenOption,
    call,
    merged,
    segment,
    table_of,
)

app = typer.Typer(
    help="Tenants: manufacturers and calibration providers (created on the server only).",
    no_args_is_help=True,
)

COLUMNS = ("tenant_id", "name", "kind", "decision_rule", "shared_gateways")


@app.command("list")
def list_tenants(
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """The tenants the caller reads (every tenant for the local principal)."""
    call(Reach(api, token, store, db, json_output), "GET", "/v1/tenants", show=table_of(COLUMNS))


@app.command("show")
def show(
    tenant_id: Annotated[str, typer.Argument(help="The tenant's id.")],
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """One tenant."""
    call(Reach(api, token, store, db, json_output), "GET", f"/v1/tenants/{segment(tenant_id)}")


@app.command("create")
def create(
    file: FileOption = None,
    tenant_id: Annotated[
        str | None, typer.Option("--id", help="The tenant's id.", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option("--name", show_default=False)] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="manufacturer (default) or calibration_provider."),
    ] = None,
    decision_rule: Annotated[
        str | None,
        typer.Option("--decision-rule", help="simple, guard_band_u or risk:<p> (default rule)."),
    ] = None,
    shared_gateways: Annotated[
        bool | None,
        typer.Option(
            "--shared-gateways/--own-gateways",
            help="Readings admitted from any gateway of the instrument's site.",
            show_default=False,
        ),
    ] = None,
    reason: ReasonOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a tenant: the local principal only (a token is refused)."""
    body = merged(
        file, id=tenant_id, name=name, kind=kind, decision_rule=decision_rule,
        shared_gateways=shared_gateways, reason=reason,
    )  # fmt: skip
    call(Reach(api, token, store, db, json_output), "POST", "/v1/tenants", body=body)
