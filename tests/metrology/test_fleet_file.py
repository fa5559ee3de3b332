"""The fleet file: decision rules, interval policies, as-found errors and amendments."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from metrology.conformity import DecisionRule
from metrology.errors import FleetError
from metrology.fleet import load_fleet
from metrology.intervals import StaircasePolicy
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
