"""`calstream instruments list|show|register|change|retire|health` (``/v1/instruments``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from calstream.cli.common import DbOption, JsonOption, StoreOption
from calstream.cli.resources import (
    ApiOption,
    FileOption,
    Reach,
    ReasonOption,
    RequiredReason,
    TenantOption,
    TokenOption,
    call,
    merged,
    segment,
    table_of,
)

app = typer.Typer(
    help="Instruments: registered, changed, retired (never deleted).", no_args_is_help=True
)

InstrumentArgument = Annotated[str, typer.Argument(help="The instrument's id.")]


def _text(name: str, help_text: str) -> Any:
    return typer.Option(name, help=help_text, show_default=False)


Site = Annotated[str | None, _text("--site", "The site (registered).")]
Gateway = Annotated[str | None, _text("--gateway", "Its gateway (registered at the site).")]
Period = Annotated[float | None, _text("--period", "Reporting period, seconds.")]
Description = Annotated[str | None, _text("--description", "What it is.")]
Rule = Annotated[
    str | None,
    _text(
        "--decision-rule",
        "Conformity decision rule: simple, guard_band_u, risk:<p>; 'default' (change only): "
        "the tenant's.",
    ),
]
Mpe = Annotated[float | None, _text("--mpe", "Tolerance: maximum permissible error, +/-.")]
Lower = Annotated[float | None, _text("--lower", "Tolerance: lower limit of the error.")]
Upper = Annotated[float | None, _text("--upper", "Tolerance: upper limit of the error.")]
Relative = Annotated[
    float | None, _text("--relative", "Tolerance: plus this fraction of the value.")
]
Reference = Annotated[
    str | None,
    _text("--reference", "How drift is judged: check_standard, reference_instrument, "
          "peer_group or none."),
]  # fmt: skip
Group = Annotated[str | None, _text("--group", "The peer group (reference peer_group).")]
ReferenceInstrument = Annotated[
    str | None, _text("--reference-instrument", "The co-located reference instrument.")
]


def _nested(document: dict[str, Any], key: str, **fields: Any) -> None:
    """Put the given ``fields`` into ``document[key]`` (a file's sub-document is kept)."""
    given = {k: v for k, v in fields.items() if v is not None}
    if given:
        current = document.get(key)
        document[key] = {**(current if isinstance(current, dict) else {}), **given}


@app.command("list")
def list_instruments(
    tenant: TenantOption = None,
    retired: Annotated[bool, typer.Option("--retired", help="Include retired ones.")] = False,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Registered instruments of the tenants the caller reads."""
    call(
        Reach(api, token, store, db, json_output), "GET", "/v1/instruments",
        params={"tenant": tenant, "retired": "true" if retired else None},
        show=table_of(("instrument_id", "tenant", "site", "gateway", "measurand", "unit",
                       "retired_at")),
    )  # fmt: skip


@app.command("show")
def show(
    instrument_id: InstrumentArgument,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """One instrument as registered."""
    path = f"/v1/instruments/{segment(instrument_id)}"
    call(Reach(api, token, store, db, json_output), "GET", path)


@app.command("health")
def health(
    instrument_id: InstrumentArgument,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Its latest health with every number behind it (NO_DATA: not heard from yet)."""
    path = f"/v1/instruments/{segment(instrument_id)}/health"
    call(Reach(api, token, store, db, json_output), "GET", path)


def register(
    file: FileOption = None,
    tenant: Annotated[str | None, _text("--tenant", "The tenant.")] = None,
    site: Site = None,
    instrument_id: Annotated[str | None, _text("--id", "The instrument's id.")] = None,
    gateway: Gateway = None,
    measurand: Annotated[str | None, _text("--measurand", "What it measures.")] = None,
    unit: Annotated[str | None, _text("--unit", "Its registered unit (pint).")] = None,
    low: Annotated[float | None, _text("--low", "Measuring range: low end.")] = None,
    high: Annotated[float | None, _text("--high", "Measuring range: high end.")] = None,
    mpe: Mpe = None,
    lower: Lower = None,
    upper: Upper = None,
    relative: Relative = None,
    period: Period = None,
    reference: Reference = None,
    group: Group = None,
    reference_instrument: ReferenceInstrument = None,
    description: Description = None,
    decision_rule: Rule = None,
    reason: ReasonOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register an instrument at a site, on a gateway of the site (an admin of the tenant)."""
    body = merged(
        file, tenant=tenant, site=site, id=instrument_id, gateway=gateway, measurand=measurand,
        unit=unit, period_s=period, description=description, decision_rule=decision_rule,
        reason=reason,
    )  # fmt: skip
    _nested(body, "range", low=low, high=high)
    _nested(body, "tolerance", mpe=mpe, lower=lower, upper=upper, relative=relative)
    _nested(body, "reference", kind=reference, group=group, instrument=reference_instrument)
    call(Reach(api, token, store, db, json_output), "POST", "/v1/instruments", body=body)


app.command("register")(register)
app.command("create", hidden=True)(register)


@app.command("change")
def change(
    instrument_id: InstrumentArgument,
    file: FileOption = None,
    site: Site = None,
    gateway: Gateway = None,
    mpe: Mpe = None,
    lower: Lower = None,
    upper: Upper = None,
    relative: Relative = None,
    period: Period = None,
    reference: Reference = None,
    group: Group = None,
    reference_instrument: ReferenceInstrument = None,
    description: Description = None,
    decision_rule: Rule = None,
    reason: ReasonOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change what is given: tolerance, reference, site, gateway, period, description, rule
    (an interval policy: --file). Unit, measurand and range never change."""
    body = merged(
        file, site=site, gateway=gateway, period_s=period, description=description,
        reason=reason,
    )  # fmt: skip
    if decision_rule is not None:
        body["decision_rule"] = None if decision_rule == "default" else decision_rule
    _nested(body, "tolerance", mpe=mpe, lower=lower, upper=upper, relative=relative)
    _nested(body, "reference", kind=reference, group=group, instrument=reference_instrument)
    path = f"/v1/instruments/{segment(instrument_id)}"
    call(Reach(api, token, store, db, json_output), "PATCH", path, body=body)


@app.command("retire")
def retire(
    instrument_id: InstrumentArgument,
    reason: RequiredReason,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Retire an instrument: it keeps its history and takes nothing new."""
    path = f"/v1/instruments/{segment(instrument_id)}/retire"
    call(Reach(api, token, store, db, json_output), "POST", path, body={"reason": reason})
