"""The generated fleet: loads, is realistic and deterministic; the shipped file is up to date."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from edge_sim.fleetgen import (
    EXAMPLE_AS_OF,
    EXAMPLE_INSTRUMENTS,
    EXAMPLE_PATH,
    EXAMPLE_SEED,
    generate_fleet_document,
    generation_command,
    main,
    render_fleet_yaml,
)
from metrology.calibration import DueState, due_state
from metrology.fleet import Fleet, TenantKind, load_fleet
from metrology.instrument import ReferenceKind
from metrology.timebase import SECONDS_PER_DAY
from metrology.units import linear_conversion
from metrology.wire import IDENTIFIER_PATTERN

FAMILY_MEASURANDS = {
    "TT": {"temperature"},
    "PT": {"pressure"},
    "FT": {"flow"},
    "WT": {"force", "mass"},
    "ET": {"voltage", "current", "resistance"},
}
FAMILY_DIMENSION_UNIT = {"TT": "degC", "PT": "kPa", "FT": "L/min", "WT": None, "ET": None}


def test_same_arguments_give_the_same_document() -> None:
    first = generate_fleet_document(40, 3, EXAMPLE_AS_OF)
    assert first == generate_fleet_document(40, 3, EXAMPLE_AS_OF)
    assert first != generate_fleet_document(40, 4, EXAMPLE_AS_OF)


def test_shipped_fleet_equals_a_fresh_generation_with_the_documented_command(
    shipped_fleet_text: str,
) -> None:
    document = generate_fleet_document(EXAMPLE_INSTRUMENTS, EXAMPLE_SEED, EXAMPLE_AS_OF)
    command = generation_command(EXAMPLE_INSTRUMENTS, EXAMPLE_SEED, EXAMPLE_AS_OF, EXAMPLE_PATH)
    assert command == (
        "python -m edge_sim.fleetgen --instruments 60 --seed 7 "
        "--as-of 2026-11-01T00:00:00Z --out calstream/data/fleet.yaml"
    )
    shipped = shipped_fleet_text
    assert command in shipped.splitlines()[1]
    assert shipped == render_fleet_yaml(document, command)
    assert yaml.safe_load(shipped) == document


def test_command_line_writes_the_same_fleet(tmp_path: Path, shipped_fleet_text: str) -> None:
    out = tmp_path / "fleet.yaml"
    arguments = ["--instruments", "60", "--seed", "7", "--as-of", "2026-11-01T00:00:00Z", "--out"]
    main([*arguments, str(out)])
    written = out.read_text(encoding="utf-8")
    assert written.startswith("# ")
    assert yaml.safe_load(written) == yaml.safe_load(shipped_fleet_text)


def test_too_small_or_naive_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        generate_fleet_document(5, 1, EXAMPLE_AS_OF)
    with pytest.raises(ValueError, match="timezone"):
        generate_fleet_document(30, 1, datetime(2026, 11, 1))


def test_tenants_and_sites(shipped_fleet: Fleet) -> None:
    kinds = Counter(t.kind for t in shipped_fleet.tenants.values())
    assert kinds[TenantKind.MANUFACTURER] >= 2
    assert kinds[TenantKind.CALIBRATION_PROVIDER] == 1
    provider = next(
        t for t in shipped_fleet.tenants.values() if t.kind is TenantKind.CALIBRATION_PROVIDER
    )
    manufacturers = {
        t.tenant_id for t in shipped_fleet.tenants.values() if t.kind is TenantKind.MANUFACTURER
    }
    assert set(provider.clients) == manufacturers
    assert len(shipped_fleet.sites) >= 3
    assert len(shipped_fleet.instruments) == 60
    used_sites = {(i.tenant, i.site) for i in shipped_fleet.instruments.values()}
    assert used_sites == set(shipped_fleet.sites)


def test_two_or_three_gateways_per_site(shipped_fleet: Fleet) -> None:
    gateways = defaultdict(set)
    for spec in shipped_fleet.instruments.values():
        assert re.fullmatch(r"gw-\d\d", spec.gateway)
        gateways[(spec.tenant, spec.site)].add(spec.gateway)
    assert all(1 <= len(g) <= 3 for g in gateways.values())
    assert sum(len(g) for g in gateways.values()) >= 2 * len(gateways) - 1


def test_identifiers_name_tenant_site_and_family(shipped_fleet: Fleet) -> None:
    pattern = re.compile(IDENTIFIER_PATTERN)
    for spec in shipped_fleet.instruments.values():
        assert pattern.match(spec.instrument_id)
        match = re.fullmatch(r"(\w+)-(\w+)-(TT|PT|FT|WT|ET)-(\d{3})", spec.instrument_id)
        assert match is not None, spec.instrument_id
        assert (match[1], match[2]) == (spec.tenant, spec.site)
        assert spec.measurand in FAMILY_MEASURANDS[match[3]]


def test_five_measurand_families_in_pint_units(shipped_fleet: Fleet) -> None:
    families = Counter(i.instrument_id.split("-")[2] for i in shipped_fleet.instruments.values())
    assert set(families) == set(FAMILY_MEASURANDS)
    for spec in shipped_fleet.instruments.values():
        family = spec.instrument_id.split("-")[2]
        reference_unit = FAMILY_DIMENSION_UNIT[family]
        if reference_unit is not None:
            linear_conversion(spec.unit, reference_unit)  # raises if not the same dimension


def test_ranges_tolerances_and_periods_are_realistic(shipped_fleet: Fleet) -> None:
    for instrument_id, spec in shipped_fleet.instruments.items():
        span = shipped_fleet.ranges[instrument_id].span
        assert spec.tolerance.lower == -spec.tolerance.upper  # type: ignore[operator]
        assert 0.0001 * span <= spec.tolerance.half_width <= 0.005 * span
        assert 300 <= spec.reporting_period_s <= 3600


def test_reference_relations_are_mixed(shipped_fleet: Fleet) -> None:
    kinds = Counter(i.reference.kind for i in shipped_fleet.instruments.values())
    n = len(shipped_fleet.instruments)
    assert kinds[ReferenceKind.CHECK_STANDARD] + kinds[ReferenceKind.REFERENCE_INSTRUMENT] > n / 2
    assert 0.05 * n <= kinds[ReferenceKind.NONE] <= 0.15 * n
    assert kinds[ReferenceKind.PEER_GROUP] >= 6


def test_peer_groups_share_measurand_unit_site_and_period(shipped_fleet: Fleet) -> None:
    groups = {
        s.reference.peer_group
        for s in shipped_fleet.instruments.values()
        if s.reference.kind is ReferenceKind.PEER_GROUP
    }
    assert len(groups) >= 2
    for group in groups:
        assert group is not None
        members = [shipped_fleet.instruments[i] for i in shipped_fleet.peers_of(group)]
        assert 3 <= len(members) <= 4
        shared = {(m.measurand, m.unit, m.tenant, m.site, m.reporting_period_s) for m in members}
        assert len(shared) == 1


def test_calibrations_have_a_test_uncertainty_ratio_of_3_to_4(shipped_fleet: Fleet) -> None:
    certificates = []
    for instrument_id, history in shipped_fleet.calibrations.items():
        spec = shipped_fleet.instruments[instrument_id]
        measuring_range = shipped_fleet.ranges[instrument_id]
        mid = (measuring_range.low + measuring_range.high) / 2
        lower, upper = spec.tolerance.limits_at(mid)
        assert lower is not None and upper is not None
        mpe = (upper - lower) / 2
        assert 1 <= len(history) <= 2
        for record in history.records:
            certificates.append(record.certificate_id)
            assert record.coverage_factor == 2
            assert 0.24 <= record.expanded_uncertainty / mpe <= 0.345
            assert 180 <= record.interval_days <= 730
            assert abs(record.correction.offset) < 0.8 * mpe
            full_scale = max(abs(measuring_range.low), abs(measuring_range.high))
            assert abs(record.correction.gain - 1) * full_scale < 0.4 * mpe
    assert len(certificates) == len(set(certificates))


def test_due_states_relative_to_as_of(shipped_fleet: Fleet) -> None:
    as_of = shipped_fleet.as_of
    assert as_of == EXAMPLE_AS_OF.timestamp()
    states = Counter()
    for history in shipped_fleet.calibrations.values():
        latest = history.latest()
        assert latest is not None and latest.calibrated_at <= as_of
        states[due_state(latest, as_of, due_soon_days=30)] += 1
    n = len(shipped_fleet.instruments)
    assert states[DueState.IN_DATE] > n / 2
    assert states[DueState.DUE_SOON] >= 3
    assert 1 <= states[DueState.OVERDUE] <= 0.15 * n


def test_some_second_certificates_fall_in_the_last_year(shipped_fleet: Fleet) -> None:
    as_of = shipped_fleet.as_of
    assert as_of is not None
    recent_second = [
        h
        for h in shipped_fleet.calibrations.values()
        if len(h) == 2 and as_of - 365 * SECONDS_PER_DAY <= h.records[1].calibrated_at <= as_of
    ]
    assert len(recent_second) >= 5
    for history in recent_second:
        assert history.records[0].calibrated_at < history.records[1].calibrated_at


@pytest.mark.parametrize("instruments", [12, 61, 200])
def test_other_sizes_load(instruments: int) -> None:
    as_of = datetime(2027, 3, 1, tzinfo=UTC)
    fleet = load_fleet(generate_fleet_document(instruments, instruments, as_of))
    assert len(fleet.instruments) == instruments
    assert {i.instrument_id.split("-")[2] for i in fleet.instruments.values()} == set(
        FAMILY_MEASURANDS
    )
