"""Admission: registry checks, unit conversion, plausibility of times and values, de-duplication."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ingest.admission import Admission, AdmissionPolicy
from ingest.sequence import SequenceWindow
from metrology.instrument import (
    InstrumentSpec,
    MeasuringRange,
    ReferenceKind,
    ReferenceRelation,
    Tolerance,
)
from metrology.reading import Reading
from metrology.wire import DecodedMessage, RejectReason, readings_topic

NOW = 1_790_000_000.0


def spec(
    instrument_id: str, unit: str, tenant: str = "acme", site: str = "north"
) -> InstrumentSpec:
    return InstrumentSpec(
        instrument_id,
        tenant,
        site,
        "gw-01",
        "pressure",
        unit,
        Tolerance(-1.0, 1.0),
        600.0,
        ReferenceRelation(ReferenceKind.CHECK_STANDARD),
    )


INSTRUMENTS = {
    "PT-1": spec("PT-1", "kPa"),
    "TT-1": spec("TT-1", "degC"),
    "PT-9": spec("PT-9", "kPa", tenant="rival", site="south"),
    "PT-5": spec("PT-5", "kPa", site="south"),
}


def reading(
    instrument: str,
    unit: str,
    value: float = 1.0,
    seq: int = 1,
    ts: float = NOW - 60,
    reference: float | None = None,
    u: float | None = None,
) -> Reading:
    return Reading("acme", "north", "gw-01", instrument, ts, value, unit, seq, reference, u)


def admit(*readings: Reading, admission: Admission | None = None):
    message = DecodedMessage(readings_topic("acme", "north", "gw-01"), list(readings), [])
    return (admission or Admission(INSTRUMENTS)).admit(message, NOW)


def test_units_are_converted_to_the_registered_unit_with_the_reference() -> None:
    (bar,), rejected = admit(reading("PT-1", "bar", 1.5, reference=1.4, u=0.002))
    assert rejected == []
    assert bar.unit == "kPa"
    assert bar.value == pytest.approx(150.0)
    assert bar.reference == pytest.approx(140.0)
    assert bar.u_reference == pytest.approx(0.2)


def test_offset_units_convert_exactly() -> None:
    (fahrenheit,), _ = admit(reading("TT-1", "degF", 212.0, reference=32.0, u=0.9))
    assert fahrenheit.value == pytest.approx(100.0)
    assert fahrenheit.reference == pytest.approx(0.0, abs=1e-9)
    assert fahrenheit.u_reference == pytest.approx(0.5)  # an uncertainty scales, never shifts


@pytest.mark.parametrize(
    ("instrument", "unit", "expected"),
    [
        ("PT-1", "degC", RejectReason.UNIT_NOT_CONVERTIBLE),
        ("PT-1", "furlong_per_fortnightz", RejectReason.UNKNOWN_UNIT),
        ("XX-404", "kPa", RejectReason.UNKNOWN_INSTRUMENT),
        ("PT-9", "kPa", RejectReason.UNKNOWN_INSTRUMENT),
        ("PT-5", "kPa", RejectReason.INSTRUMENT_ELSEWHERE),
    ],
)
def test_registry_and_unit_rejections(instrument: str, unit: str, expected: RejectReason) -> None:
    admitted, (rejection,) = admit(reading(instrument, unit))
    assert admitted == []
    assert rejection.reason is expected
    assert rejection.instrument_id == instrument


@pytest.mark.parametrize("ts", [NOW + 3_600, NOW - 20 * 365 * 86_400])
def test_implausible_timestamps_are_refused(ts: float) -> None:
    admitted, (rejection,) = admit(reading("PT-1", "kPa", ts=ts))
    assert admitted == [] and rejection.reason is RejectReason.TIMESTAMP_OUT_OF_RANGE


def test_clock_skew_within_policy_is_accepted() -> None:
    admission = Admission(INSTRUMENTS, AdmissionPolicy(max_future_s=120))
    admitted, rejected = admit(reading("PT-1", "kPa", ts=NOW + 100), admission=admission)
    assert len(admitted) == 1 and rejected == []


def test_duplicates_by_gateway_sequence_are_refused_reordering_is_not() -> None:
    admission = Admission(INSTRUMENTS)
    first, _ = admit(*(reading("PT-1", "kPa", seq=s) for s in (5, 3, 4)), admission=admission)
    assert [r.seq for r in first] == [5, 3, 4]
    again, rejected = admit(
        reading("PT-1", "kPa", seq=4), reading("PT-1", "kPa", seq=6), admission=admission
    )
    assert [r.seq for r in again] == [6]
    assert [(r.reason, r.seq) for r in rejected] == [(RejectReason.DUPLICATE_SEQUENCE, 4)]


def test_sequence_window_memory_is_bounded() -> None:
    window = SequenceWindow(width=100)
    assert all(window.first_time(s) for s in range(10_000))
    assert len(window._seen) <= 200
    assert not window.first_time(9_999)
    assert window.first_time(9_000)  # beyond the window: left to the idempotent store


def test_the_checks_follow_a_registry_entry_that_changes() -> None:
    instruments = {"PT-1": replace(spec("PT-1", "kPa"), measuring_range=MeasuringRange(0, 100))}
    admission = Admission(instruments)
    admitted, _ = admit(reading("PT-1", "kPa", 150.0, seq=1), admission=admission)
    assert [r.value for r in admitted] == [150.0]  # inside -100 .. 200
    admission.register(replace(instruments["PT-1"], measuring_range=MeasuringRange(0, 10)))
    admitted, (rejection,) = admit(reading("PT-1", "kPa", 150.0, seq=2), admission=admission)
    assert admitted == [] and rejection.reason is RejectReason.IMPLAUSIBLE_VALUE
    assert "-10.0 .. 20.0 kPa" in rejection.detail


def test_a_retired_instrument_is_refused_saying_so_to_its_tenant_only() -> None:
    admission = Admission({"PT-1": spec("PT-1", "kPa")})
    admitted, _ = admit(reading("PT-1", "kPa", 1.0, seq=1), admission=admission)
    assert len(admitted) == 1
    admission.retire("PT-1", "acme", 1_780_000_000.0)
    admitted, (rejection,) = admit(reading("PT-1", "kPa", 1.0, seq=2), admission=admission)
    assert admitted == [] and rejection.reason is RejectReason.INSTRUMENT_RETIRED
    assert "retired on 2026-05-28T20:26:40" in rejection.detail
    other = reading("PT-1", "kPa", 1.0, seq=3)._replace(tenant="globex")
    admitted, (rejection,) = admit(other, admission=admission)
    assert rejection.reason is RejectReason.UNKNOWN_INSTRUMENT
    assert "retired" not in rejection.detail
    admission.register(spec("PT-1", "kPa"))
    admitted, _ = admit(reading("PT-1", "kPa", 1.0, seq=4), admission=admission)
    assert len(admitted) == 1


def test_a_timestamp_that_iso_cannot_write_is_still_described() -> None:
    # "9999-12-31T23:59:59.999999Z" as epoch seconds rounds to the first second of year 10000
    end_of_9999 = 253_402_300_800.0
    admitted, (rejection,) = admit(reading("PT-1", "kPa", ts=end_of_9999))
    assert admitted == [] and rejection.reason is RejectReason.TIMESTAMP_OUT_OF_RANGE
    assert rejection.detail.startswith("timestamp 253402300800.0 s after 1970-01-01T00:00:00Z is")


def test_a_reading_without_a_registered_range_is_checked_for_finiteness_only() -> None:
    admitted, _ = admit(reading("PT-1", "kPa", 1e300, seq=1))
    assert [r.value for r in admitted] == [1e300]
    admitted, (rejection,) = admit(reading("PT-1", "YPa", 1e300, seq=2))
    assert admitted == [] and rejection.reason is RejectReason.NOT_FINITE
    assert rejection.detail == "value is inf kPa after conversion to the registered unit"
