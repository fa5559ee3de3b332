"""`calstream gateways list|register`: the gateways of a tenant's sites (``/v1/gateways``)."""

from __future__ import annotations

from typing import Annotated

import typer

from calstream.cli.common import DbOption, JsonOption, StoreOption
from calstream.cli.resources import (
    ApiOption,
    FileOption,
    Reach,
    ReasonOption,
    TenantOption,
    TokenOption,
    call,
    merged,
    table_of,
)

app = typer.Typer(help="Gateways: the edge devices that publish a site's readings.",
                  no_args_is_help=True)  # fmt: skip


@app.command("list")
def list_gateways(
    tenant: TenantOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Gateways of the tenants the caller reads."""
    call(
        Reach(api, token, store, db, json_output), "GET", "/v1/gateways",
        params={"tenant": tenant},
        show=table_of(("tenant", "site", "gateway_id", "description", "retired_at")),
    )  # fmt: skip


def register(
    file: FileOption = None,
    tenant: Annotated[str | None, typer.Option("--tenant", show_default=False)] = None,
    site: Annotated[str | None, typer.Option("--site", show_default=False)] = None,
    gateway_id: Annotated[
        str | None, typer.Option("--id", help="The gateway's id.", show_default=False)
    ] = None,
    description: Annotated[str | None, typer.Option("--description", show_default=False)] = None,
    reason: ReasonOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register a gateway at a registered site (an admin of the tenant)."""
    body = merged(
        file, tenant=tenant, site=site, id=gateway_id, description=description, reason=reason
    )
    call(Reach(api, token, store, db, json_output), "POST", "/v1/gateways", body=body)


app.command("register")(register)
app.command("create", hidden=True)(register)
