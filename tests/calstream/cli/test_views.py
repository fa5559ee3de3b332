"""Terminal views show the health model with the numbers behind each status."""

from __future__ import annotations

from rich.console import Console

from calstream.cli.views import INSTRUMENT_SECTIONS, instrument_table, worst_table
from metrology.assessment import SNAPSHOT_NUMBER_KEYS, SNAPSHOT_TEXT_KEYS, HealthSnapshot
from metrology.health import Status

NUMBERS = {
    "residual": 0.1527,
    "u_residual": 0.0257,
    "probability_of_conformity": 0.9671,
    "decision": "CONDITIONAL_PASS",
    "decision_rule": "guard_band_u",
    "drift_rate": 0.002,
    "predicted_oot_at": 1_778_630_400.0,  # 2026-05-13
    "due_at": 1_798_761_600.0,  # 2027-01-01
    "recommended_interval_days": 167.1,
    "interval_reason": "prediction band (k=1.96) reaches the upper limit at 167.1 d",
    "hours_in_use": 2879.0,
}
SNAPSHOT = HealthSnapshot(
    instrument_id="acme-north-TT-001",
    tenant="acme",
    site="north",
    status=Status.OUT_OF_TOLERANCE,
    conditions=(Status.OUT_OF_TOLERANCE, Status.AT_RISK),
    reasons=("error of indication +0.1527 degC judged CONDITIONAL_PASS", "predicted 2026-05-13"),
    evaluated_at=1_777_680_000.0,
    last_reading_at=1_777_680_000.0,
    numbers=NUMBERS,
)


def render(renderable: object) -> str:
    console = Console(record=True, width=240)
    console.print(renderable)
    return console.export_text()


def test_worst_table_shows_the_numbers_behind_the_status() -> None:
    text = render(worst_table([SNAPSHOT]))
    row = next(line for line in text.splitlines() if "acme-north-TT-001" in line)
    for shown in ("OUT_OF_TOLERANCE", "+0.153 ± 0.051", "0.967", "+0.002", "2026-05-13",
                  "2027-01-01", "167 d"):  # fmt: skip
        assert shown in row, shown


def test_a_narrow_worst_table_keeps_the_error_the_date_and_the_reasons() -> None:
    text = render(worst_table([SNAPSHOT], wide=False))
    row = next(line for line in text.splitlines() if "acme-north-TT-001" in line)
    assert "+0.153 ± 0.051" in row and "2026-05-13" in row and "error of" in row
    assert "167 d" not in text and "p conf." not in text


def test_instrument_table_lists_every_number_of_the_snapshot_by_section() -> None:
    text = render(instrument_table(SNAPSHOT))
    listed = {key for _, keys in INSTRUMENT_SECTIONS for key in keys}
    for key in NUMBERS:
        assert key in listed, f"{key} has no section"
        assert key in text
    assert "2026-05-13T00:00:00.000Z" in text  # times shown as UTC dates
    assert "CONDITIONAL_PASS" in text and "2879" in text
    assert text.count("why") == 2


def test_every_number_a_snapshot_carries_has_a_section() -> None:
    from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
    from metrology.instrument import InstrumentSpec, ReferenceKind, ReferenceRelation, Tolerance
    from metrology.reading import Reading
    from stream_processors.context import InstrumentContext
    from stream_processors.describe import describe
    from stream_processors.policy import ProcessingPolicy
    from stream_processors.state import InstrumentState
    from stream_processors.step import step

    spec = InstrumentSpec(
        "i-1", "acme", "north", "gw", "temperature", "degC", Tolerance(-0.2, 0.2), 3600.0,
        ReferenceRelation(ReferenceKind.CHECK_STANDARD),
    )  # fmt: skip
    record = CalibrationRecord("i-1", "C-1", 0.0, Correction(0.0, 1.0), 0.05, 2.0, 365.0)
    context = InstrumentContext(spec, CalibrationHistory([record]), ProcessingPolicy())
    reading = Reading("acme", "north", "gw", "i-1", 3600.0, 20.0, "degC", 1, 20.0, 0.006)
    state, _, _ = step(InstrumentState(), reading, context)
    listed = {key for _, keys in INSTRUMENT_SECTIONS for key in keys}
    numbers = describe(state, context, 3600.0).numbers
    assert set(numbers) == listed
    # the contract stores and dashboards read: every key declared, as a number or as text
    assert set(numbers) == {*SNAPSHOT_NUMBER_KEYS, *SNAPSHOT_TEXT_KEYS}
