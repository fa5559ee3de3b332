"""Generate a realistic fleet description (the document :func:`metrology.fleet.load_fleet` reads).

The fleet has two manufacturer tenants with two plants each and one calibration provider serving
both under contract. Instruments are spread over five measurand families
(:mod:`edge_sim.catalogue`); each one gets a reporting period, a gateway of its site and a
reference relation: most are checked against a check standard or a co-located reference
instrument, some sit in peer groups of 3-4 redundant instruments at one measuring point, and
about 10 % have no reference at all.

Calibration records follow a test uncertainty ratio of 3-4:1: the expanded uncertainty (k = 2) of
each certificate is 1/4 to 1/3 of the MPE at mid-range. Dates are relative to ``as_of``: most
instruments are in date, some due within 30 days, a few overdue; about a third carry a second,
newer certificate issued within the last year, so correcting each reading with the record valid
at its time (not the newest) matters.

Command line (the shipped ``calstream/data/fleet.yaml`` is made this way)::

    python -m edge_sim.fleetgen --instruments 60 --seed 7 --as-of 2026-11-01T00:00:00Z \\
        --out calstream/data/fleet.yaml
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge_sim.catalogue import (
    CATALOGUE,
    PEER_FAMILIES,
    REPORTING_PERIODS_S,
    Family,
    InstrumentModel,
)

MANUFACTURERS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("acme", "ACME Precision Parts", (("north", "North plant"), ("south", "South plant"))),
    ("nordfab", "Nordfab Process Industries", (("oslo", "Oslo works"), ("bergen", "Bergen port"))),
)
PROVIDER = ("calibra", "Calibra Metrology Services")
CERTIFICATE_PREFIX = "CLB"

MIN_INSTRUMENTS = 12
PEER_SHARE = 0.18
NO_REFERENCE_SHARE = 0.10
CHECK_STANDARD_SHARE = 0.55
"""Of the instruments with a reference outside peer groups, the share using a check standard."""
OVERDUE_SHARE = 0.08
DUE_SOON_SHARE = 0.15
TWO_RECORD_SHARE = 0.35
INTERVALS_DAYS = (180, 365, 365, 365, 540, 730)
DUE_SOON_DAYS = 30
RECENT_DAYS = 340
"""A second certificate is issued within this many days before ``as_of``."""

EXAMPLE_INSTRUMENTS = 60
EXAMPLE_SEED = 7
EXAMPLE_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
EXAMPLE_PATH = "calstream/data/fleet.yaml"


@dataclass(slots=True)
class _Slot:
    """An instrument being planned, before it gets its identifier."""

    tenant: str
    site: str
    model: InstrumentModel
    reference: dict[str, str]
    period_s: float
    gateway: str


def _round_sig(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sites() -> list[tuple[str, str, str]]:
    return [(tenant, site, name) for tenant, _, sites in MANUFACTURERS for site, name in sites]


def _gateways(rng: np.random.Generator) -> dict[tuple[str, str], list[str]]:
    """Two or three gateways per site, ``gw-01`` upwards."""
    return {
        (tenant, site): [f"gw-{g + 1:02d}" for g in range(int(rng.integers(2, 4)))]
        for tenant, site, _ in _sites()
    }


def _peer_slots(
    rng: np.random.Generator, instruments: int, gateways: dict[tuple[str, str], list[str]]
) -> list[_Slot]:
    """Peer groups of 4-5 instruments of one model at one site, sharing period and gateway.

    Four at least: excluding the instrument under test leaves three peers, enough for the
    chi-square test to single out one drifting peer (with two, it cannot tell which is wrong).
    """
    sites = _sites()
    groups = max(1, round(instruments * PEER_SHARE / 4.5))
    slots: list[_Slot] = []
    for g in range(groups):
        tenant, site, _ = sites[g % len(sites)]
        family = PEER_FAMILIES[int(rng.integers(len(PEER_FAMILIES)))]
        models = CATALOGUE[family]
        model = models[int(rng.integers(len(models)))]
        period = float(rng.choice(REPORTING_PERIODS_S))
        gateway = str(rng.choice(gateways[(tenant, site)]))
        name = f"{tenant}-{site}-{family.value}-pg{g + 1:02d}"
        slots.extend(
            _Slot(tenant, site, model, {"kind": "peer_group", "group": name}, period, gateway)
            for _ in range(int(rng.integers(4, 6)))
        )
    return slots


def _single_slots(
    rng: np.random.Generator,
    count: int,
    instruments: int,
    gateways: dict[tuple[str, str], list[str]],
) -> list[_Slot]:
    """Instruments outside peer groups: every family represented, references mixed."""
    families = [list(Family)[i % len(Family)] for i in range(count)]
    rng.shuffle(families)
    n_none = min(count, round(instruments * NO_REFERENCE_SHARE))
    n_check = round((count - n_none) * CHECK_STANDARD_SHARE)
    kinds = ["none"] * n_none + ["check_standard"] * n_check
    kinds += ["reference_instrument"] * (count - len(kinds))
    rng.shuffle(kinds)
    sites = _sites()
    slots = []
    for i, (family, kind) in enumerate(zip(families, kinds, strict=True)):
        tenant, site, _ = sites[int(rng.integers(len(sites)))] if i >= len(sites) else sites[i]
        models = CATALOGUE[family]
        model = models[int(rng.integers(len(models)))]
        reference = {"kind": kind}
        if kind == "reference_instrument":
            reference["instrument"] = f"{tenant}-{site}-{family.value}-R{i + 1:03d}"
        period = float(rng.choice(REPORTING_PERIODS_S))
        gateway = str(rng.choice(gateways[(tenant, site)]))
        slots.append(_Slot(tenant, site, model, reference, period, gateway))
    return slots


class _CertificateNumbers:
    """Unique certificate identifiers of the provider: ``CLB-<year>-<nnnn>``."""

    def __init__(self) -> None:
        self._next = 0

    def issue(self, moment: datetime) -> str:
        self._next += 1
        return f"{CERTIFICATE_PREFIX}-{moment.year}-{self._next:04d}"


def _calibration(
    rng: np.random.Generator,
    model: InstrumentModel,
    date: datetime,
    interval_days: int,
    certificates: _CertificateNumbers,
) -> dict[str, Any]:
    """One certificate: a small as-left correction and U (k = 2) at 1/4-1/3 of the MPE."""
    mid = (model.low + model.high) / 2.0
    mpe = model.mpe_at(mid)
    full_scale = max(abs(model.low), abs(model.high))
    offset = _round_sig(float(rng.normal(0.0, 0.15 * mpe)), 2)
    gain = round(1.0 + float(rng.normal(0.0, 0.05 * mpe / full_scale)), 7)
    expanded = _round_sig(mpe * float(rng.uniform(0.26, 0.32)), 2)  # TUR 3.1-3.8 after rounding
    return {
        "certificate": certificates.issue(date),
        "date": _iso(date),
        "correction": {"offset": offset, "gain": gain},
        "expanded_uncertainty": expanded,
        "k": 2,
        "interval_days": interval_days,
    }


def _calibrations(
    rng: np.random.Generator,
    model: InstrumentModel,
    due_state: str,
    two_records: bool,
    as_of: datetime,
    certificates: _CertificateNumbers,
) -> list[dict[str, Any]]:
    """1-2 certificates, oldest first, the newest placing the instrument in ``due_state``."""
    interval = int(rng.choice(INTERVALS_DAYS))
    if due_state == "overdue":
        if two_records:
            interval = 180
        remaining = float(rng.uniform(-90.0, -2.0))
    elif due_state == "due_soon":
        remaining = float(rng.uniform(1.0, DUE_SOON_DAYS - 1.0))
    else:
        floor = max(DUE_SOON_DAYS + 5.0, interval - RECENT_DAYS if two_records else 0.0)
        remaining = float(rng.uniform(floor, interval * 0.95))
    hour = int(rng.integers(7, 17))
    day = as_of - timedelta(days=math.floor(interval - remaining))
    latest = day.replace(hour=hour, minute=0, second=0, microsecond=0)
    records = []
    if two_records:
        previous_interval = int(rng.choice(INTERVALS_DAYS))
        slip = float(rng.uniform(-20.0, 10.0))
        earlier = latest - timedelta(days=math.floor(previous_interval + slip))
        earlier = earlier.replace(hour=int(rng.integers(7, 17)))
        records.append(_calibration(rng, model, earlier, previous_interval, certificates))
    records.append(_calibration(rng, model, latest, interval, certificates))
    return records


def _tolerance(model: InstrumentModel) -> dict[str, float]:
    tolerance = {"mpe": model.mpe}
    if model.relative:
        tolerance["relative"] = model.relative
    return tolerance


def generate_fleet_document(instruments: int, seed: int, as_of: datetime) -> dict[str, Any]:
    """A fleet document of ``instruments`` instruments, the same for the same arguments.

    ``as_of`` must be timezone-aware; calibration dates and due states are relative to it.
    """
    if instruments < MIN_INSTRUMENTS:
        raise ValueError(f"a fleet needs at least {MIN_INSTRUMENTS} instruments, got {instruments}")
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    rng = np.random.default_rng(seed)
    gateways = _gateways(rng)
    slots = _peer_slots(rng, instruments, gateways)
    slots = slots[:instruments]
    slots += _single_slots(rng, instruments - len(slots), instruments, gateways)

    order = rng.permutation(len(slots))
    n_overdue = max(1, round(len(slots) * OVERDUE_SHARE))
    n_due_soon = max(1, round(len(slots) * DUE_SOON_SHARE))
    due_states = ["in_date"] * len(slots)
    for rank, index in enumerate(order):
        if rank < n_overdue:
            due_states[index] = "overdue"
        elif rank < n_overdue + n_due_soon:
            due_states[index] = "due_soon"
    two_records = rng.random(len(slots)) < TWO_RECORD_SHARE

    certificates = _CertificateNumbers()
    numbers: dict[tuple[str, str, Family], int] = defaultdict(int)
    by_site: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for slot, due_state, two in zip(slots, due_states, two_records, strict=True):
        key = (slot.tenant, slot.site, slot.model.family)
        numbers[key] += 1
        by_site[(slot.tenant, slot.site)].append(
            {
                "id": f"{slot.tenant}-{slot.site}-{slot.model.family.value}-{numbers[key]:03d}",
                "measurand": slot.model.measurand,
                "unit": slot.model.unit,
                "range": {"low": slot.model.low, "high": slot.model.high},
                "tolerance": _tolerance(slot.model),
                "period_s": slot.period_s,
                "gateway": slot.gateway,
                "reference": slot.reference,
                "description": slot.model.description,
                "calibrations": _calibrations(
                    rng, slot.model, due_state, bool(two), as_of, certificates
                ),
            }
        )

    tenants: list[dict[str, Any]] = [
        {
            "id": tenant,
            "name": name,
            "kind": "manufacturer",
            "sites": [
                {"id": site, "name": site_name, "instruments": by_site[(tenant, site)]}
                for site, site_name in sites
            ],
        }
        for tenant, name, sites in MANUFACTURERS
    ]
    tenants.append(
        {
            "id": PROVIDER[0],
            "name": PROVIDER[1],
            "kind": "calibration_provider",
            "clients": [tenant for tenant, _, _ in MANUFACTURERS],
            "sites": [],
        }
    )
    return {
        "fleet": f"Simulated fleet ({instruments} instruments, seed {seed})",
        "as_of": _iso(as_of),
        "schema_version": 1,
        "tenants": tenants,
    }


def generation_command(instruments: int, seed: int, as_of: datetime, out: str) -> str:
    """The command line that regenerates a fleet file."""
    return (
        f"python -m edge_sim.fleetgen --instruments {instruments} --seed {seed} "
        f"--as-of {_iso(as_of)} --out {out}"
    )


def render_fleet_yaml(document: dict[str, Any], command: str) -> str:
    """YAML text of a fleet document, headed by the command that generated it."""
    header = (
        "# Simulated calstream fleet, generated by edge_sim.fleetgen. Do not edit by hand:\n"
        f"#   {command}\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def write_fleet(path: str | Path, instruments: int, seed: int, as_of: datetime) -> None:
    """Generate a fleet and write it as YAML to ``path``."""
    document = generate_fleet_document(instruments, seed, as_of)
    text = render_fleet_yaml(document, generation_command(instruments, seed, as_of, str(path)))
    Path(path).write_text(text, encoding="utf-8")


def write_example_fleet(path: str | Path = EXAMPLE_PATH) -> None:
    """Write the shipped example fleet (60 instruments, seed 7, as of 2026-11-01)."""
    write_fleet(path, EXAMPLE_INSTRUMENTS, EXAMPLE_SEED, EXAMPLE_AS_OF)


def _parse_as_of(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return moment


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m edge_sim.fleetgen", description="Generate a simulated calstream fleet."
    )
    parser.add_argument("--instruments", type=int, default=EXAMPLE_INSTRUMENTS)
    parser.add_argument("--seed", type=int, default=EXAMPLE_SEED)
    parser.add_argument("--as-of", type=_parse_as_of, default=EXAMPLE_AS_OF)
    parser.add_argument("--out", default=EXAMPLE_PATH)
    args = parser.parse_args(argv)
    write_fleet(args.out, args.instruments, args.seed, args.as_of)


if __name__ == "__main__":
    main()
