"""The fleet file: decision rules, interval policies, as-found errors, amendments, curves,
certificates in another unit, contracts and gateways; the entity models it shares with the
registry operations."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from metrology.conformity import DecisionRule
from metrology.curves import CurveCorrection
from metrology.errors import FleetError
from metrology.fleet import CalibrationDocument, InstrumentDocument, load_fleet
from metrology.intervals import StaircasePolicy
from metrology.tenancy import Contract, ContractScope
from metrology.timebase import to_epoch

DOCUMENT: dict[str, Any] = yaml.safe_load(
    """
fleet: amendments
tenants:
  - id: acme
    decision_rule: guard_band_u
    interval_policy: {lengthen_factor: 1.5, max_days: 730}
    sites:
      - id: north
        instruments:
          - id: acme-north-TT-001
            measurand: temperature
            unit: degC
            range: {low: 0, high: 200}
            tolerance: {mpe: 0.2}
            period_s: 3600
            gateway: gw-01
            reference: {kind: check_standard}
            interval_policy: {shorten_factor: 0.25}
            calibrations:
              - certificate: CAL-1
                date: 2026-01-01T00:00:00Z
                correction: {offset: 0.02, gain: 1.0}
                expanded_uncertainty: 0.05
                interval_days: 365
                as_found_error: 0.11
                amendments:
                  - revision: 1
                    at: 2026-02-03T09:00:00Z
                    by: j.doe
                    reason: offset transcribed with the wrong sign
                    correction: {offset: -0.02, gain: 1.0}
                  - revision: 2
                    at: 2026-02-04T09:00:00Z
                    by: a.smith
                    reason: uncertainty budget revised
                    expanded_uncertainty: 0.06
"""
)
ID = "acme-north-TT-001"


def test_amendments_become_revisions_with_their_audit_trail() -> None:
    history = load_fleet(DOCUMENT).calibrations[ID]
    trail = history.audit_trail("CAL-1")
    assert [r.revision for r in trail] == [0, 1, 2]
    original, first, second = trail
    assert original.correction.offset == 0.02 and original.amendment is None
    assert first.correction.offset == -0.02 and first.expanded_uncertainty == 0.05
    assert first.amendment is not None and first.amendment.amended_by == "j.doe"
    assert second.correction.offset == -0.02 and second.expanded_uncertainty == 0.06
    assert second.amendment is not None
    assert second.amendment.amended_at == to_epoch(datetime(2026, 2, 4, 9, tzinfo=UTC))
    assert second.as_found_error == 0.11  # unchanged fields carry over
    # lookups by time use the newest revision
    corrected, record = history.correct(to_epoch(datetime(2026, 3, 1, tzinfo=UTC)), 10.0)
    assert record is second and corrected == pytest.approx(9.98)


def test_tenant_policies_apply_and_an_instrument_overrides_its_keys() -> None:
    spec = load_fleet(DOCUMENT).instruments[ID]
    assert spec.decision_rule == DecisionRule.guard_band_u()
    # the instrument's policy replaces the tenant's (keys it leaves unset take the defaults)
    assert spec.interval_policy == StaircasePolicy(shorten_factor=0.25)


def test_an_amendment_that_does_not_raise_the_revision_is_refused() -> None:
    document = copy.deepcopy(DOCUMENT)
    calibration = document["tenants"][0]["sites"][0]["instruments"][0]["calibrations"][0]
    calibration["amendments"][1]["revision"] = 1
    with pytest.raises(FleetError, match="CAL-1 amendment 1"):
        load_fleet(document)


def test_an_inconsistent_interval_policy_is_refused_with_its_reason() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["tenants"][0]["interval_policy"] = {"min_days": 400, "max_days": 300}
    with pytest.raises(FleetError, match="min_days"):
        load_fleet(document)


def test_an_instrument_carries_its_measuring_range_and_plausible_range() -> None:
    spec = load_fleet(DOCUMENT).instruments[ID]
    assert spec.measuring_range is not None
    assert (spec.measuring_range.low, spec.measuring_range.high) == (0.0, 200.0)
    assert spec.measuring_range.plausible == (-200.0, 400.0)  # one span on each side


def test_gateways_are_not_shared_unless_the_tenant_says_so() -> None:
    assert load_fleet(DOCUMENT).instruments[ID].shared_gateways is False
    document = copy.deepcopy(DOCUMENT)
    document["tenants"][0]["shared_gateways"] = True
    assert load_fleet(document).instruments[ID].shared_gateways is True


def test_the_gateway_option_must_be_a_boolean() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["tenants"][0]["shared_gateways"] = "sometimes"
    with pytest.raises(FleetError, match="shared_gateways"):
        load_fleet(document)


# --- the per-entity models, shared with the registry operations ---

INSTRUMENT: dict[str, Any] = {
    "id": "acme-north-TT-009",
    "measurand": "temperature",
    "unit": "degC",
    "range": {"low": 0, "high": 200},
    "tolerance": {"mpe": 0.2},
    "period_s": 60,
    "gateway": "gw-01",
    "reference": {"kind": "none"},
}


def test_an_entity_model_names_the_bad_field_and_refuses_unknown_keys() -> None:
    with pytest.raises(ValidationError) as raised:
        InstrumentDocument.model_validate(
            {**INSTRUMENT, "tolerance": {"upper": "wide"}, "colour": "red", "unit": "blorps"}
        )
    fields = {".".join(str(p) for p in e["loc"]) for e in raised.value.errors()}
    assert fields == {"tolerance.upper", "colour", "unit"}
    spec = InstrumentDocument.model_validate(INSTRUMENT).spec(
        "acme", "north", default_rule="guard_band_u"
    )
    assert (spec.tenant, spec.site, spec.tolerance.lower) == ("acme", "north", -0.2)
    assert spec.decision_rule == DecisionRule.guard_band_u()


def _with_calibration(**calibration: Any) -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENT)
    instrument = document["tenants"][0]["sites"][0]["instruments"][0]
    instrument["calibrations"] = [
        {"certificate": "CAL-9", "date": "2026-01-01T00:00:00Z", "expanded_uncertainty": 0.05,
         "interval_days": 365, **calibration}
    ]  # fmt: skip
    return document


def test_a_certificate_with_a_curve_of_points() -> None:
    points = [
        {"indication": x, "correction": c} for x, c in ((0, 0.05), (100, -0.01), (200, -0.08))
    ]
    record = load_fleet(_with_calibration(points=points)).calibrations[ID].records[0]
    assert record.correction == CurveCorrection(((0.0, 0.05), (100.0, -0.01), (200.0, -0.08)))
    # Given high to low, the same curve.
    falling = load_fleet(_with_calibration(points=points[::-1])).calibrations[ID].records[0]
    assert falling.correction == record.correction


@pytest.mark.parametrize(
    ("calibration", "field", "message"),
    [
        ({"points": [{"indication": 0, "correction": 0}, {"indication": 50, "correction": 0},
                     {"indication": 40, "correction": 0}]}, "points", "strictly monotonic"),
        ({"points": [{"indication": 0, "correction": 0}]}, "points", "at least 2"),
        ({"points": [{"indication": 0, "correction": 0}, {"indication": 1, "correction": 0}],
          "correction": {"offset": 1}}, "calibrations.0", "either correction"),
        ({"unit": "blorps"}, "unit", "blorps"),
        ({"date": "2026-01-01T00:00:00"}, "date", "timezone"),
    ],
)  # fmt: skip
def test_a_bad_certificate_is_refused_naming_the_field(
    calibration: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(FleetError, match=rf"calibrations\.0(\.{field})?[.:][^\n]*{message}"):
        load_fleet(_with_calibration(**calibration))


def test_a_certificate_in_an_incompatible_unit_is_refused() -> None:
    with pytest.raises(FleetError, match=r"calibration CAL-9: the certificate's unit: .*bar"):
        load_fleet(_with_calibration(unit="bar"))


@given(
    offset=st.floats(-5, 5),
    gain=st.floats(0.9, 1.1),
    indication_c=st.floats(-50, 300),
    uncertainty_f=st.floats(0, 2),
)
def test_a_certificate_in_degf_corrects_a_degc_instrument_as_it_would_in_degf(
    offset: float, gain: float, indication_c: float, uncertainty_f: float
) -> None:
    """Converting the certificate to the registered unit commutes with converting readings."""
    document = CalibrationDocument(
        certificate="CAL-F", date=datetime(2026, 1, 1, tzinfo=UTC), unit="degF",
        correction={"offset": offset, "gain": gain}, expanded_uncertainty=uncertainty_f,
        interval_days=365, as_found_error=uncertainty_f,
    )  # fmt: skip
    record = document.record("tt", "degC")
    indication_f = indication_c * 9 / 5 + 32
    expected_c = (gain * indication_f + offset - 32) * 5 / 9
    assert record.correction.apply(indication_c) == pytest.approx(expected_c, abs=1e-9)
    assert record.expanded_uncertainty == pytest.approx(uncertainty_f * 5 / 9)
    assert record.as_found_error == pytest.approx(uncertainty_f * 5 / 9)
    curve = CalibrationDocument(
        certificate="CAL-F", date=datetime(2026, 1, 1, tzinfo=UTC), unit="degF",
        points=[{"indication": 32, "correction": offset}, {"indication": 212, "correction": 0}],
        expanded_uncertainty=uncertainty_f, interval_days=365,
    ).record("tt", "degC")  # fmt: skip
    table = CurveCorrection(((32.0, offset), (212.0, 0.0)))
    assert curve.correction.apply(indication_c) == pytest.approx(
        (table.apply(indication_f) - 32) * 5 / 9, abs=1e-9
    )


def test_clients_become_contracts_and_gateways_are_registered() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["tenants"][0]["sites"][0]["gateways"] = [{"id": "gw-02", "description": "hall 3"}]
    document["tenants"].append(
        {"id": "globex", "sites": [{"id": "main"}]},
    )
    document["tenants"].append(
        {
            "id": "calprov",
            "kind": "calibration_provider",
            "clients": [
                "acme",
                {
                    "client": "globex",
                    "scope": "calibration",
                    "valid_from": "2026-01-01T00:00:00Z",
                    "valid_until": "2027-01-01T00:00:00Z",
                },
            ],
        }
    )
    fleet = load_fleet(document)
    assert fleet.tenants["calprov"].clients == ("acme", "globex")
    assert fleet.contracts == (
        Contract("calprov", "acme", ContractScope.READ, None, None),
        Contract("calprov", "globex", ContractScope.CALIBRATION, 1_767_225_600.0, 1_798_761_600.0),
    )
    assert sorted((g.gateway_id, g.description) for g in fleet.gateways.values()) == [
        ("gw-01", ""),  # named by the instrument
        ("gw-02", "hall 3"),  # declared
    ]
    assert fleet.subset([ID]).contracts == fleet.contracts  # the provider is kept


@pytest.mark.parametrize(
    ("clients", "kind", "message"),
    [
        (["acme", {"client": "acme", "valid_from": "2026-01-01T00:00:00Z"}],
         "calibration_provider", "overlap"),
        (["acme"], "manufacturer", "not a calibration_provider"),
        ([{"client": "acme", "valid_from": "2027-01-01T00:00:00Z",
           "valid_until": "2026-01-01T00:00:00Z"}], "calibration_provider", "valid_until"),
    ],
)  # fmt: skip
def test_inconsistent_contracts_are_refused(clients: list[Any], kind: str, message: str) -> None:
    document = copy.deepcopy(DOCUMENT)
    document["tenants"].append({"id": "calprov", "kind": kind, "clients": clients})
    with pytest.raises(FleetError, match=message):
        load_fleet(document)
