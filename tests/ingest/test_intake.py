"""The intake step under hostile input: never raises, counts every reading, admits only sane ones.

Properties over :mod:`hostile` (every field of the wire contract), then one example per class of
hostile input with its exact reason and detail.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pytest
import yaml
from hostile import HostileMessage, hostile_messages, hostile_units, to_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calstream.settings import example_fleet_path
from ingest.admission import Admission, AdmissionPolicy
from ingest.decoders import DECODERS, Decoder, decoder_for
from ingest.decoders.json_v1 import _decode_slowly, decode
from ingest.importers.fleet_file import read_fleet
from ingest.intake import Taken, take, take_batch
from metrology.fleet import load_fleet
from metrology.instrument import InstrumentSpec, MeasuringRange
from metrology.timebase import iso
from metrology.units import unit_registry
from metrology.wire import (
    MAX_PAYLOAD_BYTES,
    DecodedMessage,
    RejectReason,
    Topic,
    parse_topic,
    readings_topic,
)

FLEET = read_fleet(example_fleet_path())
END = FLEET.as_of or 0.0


@dataclass(frozen=True)
class Arrival:
    topic: str
    payload: bytes
    received_at: float = END


def check_taken(message: HostileMessage, taken: Taken) -> None:
    """What holds for every message, whatever it holds."""
    assert taken.received >= 1
    if message.readings is not None:
        assert taken.received == message.readings, message
    assert taken.rejected == sum(letter.count for letter in taken.dead_letters)
    topic = parse_topic(message.topic)
    for letter in taken.dead_letters:
        assert letter.reason is not RejectReason.INTAKE_ERROR, (message, letter.detail)
        assert letter.detail and letter.count >= 1
        assert letter.topic == message.topic
        # filed under the topic's tenant (the one the broker let publish), never another's
        assert letter.tenant == (topic.tenant if isinstance(topic, Topic) else None)
    for reading in taken.readings:
        assert isinstance(topic, Topic)
        spec = FLEET.instruments[reading.instrument_id]
        assert (spec.tenant, spec.site, spec.gateway) == (topic.tenant, topic.site, topic.gateway)
        assert reading.unit == spec.unit
        assert spec.measuring_range is not None
        low, high = spec.measuring_range.plausible
        assert math.isfinite(reading.value) and low <= reading.value <= high
        if reading.reference is not None:
            assert math.isfinite(reading.reference) and low <= reading.reference <= high
            assert reading.u_reference is not None
            assert 0.0 <= reading.u_reference <= spec.measuring_range.span


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_messages(FLEET), min_size=1, max_size=6))
def test_intake_never_raises_counts_every_reading_and_admits_only_sane_readings(
    messages: list[HostileMessage],
) -> None:
    admission = Admission(FLEET.instruments)
    for message in messages:
        check_taken(message, take(admission, Arrival(message.topic, message.payload), END))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_messages(FLEET, publishable=True), min_size=1, max_size=8))
def test_a_batch_counts_exactly_what_its_messages_count(messages: list[HostileMessage]) -> None:
    admission = Admission(FLEET.instruments)
    batch = take_batch(admission, [Arrival(m.topic, m.payload) for m in messages], END)
    assert [t.topic for t in batch.taken] == [m.topic for m in messages]
    assert batch.received == sum(t.received for t in batch.taken)
    assert batch.accepted == len(batch.readings) == sum(len(t.readings) for t in batch.taken)
    assert batch.rejected == sum(letter.count for letter in batch.dead_letters)
    assert batch.accepted + batch.rejected == batch.received
    assert sum(batch.rejected_by_reason.values()) == batch.rejected
    by_reason: Counter[str] = Counter()
    for letter in batch.dead_letters:
        by_reason[letter.reason.value] += letter.count
    assert by_reason == batch.rejected_by_reason
    assert batch.decode_s >= 0.0 and batch.admit_s >= 0.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_messages(FLEET))
def test_the_fast_and_the_slow_path_judge_alike(message: HostileMessage) -> None:
    topic = parse_topic(message.topic)
    if not isinstance(topic, Topic) or len(message.payload) > MAX_PAYLOAD_BYTES:
        return
    fast = decode(message.topic, message.payload)
    slow = _decode_slowly(message.topic, topic, message.payload)
    assert fast.readings == slow.readings
    assert [(r.reason, r.count) for r in fast.rejections] == [
        (r.reason, r.count) for r in slow.rejections
    ]


def _temperature_spec() -> InstrumentSpec:
    for spec in sorted(FLEET.instruments.values(), key=lambda s: s.instrument_id):
        if spec.unit == "degC":
            return spec
    raise AssertionError("the example fleet has a degC instrument")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(unit=hostile_units(), fraction=st.floats(0.0, 1.0))
def test_a_unit_is_accepted_only_if_pint_converts_it_by_a_finite_linear_map(
    unit: Any, fraction: float
) -> None:
    spec = _temperature_spec()
    assert spec.measuring_range is not None
    # a number of the measuring range, in whatever unit is drawn
    value = spec.measuring_range.low + fraction * spec.measuring_range.span
    document = {
        "v": 1,
        "tenant": spec.tenant,
        "site": spec.site,
        "gateway": spec.gateway,
        "readings": [
            {"instrument": spec.instrument_id, "ts": iso(END - 60), "value": value,
             "unit": unit, "seq": 1}
        ],
    }  # fmt: skip
    topic = readings_topic(spec.tenant, spec.site, spec.gateway)
    taken = take(Admission(FLEET.instruments), Arrival(topic, to_json(document).encode()), END)
    assert taken.received == 1
    if not taken.readings:
        (letter,) = taken.dead_letters
        assert letter.reason is not RejectReason.INTAKE_ERROR, letter.detail
        return
    # accepted: pint itself (no cache, no screen) maps it linearly and finitely onto degC
    registry = unit_registry()
    source, target = registry.Unit(unit), registry.Unit(spec.unit)
    zero, one, far = (registry.Quantity(x, source).to(target).magnitude for x in (0.0, 1.0, 1e3))
    assert all(math.isfinite(x) for x in (zero, one, far)) and one != zero
    assert far == pytest.approx(zero + 1e3 * (one - zero), rel=1e-9, abs=1e-9)
    (reading,) = taken.readings
    expected = registry.Quantity(value, source).to(target).magnitude
    assert reading.value == pytest.approx(expected, rel=1e-9, abs=1e-9)


# --- examples, class by class --------------------------------------------------------------------

ISOLATION = load_fleet(
    yaml.safe_load(
        """
tenants:
  - id: acme
    sites:
      - id: plant-a
        instruments:
          - {id: X-1, measurand: temperature, unit: degC, range: {low: 0, high: 200},
             tolerance: {mpe: 0.5}, period_s: 60, gateway: gw-01,
             reference: {kind: check_standard}}
          - {id: X-2, measurand: pressure, unit: kPa, range: {low: 0, high: 1000},
             tolerance: {mpe: 1}, period_s: 60, gateway: gw-02,
             reference: {kind: check_standard}}
          - {id: X-4, measurand: temperature, unit: degC, range: {low: 0, high: 200},
             tolerance: {mpe: 0.5}, period_s: 60, gateway: gw-01,
             reference: {kind: check_standard}}
      - id: plant-b
        instruments:
          - {id: X-3, measurand: pressure, unit: kPa, range: {low: 0, high: 1000},
             tolerance: {mpe: 1}, period_s: 60, gateway: gw-01,
             reference: {kind: check_standard}}
  - id: rival
    sites:
      - id: hidden-site
        instruments:
          - {id: Y-9, measurand: temperature, unit: degC, range: {low: 0, high: 200},
             tolerance: {mpe: 0.5}, period_s: 60, gateway: gw-07,
             reference: {kind: check_standard}}
  - id: twin
    shared_gateways: true
    sites:
      - id: plant-t
        instruments:
          - {id: T-1, measurand: temperature, unit: degC, range: {low: 0, high: 200},
             tolerance: {mpe: 0.5}, period_s: 60, gateway: gw-01,
             reference: {kind: check_standard}}
"""
    )
)
NOW = 1_790_000_000.0


def message(
    tenant: str, site: str, gateway: str, *readings: dict[str, Any], topic: str | None = None
) -> Arrival:
    document = {"v": 1, "tenant": tenant, "site": site, "gateway": gateway, "readings": readings}
    return Arrival(topic or readings_topic(tenant, site, gateway), to_json(document).encode(), NOW)


def entry(instrument: str = "X-1", seq: int = 1, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "instrument": instrument,
        "ts": iso(NOW - 60),
        "value": 21.5,
        "unit": "degC",
        "seq": seq,
    }
    fields.update(changes)
    return fields


def taken_from(arrival: Arrival, admission: Admission | None = None) -> Taken:
    return take(admission or Admission(ISOLATION.instruments), arrival, NOW)


def reasons(taken: Taken) -> list[tuple[str, str, str | None]]:
    return [(d.reason.value, d.detail, d.instrument_id) for d in taken.dead_letters]


def test_another_tenants_instrument_is_refused_exactly_like_one_that_does_not_exist() -> None:
    taken = taken_from(
        message("acme", "plant-a", "gw-01", entry("Y-9", seq=1), entry("NO-SUCH", seq=2))
    )
    assert taken.readings == []
    assert reasons(taken) == [
        ("unknown_instrument", "instrument 'Y-9' is not registered for this tenant", "Y-9"),
        ("unknown_instrument", "instrument 'NO-SUCH' is not registered for this tenant", "NO-SUCH"),
    ]
    for letter in taken.dead_letters:
        assert "rival" not in letter.detail and "hidden-site" not in letter.detail
        assert "gw-07" not in letter.detail
        assert letter.tenant == "acme"  # filed under the topic's tenant


def test_an_instrument_at_another_site_of_the_tenant_is_refused_with_its_own_reason() -> None:
    taken = taken_from(message("acme", "plant-a", "gw-01", entry("X-3", unit="kPa")))
    assert reasons(taken) == [
        (
            "instrument_elsewhere",
            "instrument 'X-3' is registered at site 'plant-b', not 'plant-a'",
            "X-3",
        )
    ]


def test_the_registered_gateway_is_enforced() -> None:
    taken = taken_from(message("acme", "plant-a", "gw-01", entry("X-2", unit="kPa", value=100.0)))
    assert reasons(taken) == [
        (
            "gateway_mismatch",
            "instrument 'X-2' is registered with gateway 'gw-02', not 'gw-01'",
            "X-2",
        )
    ]
    right = taken_from(message("acme", "plant-a", "gw-02", entry("X-2", unit="kPa", value=100.0)))
    assert [r.value for r in right.readings] == [100.0]


def test_a_tenant_whose_gateways_share_instruments_is_read_from_any_gateway_of_the_site() -> None:
    admission = Admission(ISOLATION.instruments)
    for seq, gateway in enumerate(["gw-01", "gw-02", "gw-99"], start=1):
        taken = taken_from(message("twin", "plant-t", gateway, entry("T-1", seq=seq)), admission)
        assert [r.gateway for r in taken.readings] == [gateway]
    other_site = taken_from(message("twin", "plant-x", "gw-01", entry("T-1", seq=9)), admission)
    assert [d.reason for d in other_site.dead_letters] == [RejectReason.INSTRUMENT_ELSEWHERE]


def test_a_conversion_that_overflows_is_not_finite() -> None:
    taken = taken_from(message("acme", "plant-a", "gw-02", entry("X-2", unit="YPa", value=1e300)))
    ((reason, detail, _),) = reasons(taken)
    assert reason == "not_finite"
    assert detail == "value is inf kPa after conversion to the registered unit"


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"value": 1e308}, "value 1e+308 degC is outside the plausible range -200.0 .. 400.0 degC"),
        ({"value": -0.1 - 200}, "value -200.1 degC is outside the plausible range"),
        (
            {"reference": {"value": 401.0, "u": 0.1}},
            "reference value 401.0 degC is outside the plausible range -200.0 .. 400.0 degC",
        ),
        (
            {"reference": {"value": 20.0, "u": 250.0}},
            "reference uncertainty 250.0 degC is outside the plausible range 0.0 .. 200.0 degC",
        ),
        (
            {"unit": "degF", "value": 1e300},
            "value 5.5555555555555",
        ),
    ],
)
def test_values_beyond_the_plausible_range_are_refused_not_stored(
    changes: dict[str, Any], detail: str
) -> None:
    taken = taken_from(message("acme", "plant-a", "gw-01", entry(**changes)))
    ((reason, got, _),) = reasons(taken)
    assert reason == "implausible_value"
    assert got.startswith(detail)
    assert got.endswith("of X-1")


@pytest.mark.parametrize("value", [400.0, -200.0, -0.0, 5e-324, 2.2250738585072014e-308])
def test_values_inside_the_plausible_range_are_kept_exactly(value: float) -> None:
    taken = taken_from(message("acme", "plant-a", "gw-01", entry(value=value)))
    assert [r.value for r in taken.readings] == [value]
    assert math.copysign(1.0, taken.readings[0].value) == math.copysign(1.0, value)


@pytest.mark.parametrize(
    ("unit", "reason", "detail"),
    [
        ("9**9**9", "unknown_unit", "a power must be a number of at most 3 digits"),
        ("1/0", "unknown_unit", "(ZeroDivisionError: division by zero)"),
        ("()", "unknown_unit", "(AssertionError)"),
        ("m**0", "unknown_unit", "(KeyError: 'meter')"),
        (")", "unknown_unit", "(TokenError:"),
        ("deg\u0000C", "unknown_unit", "control characters"),
        ("furlongz", "unknown_unit", "(UndefinedUnitError:"),
        ("delta_degC", "unit_not_convertible", "DimensionalityError"),
        ("kPa", "unit_not_convertible", "is not [temperature]"),
        ("dB", "unit_not_convertible", "is not [temperature]"),
    ],
)
def test_hostile_units_are_refused_with_a_reason_by_type(
    unit: str, reason: str, detail: str
) -> None:
    taken = taken_from(message("acme", "plant-a", "gw-01", entry(unit=unit), entry(seq=2)))
    assert [r.seq for r in taken.readings] == [2]  # the good reading of the message goes on
    ((got_reason, got_detail, _),) = reasons(taken)
    assert got_reason == reason
    assert got_detail.startswith("X-1 is registered in 'degC': ")
    assert detail in got_detail


def test_a_logarithmic_unit_is_refused_as_not_linear() -> None:
    fleet = load_fleet(
        {
            "tenants": [
                {
                    "id": "acme",
                    "sites": [
                        {
                            "id": "rf",
                            "instruments": [
                                {"id": "P-1", "measurand": "power", "unit": "mW",
                                 "range": {"low": 0, "high": 100}, "tolerance": {"mpe": 0.1},
                                 "period_s": 60, "gateway": "gw-01",
                                 "reference": {"kind": "check_standard"}}
                            ],
                        }
                    ],
                }
            ]
        }
    )  # fmt: skip
    taken = take(
        Admission(fleet.instruments),
        message("acme", "rf", "gw-01", entry("P-1", unit="dBm", value=3.0)),
        NOW,
    )
    ((reason, detail, _),) = reasons(taken)
    assert reason == "unit_not_convertible"
    assert detail.endswith("the conversion is not linear (a logarithmic unit)")


# --- the boundary: what nothing foresaw becomes a dead letter, never an exception ----------------


class BrokenDecoder:
    """A wire format whose decoder has a defect (raises on every message)."""

    name = "broken"
    topic_root = "broken/v1"

    def decode(self, topic: str, payload: bytes) -> DecodedMessage:
        raise RuntimeError(f"defect while decoding {len(payload)} bytes")


def test_a_decoder_that_raises_turns_its_message_into_one_dead_letter() -> None:
    decoders: tuple[Decoder, ...] = (*DECODERS, BrokenDecoder())
    good = message("acme", "plant-a", "gw-01", entry())
    broken = Arrival("broken/v1/acme/x", b"\x00\x01", NOW)
    batch = take_batch(Admission(ISOLATION.instruments), [broken, good], NOW, decoders)
    assert [len(t.readings) for t in batch.taken] == [0, 1]
    (letter,) = batch.dead_letters
    assert letter.reason is RejectReason.INTAKE_ERROR
    assert letter.detail == "decoding failed: RuntimeError: defect while decoding 2 bytes"
    assert letter.count == 1 and letter.excerpt == "\\x00\\x01"
    assert batch.received == 2 and batch.accepted == 1 and batch.rejected == 1
    assert batch.rejected_by_reason == {"intake_error": 1}


def test_a_reading_admission_fails_on_is_refused_alone() -> None:
    instruments = dict(ISOLATION.instruments)
    # a registry entry with a defect (a range whose bounds are text): comparing raises TypeError
    instruments["X-4"] = replace(
        instruments["X-4"],
        measuring_range=MeasuringRange("0", "200"),  # type: ignore[arg-type]
    )
    taken = take(
        Admission(instruments),
        message("acme", "plant-a", "gw-01", entry("X-4", seq=1), entry("X-1", seq=2)),
        NOW,
    )
    assert [r.instrument_id for r in taken.readings] == ["X-1"]  # the other reading goes on
    assert reasons(taken) == [
        (
            "intake_error",
            "admission failed: TypeError: unsupported operand type(s) for -: 'str' and 'str'",
            "X-4",
        )
    ]
    assert taken.received == 2


def test_an_admission_that_raises_before_its_readings_refuses_them_all_in_one_letter() -> None:
    policy = AdmissionPolicy(max_age_days="ten years")  # type: ignore[arg-type]  # a defect
    taken = take(
        Admission(ISOLATION.instruments, policy),
        message("acme", "plant-a", "gw-01", entry(), entry(seq=2)),
        NOW,
    )
    assert taken.readings == []
    ((reason, detail, _),) = reasons(taken)
    assert reason == "intake_error"
    assert detail.startswith("admission failed: TypeError: ")
    assert taken.dead_letters[0].count == 2 and taken.received == 2


def test_units_pint_knows_are_converted_to_the_registered_unit() -> None:
    sent = {"°C": 21.5, "degF": 70.7, "K": 294.65, "kelvin": 294.65, "mK": 294_650.0}
    for seq, (unit, value) in enumerate(sent.items(), start=1):
        taken = taken_from(
            message("acme", "plant-a", "gw-01", entry(seq=seq, unit=unit, value=value))
        )
        assert [r.unit for r in taken.readings] == ["degC"], (unit, reasons(taken))
        assert taken.readings[0].value == pytest.approx(21.5, abs=1e-9)


def test_the_decoder_is_chosen_by_the_topic_root() -> None:
    (json_v1,) = DECODERS
    assert decoder_for("calstream/v1/acme/north/gw-01/readings") is json_v1
    assert decoder_for("calstream/v10/acme/north/gw-01/readings") is None
    assert decoder_for("calstream/v1") is None
    assert decoder_for("spBv1.0/acme/DDATA/gw-01/dev") is None
    broken = BrokenDecoder()
    assert decoder_for("broken/v1/x", (*DECODERS, broken)) is broken
    taken = taken_from(Arrival("spBv1.0/acme/DDATA/gw-01/dev", b"\x08\x01", NOW))
    assert reasons(taken) == [
        (
            "bad_topic",
            "topic 'spBv1.0/acme/DDATA/gw-01/dev' is not "
            "calstream/v1/<tenant>/<site>/<gateway>/readings",
            None,
        )
    ]
    assert taken.dead_letters[0].tenant is None


def test_a_batch_reports_the_time_spent_decoding_and_admitting() -> None:
    batch = take_batch(
        Admission(ISOLATION.instruments),
        [message("acme", "plant-a", "gw-01", entry(seq=s)) for s in range(1, 4)],
        NOW,
    )
    assert batch.accepted == 3
    assert batch.decode_s > 0.0 and batch.admit_s > 0.0
