"""`calstream contracts list|show|create|end`: provider-client contracts (``/v1/contracts``)."""

from __future__ import annotations

from typing import Annotated

import typer

from calstream.cli.common import DbOption, JsonOption, StoreOption
from calstream.cli.resources import (
    ApiOption,
    FileOption,
    Reach,
    ReasonOption,
    RequiredReason,
    TokenOption,
    call,
    merged,
    table_of,
)

app = typer.Typer(
    help="Contracts: a calibration provider serves a client tenant (read, or calibrate too).",
    no_args_is_help=True,
)

ContractArgument = Annotated[int, typer.Argument(min=1, help="The contract's number.")]


@app.command("list")
def list_contracts(
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Contracts of the caller's tenant, as provider or client (ended ones too)."""
    columns = ("contract_id", "provider", "client", "scope", "valid_from", "valid_until",
               "ended_at", "end_reason")  # fmt: skip
    call(Reach(api, token, store, db, json_output), "GET", "/v1/contracts", show=table_of(columns))


@app.command("show")
def show(
    contract_id: ContractArgument,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """One contract."""
    call(Reach(api, token, store, db, json_output), "GET", f"/v1/contracts/{contract_id}")


@app.command("create")
def create(
    file: FileOption = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="The calibration provider.", show_default=False)
    ] = None,
    client: Annotated[
        str | None, typer.Option("--client", help="The client tenant.", show_default=False)
    ] = None,
    scope: Annotated[
        str | None,
        typer.Option("--scope", help="read (default) or calibration.", show_default=False),
    ] = None,
    valid_from: Annotated[
        str | None,
        typer.Option(
            "--from", help="In force from (ISO 8601; default: always).", show_default=False
        ),
    ] = None,
    valid_until: Annotated[
        str | None,
        typer.Option(
            "--until", help="Until, exclusive (ISO 8601; default: open-ended).", show_default=False
        ),
    ] = None,
    reason: ReasonOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a contract (an admin of the client)."""
    body = merged(
        file, provider=provider, client=client, scope=scope, valid_from=valid_from,
        valid_until=valid_until, reason=reason,
    )  # fmt: skip
    call(Reach(api, token, store, db, json_output), "POST", "/v1/contracts", body=body)


@app.command("end")
def end(
    contract_id: ContractArgument,
    reason: RequiredReason,
    at: Annotated[
        str | None,
        typer.Option("--at", help="When it ends (ISO 8601; default: now).", show_default=False),
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """End a contract (an admin of the client or of the provider)."""
    body = merged(None, reason=reason, at=at)
    call(
        Reach(api, token, store, db, json_output), "POST", f"/v1/contracts/{contract_id}/end",
        body=body,
    )  # fmt: skip
