"""Write throughput of the embedded store: ``python -m calstream.evaluation.sqlite_bench``.

Writes batches of readings (as the pipeline does: gateway by gateway, so timestamps interleave)
of a fleet shaped like ``calstream bench``'s (realistic instrument and certificate ids) into a
fresh file in a temporary folder, and prints the cost per reading (microseconds, commit
included) and the rate, with ``synchronous=FULL`` and ``NORMAL``; with and without the
latest-state upsert of every instrument touched. Values are full-precision floats (as measured
values are; SQLite stores an integral REAL in fewer bytes, which would flatter the figures). By
default half the readings carry a reference and so a residual with its drift statistics
(``--residual-share``); the others are corrected values only.

Prints the wall-clock cost (includes waiting for fsync; the machine may be shared) and the
CPU-time cost (what the store costs the pipeline's process), and the cost of building the row
tuples. Figures only; nothing is asserted (DESIGN.md, "Testing").
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metrology.assessment import SNAPSHOT_NUMBER_KEYS, Assessment, HealthSnapshot
from metrology.batch import OutputBatch
from metrology.fleet import Fleet, load_fleet
from metrology.health import Status
from metrology.reading import Reading
from storage.rows import reading_rows, snapshot_row
from storage.sqlite_store import SqliteStore

T0 = 1_790_000_000.0
ROUND_S = 10.0
"""Every instrument reports once per round (one reading each per round and batch)."""

_SITES = (("acme", "north"), ("acme", "south"), ("nordfab", "oslo"), ("nordfab", "bergen"))
_KINDS = (("TT", "temperature", "degC"), ("PT", "pressure", "bar"), ("FT", "flow", "m**3/h"))
GATEWAYS_PER_SITE = 3


def bench_fleet(instruments: int) -> Fleet:
    """A fleet shaped like ``calstream bench``'s: 2 tenants x 2 sites x 3 gateways, ids such as
    ``acme-north-PT-0042`` and certificates such as ``CLB-2025-0042`` (self-contained, so this
    module depends on :mod:`metrology` only)."""
    sites: dict[tuple[str, str], list[dict[str, Any]]] = {place: [] for place in _SITES}
    for n in range(instruments):
        tenant, site = _SITES[n % len(_SITES)]
        code, measurand, unit = _KINDS[n // len(_SITES) % len(_KINDS)]
        sites[(tenant, site)].append(
            {
                "id": f"{tenant}-{site}-{code}-{n:04d}",
                "measurand": measurand,
                "unit": unit,
                "range": {"low": 0, "high": 200},
                "tolerance": {"lower": -0.5, "upper": 0.5},
                "period_s": ROUND_S,
                "gateway": f"gw-{n // len(_SITES) % GATEWAYS_PER_SITE + 1:02d}",
                "reference": {"kind": "check_standard"},
                "calibrations": [
                    {
                        "certificate": f"CLB-2025-{n:04d}",
                        "date": "2026-01-15T00:00:00Z",
                        "correction": {"offset": 0.00084, "gain": 1.0000126},
                        "expanded_uncertainty": 0.0048,
                        "interval_days": 365,
                    }
                ],
            }
        )
    tenants: dict[str, list[dict[str, Any]]] = {}
    for (tenant, site), members in sites.items():
        tenants.setdefault(tenant, []).append({"id": site, "instruments": members})
    return load_fleet(
        {
            "fleet": "storage bench fleet",
            "as_of": "2026-11-01T00:00:00Z",
            "tenants": [{"id": t, "name": t, "sites": s} for t, s in tenants.items()],
        }
    )


def make_batches(
    fleet: Fleet, batches: int, size: int, residual_share: float, seed: int = 11
) -> list[OutputBatch]:
    """``batches`` batches of about ``size`` readings: per batch, rounds of one reading per
    instrument, grouped by gateway (one gateway's readings of the batch, then the next), so
    timestamps interleave as they do when gateways deliver in batches."""
    rng = random.Random(seed)
    specs = sorted(fleet.instruments.values(), key=lambda s: (s.tenant, s.site, s.gateway))
    gateways: dict[tuple[str, str, str], list[int]] = {}
    for i, spec in enumerate(specs):
        gateways.setdefault((spec.tenant, spec.site, spec.gateway), []).append(i)
    certificates = [fleet.calibrations[s.instrument_id].records[-1].certificate_id for s in specs]
    offsets = [rng.uniform(0.0, ROUND_S) for _ in specs]
    rounds = max(size // len(specs), 1)
    result = []
    for index in range(batches):
        readings: list[tuple[Reading, Assessment]] = []
        for members in gateways.values():
            for r in range(index * rounds, (index + 1) * rounds):
                for i in members:
                    spec = specs[i]
                    ts = T0 + r * ROUND_S + offsets[i]
                    value = rng.gauss(50.0, 20.0)
                    corrected = value * 1.0000126 + 0.00084
                    reference = u_residual = ewma = cusum_high = cusum_low = rate = None
                    residual = None
                    if rng.random() < residual_share:
                        reference = value + rng.gauss(0.0, 0.01)
                        residual = corrected - reference
                        u_residual, ewma = rng.uniform(0.001, 0.01), residual * 0.3
                        cusum_high = rng.choice((0.0, rng.uniform(0.0, 0.05)))
                        cusum_low, rate = 0.0, rng.gauss(0.0, 1e-4)
                    reading = Reading(
                        spec.tenant, spec.site, spec.gateway, spec.instrument_id, ts, value,
                        spec.unit, r, reference, None if reference is None else 0.002,
                    )  # fmt: skip
                    assessment = Assessment(
                        spec.instrument_id, ts, r, corrected, certificates[i], reference, residual,
                        u_residual, ewma, cusum_high, cusum_low, rate, Status.OK,
                    )  # fmt: skip
                    readings.append((reading, assessment))
        result.append(OutputBatch(readings=readings, snapshots=_snapshots(readings)))
    return result


def _snapshots(readings: list[tuple[Reading, Assessment]]) -> list[HealthSnapshot]:
    last = {r.instrument_id: r for r, _ in readings}
    numbers: dict[str, float | str | None] = {
        k: 0.1234567 * n for n, k in enumerate(SNAPSHOT_NUMBER_KEYS)
    }
    numbers["decision_rule"] = "simple acceptance"
    return [
        HealthSnapshot(
            i,
            r.tenant,
            r.site,
            Status.OK,
            (Status.OK,),
            ("in tolerance, no drift signal",),
            r.ts,
            r.ts,
            numbers,
        )
        for i, r in last.items()
    ]


def bench_write(
    synchronous: str, fleet: Fleet, batches: list[OutputBatch], with_state: bool
) -> tuple[list[float], list[float], int]:
    """Wall-clock and CPU-time cost (seconds per reading) of every batch, and the file size."""
    wall, cpu = [], []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite"
        store = SqliteStore(path, synchronous=synchronous)
        try:
            store.register_fleet(fleet)
            for batch in batches:
                if not with_state:
                    batch = OutputBatch(readings=batch.readings)
                started, started_cpu = time.perf_counter(), time.process_time()
                result = store.write(batch)
                wall.append((time.perf_counter() - started) / result.readings_inserted)
                cpu.append((time.process_time() - started_cpu) / result.readings_inserted)
        finally:
            store.close()
        size = path.stat().st_size
    return wall, cpu, size


def best_cost(build: Callable[[], object], items: int, repeat: int = 10) -> float:
    """Seconds per item, best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        build()
        best = min(best, time.perf_counter() - started)
    return best / items


def main() -> None:
    parser = argparse.ArgumentParser(description="Write throughput of the embedded SQLite store.")
    parser.add_argument("--batch", type=int, default=20_000, help="readings per batch")
    parser.add_argument("--batches", type=int, default=10, help="batches per run")
    parser.add_argument("--instruments", type=int, default=2_000)
    parser.add_argument(
        "--residual-share", type=float, default=0.5, help="share of readings with a residual"
    )
    parser.add_argument(
        "--sync", choices=("FULL", "NORMAL"), action="append", help="only these modes"
    )
    parser.add_argument("--readings-only", action="store_true", help="skip the state upserts")
    args = parser.parse_args()
    fleet = bench_fleet(args.instruments)
    batches = make_batches(fleet, args.batches, args.batch, args.residual_share)
    gc.freeze()  # the batches are long-lived here; the pipeline holds one at a time
    first = batches[0]
    n = len(first.readings)
    print(
        f"{args.batches} batches x {n:,} readings, {len(fleet.instruments):,} instruments "
        f"({len(first.snapshots):,} latest-state rows per batch), "
        f"{args.residual_share:.0%} with a residual"
    )
    rows = best_cost(lambda: reading_rows(first.readings), n)
    states = best_cost(lambda: [snapshot_row(s) for s in first.snapshots], len(first.snapshots))
    print(
        f"building rows: {rows * 1e6:.2f} us per reading, "
        f"{states * 1e6:.1f} us per latest-state row (JSON included)"
    )
    for synchronous in args.sync or ("FULL", "NORMAL"):
        for with_state in (False,) if args.readings_only else (False, True):
            wall, cpu, size = bench_write(synchronous, fleet, batches, with_state)
            label = "readings + latest state" if with_state else "readings only"
            print(
                f"synchronous={synchronous:<6} {label:<24} "
                f"{statistics.median(wall) * 1e6:5.2f} us/reading wall (median; "
                f"{1 / statistics.median(wall):>9,.0f}/s, worst {max(wall) * 1e6:5.2f} us), "
                f"{statistics.median(cpu) * 1e6:5.2f} us/reading CPU; "
                f"file {size / (args.batches * n):.0f} B/reading"
            )


if __name__ == "__main__":
    main()
