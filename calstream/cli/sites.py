"""`calstream sites list|create`: a tenant's sites (``/v1/sites``)."""

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

app = typer.Typer(help="Sites of a tenant.", no_args_is_help=True)


@app.command("list")
def list_sites(
    tenant: TenantOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Sites of the tenants the caller reads."""
    call(
        Reach(api, token, store, db, json_output), "GET", "/v1/sites", params={"tenant": tenant},
        show=table_of(("tenant", "site_id", "name")),
    )  # fmt: skip


@app.command("create")
def create(
    file: FileOption = None,
    tenant: Annotated[str | None, typer.Option("--tenant", show_default=False)] = None,
    site_id: Annotated[
        str | None, typer.Option("--id", help="The site's id.", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option("--name", show_default=False)] = None,
    reason: ReasonOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a site (an admin of the tenant)."""
    body = merged(file, tenant=tenant, id=site_id, name=name, reason=reason)
    call(Reach(api, token, store, db, json_output), "POST", "/v1/sites", body=body)
