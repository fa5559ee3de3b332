"""`calstream tokens create|list|revoke`: API tokens (``/v1/tokens``).

``create`` prints the token once: it is stored only as a digest and can never be shown again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from calstream.cli.common import DbOption, JsonOption, StoreOption
from calstream.cli.resources import (
    ApiOption,
    Reach,
    ReasonOption,
    RequiredReason,
    TenantOption,
    TokenOption,
    call,
    segment,
    table_of,
)
from metrology.timebase import SECONDS_PER_DAY

app = typer.Typer(help="API tokens: a tenant and a role each.", no_args_is_help=True)

ROLES = ("viewer", "operator", "calibration", "admin")


def _print_secret(answer: Any) -> None:
    """The token alone on standard output (for `TOKEN=$(calstream tokens create ...)`)."""
    record = answer["record"]
    print(answer["token"])
    Console(stderr=True).print(
        f"token {record['token_id']} for {record['tenant']} ({record['role']}): shown this once, "
        "keep it now"
    )


@app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant it acts for.")],
    role: Annotated[str, typer.Option("--role", help=f"One of {', '.join(ROLES)}.")],
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Who or what uses it (the audit trail's 'who'); default: role@tenant.",
            show_default=False,
        ),
    ] = None,
    expires_in: Annotated[
        float | None,
        typer.Option(
            "--expires-in",
            min=0.0,
            help="Days until it expires (default: never).",
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
    """Create a token and print it, once (an admin of the tenant, or the local principal)."""
    body: dict[str, Any] = {"tenant": tenant, "role": role, "name": name or f"{role}@{tenant}"}
    if expires_in is not None:
        expires = time.time() + expires_in * SECONDS_PER_DAY
        body["expires_at"] = datetime.fromtimestamp(expires, tz=UTC).isoformat()
    if reason is not None:
        body["reason"] = reason
    call(
        Reach(api, token, store, db, json_output), "POST", "/v1/tokens", body=body,
        show=_print_secret,
    )  # fmt: skip


@app.command("list")
def list_tokens(
    tenant: TenantOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Tokens of the tenants the caller administers (never a secret)."""
    columns = ("token_id", "tenant", "role", "name", "created_by", "expires_at", "revoked_at")
    call(
        Reach(api, token, store, db, json_output), "GET", "/v1/tokens", params={"tenant": tenant},
        show=table_of(columns),
    )  # fmt: skip


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tokens list), not its secret.")],
    reason: RequiredReason,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke a token: every request with it is refused from now on."""
    call(
        Reach(api, token, store, db, json_output), "POST",
        f"/v1/tokens/{segment(token_id)}/revoke", body={"reason": reason},
    )  # fmt: skip
