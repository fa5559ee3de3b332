"""Write throughput of the embedded store: ``python -m storage.bench_sqlite``.

Writes batches of readings (as the pipeline does: gateway by gateway, so timestamps interleave)
of the bench fleet (``edge_sim.fleetgen``, the fleet ``calstream bench`` uses: realistic
instrument and certificate ids) into a fresh file in a temporary folder, and prints the cost per
reading (microseconds, commit included) and the rate, with ``synchronous=FULL`` and ``NORMAL``;
with and without the latest-state upsert of every instrument touched. Values are full-precision
floats (as measured values are; SQLite stores an integral REAL in fewer bytes, which would flatter
the figures). By default half the readings carry a reference and so a residual with its drift
statistics (``--residual-share``); the others are corrected values only.

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
from datetime import UTC, datetime
from pathlib import Path

from edge_sim.fleetgen import generate_fleet_document
from metrology.assessment import Assessment, HealthSnapshot
from metrology.fleet import Fleet, load_fleet
from metrology.health import Status
from metrology.reading import Reading
from storage.batch import StoreBatch
from storage.rows import reading_rows, snapshot_row
from storage.sqlite_store import SqliteStore

T0 = 1_790_000_000.0
ROUND_S = 10.0
"""Every instrument reports once per round (one reading each per round and batch)."""
BENCH_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)

_NUMBER_KEYS = (
    "residual",
    "u_residual",
    "reference",
    "lower_limit",
    "upper_limit",
    "probability_of_conformity",
    "guard_band",
    "baseline_mean",
    "sigma",
    "ewma",
    "ewma_limit",
    "cusum_high",
    "cusum_low",
    "cusum_threshold",
    "shift_to_detect",
    "drift_rate",
    "drift_rate_u",
    "fit_points",
    "predicted_oot_at",
    "drift_since",
    "first_drift_at",
    "due_at",
)
"""About the numbers a stream processor attaches to a snapshot."""


def bench_fleet(instruments: int, seed: int = 7) -> Fleet:
    return load_fleet(generate_fleet_document(instruments, seed, BENCH_AS_OF))


def make_batches(
    fleet: Fleet, batches: int, size: int, residual_share: float, seed: int = 11
) -> list[StoreBatch]:
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
                    reference = None
                    numbers: tuple[float | None, ...] = (None,) * 7
                    if rng.random() < residual_share:
                        reference = value + rng.gauss(0.0, 0.01)
                        residual = corrected - reference
                        numbers = (
                            reference, residual, rng.uniform(0.001, 0.01), residual * 0.3,
                            rng.choice((0.0, rng.uniform(0.0, 0.05))), 0.0, rng.gauss(0.0, 1e-4),
                        )  # fmt: skip
                    reading = Reading(
                        spec.tenant, spec.site, spec.gateway, spec.instrument_id, ts, value,
                        spec.unit, r, reference, None if reference is None else 0.002,
                    )  # fmt: skip
                    assessment = Assessment(
                        spec.instrument_id, ts, r, corrected, certificates[i], *numbers, Status.OK
                    )
                    readings.append((reading, assessment))
        result.append(StoreBatch(readings=readings, snapshots=_snapshots(readings)))
    return result


def _snapshots(readings: list[tuple[Reading, Assessment]]) -> list[HealthSnapshot]:
    last = {r.instrument_id: r for r, _ in readings}
    numbers: dict[str, float | str | None] = {k: 0.1234567 * n for n, k in enumerate(_NUMBER_KEYS)}
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
    synchronous: str, fleet: Fleet, batches: list[StoreBatch], with_state: bool
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
                    batch = StoreBatch(readings=batch.readings)
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
