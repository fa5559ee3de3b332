"""`calstream calibrations list|record|amend`: certificates (``/v1/instruments/{id}/calibrations``).

Certificates are recorded and amended into new revisions with a reason (ISO/IEC 17025:2017
§7.8.8), never deleted.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
    segment,
)
from metrology.timebase import iso

app = typer.Typer(help="Calibration certificates of an instrument.", no_args_is_help=True)

InstrumentArgument = Annotated[str, typer.Argument(help="The instrument's id.")]


def _option(name: str, help_text: str) -> Any:
    return typer.Option(name, help=help_text, show_default=False)


Date = Annotated[
    str | None, _option("--date", "Calibration date, ISO 8601 with offset (2026-03-01T00:00:00Z).")
]
Offset = Annotated[
    float | None, _option("--offset", "Correction: offset (corrected = gain*x + offset).")
]
Gain = Annotated[float | None, _option("--gain", "Correction: gain.")]
Uncertainty = Annotated[float | None, _option("--uncertainty", "Expanded uncertainty U.")]
Coverage = Annotated[float | None, _option("--k", "Coverage factor k (default 2).")]
Interval = Annotated[float | None, _option("--interval-days", "Calibration interval, days.")]
Unit = Annotated[
    str | None,
    _option("--unit", "The unit of the certificate's numbers (default: the instrument's)."),
]
AsFound = Annotated[float | None, _option("--as-found-error", "Error found before adjustment.")]


def _content(
    body: dict[str, Any],
    *,
    date: str | None,
    offset: float | None,
    gain: float | None,
    uncertainty: float | None,
    k: float | None,
    interval_days: float | None,
    unit: str | None,
    as_found_error: float | None,
) -> dict[str, Any]:
    given = {
        "date": date, "expanded_uncertainty": uncertainty, "k": k,
        "interval_days": interval_days, "unit": unit, "as_found_error": as_found_error,
    }  # fmt: skip
    body.update({key: value for key, value in given.items() if value is not None})
    correction = {
        key: value for key, value in (("offset", offset), ("gain", gain)) if value is not None
    }
    if correction:
        current = body.get("correction")
        body["correction"] = {**(current if isinstance(current, dict) else {}), **correction}
    return body


def _show(answer: Any) -> None:
    columns = ("certificate", "rev", "in force", "calibrated", "due", "correction", "U", "k",
               "amended by", "reason")  # fmt: skip
    table = Table(*columns, box=None, header_style="bold")
    for certificate in answer["items"]:
        for r in certificate["revisions"]:
            c = r["correction"]
            correction = (
                f"gain {c['gain']:g}, offset {c['offset']:+g}"
                if c["kind"] == "gain_offset"
                else f"curve of {len(c['points'])} points"
            )
            amendment = r["amendment"] or {}
            table.add_row(
                r["certificate_id"], str(r["revision"]), "yes" if r["in_force"] else "",
                iso(r["calibrated_at"])[:10], iso(r["due_at"])[:10], correction,
                f"{r['expanded_uncertainty']:g}", f"{r['coverage_factor']:g}",
                amendment.get("amended_by", ""), amendment.get("reason", ""),
            )  # fmt: skip
    Console().print(table)


@app.command("list")
def list_calibrations(
    instrument_id: InstrumentArgument,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Every certificate of the instrument, with every revision."""
    path = f"/v1/instruments/{segment(instrument_id)}/calibrations"
    call(Reach(api, token, store, db, json_output), "GET", path, show=_show)


def record(
    instrument_id: InstrumentArgument,
    file: FileOption = None,
    certificate: Annotated[
        str | None, _option("--certificate", "The certificate's number.")
    ] = None,
    date: Date = None,
    offset: Offset = None,
    gain: Gain = None,
    uncertainty: Uncertainty = None,
    k: Coverage = None,
    interval_days: Interval = None,
    unit: Unit = None,
    as_found_error: AsFound = None,
    reason: ReasonOption = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Record a new certificate (calibration role; a curve of points: --file)."""
    body = _content(
        merged(file, certificate=certificate, reason=reason), date=date, offset=offset,
        gain=gain, uncertainty=uncertainty, k=k, interval_days=interval_days, unit=unit,
        as_found_error=as_found_error,
    )  # fmt: skip
    path = f"/v1/instruments/{segment(instrument_id)}/calibrations"
    call(Reach(api, token, store, db, json_output), "POST", path, body=body)


app.command("record")(record)
app.command("create", hidden=True)(record)


@app.command("amend")
def amend(
    instrument_id: InstrumentArgument,
    certificate: Annotated[str, typer.Argument(help="The certificate's number.")],
    reason: RequiredReason,
    file: FileOption = None,
    date: Date = None,
    offset: Offset = None,
    gain: Gain = None,
    uncertainty: Uncertainty = None,
    k: Coverage = None,
    interval_days: Interval = None,
    unit: Unit = None,
    as_found_error: AsFound = None,
    api: ApiOption = None,
    token: TokenOption = None,
    store: StoreOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Amend a certificate: a new revision of what is given, by you, now, with the reason."""
    body = _content(
        merged(file, reason=reason), date=date, offset=offset, gain=gain,
        uncertainty=uncertainty, k=k, interval_days=interval_days, unit=unit,
        as_found_error=as_found_error,
    )  # fmt: skip
    path = (
        f"/v1/instruments/{segment(instrument_id)}/calibrations/{segment(certificate)}/amendments"
    )
    call(Reach(api, token, store, db, json_output), "POST", path, body=body)
