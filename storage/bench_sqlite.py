"""Write throughput of the embedded store: ``python -m storage.bench_sqlite``.

Writes batches of 10k readings (as the pipeline does: gateway by gateway, so timestamps
interleave) into a fresh file in a temporary folder and prints readings inserted per second,
commit included, with ``synchronous=FULL`` and ``NORMAL``; with and without the latest-state
upsert of every instrument touched. Also prints the CPU-time rate (the machine may be shared; the
wall-clock rate includes waiting for fsync) and the cost of building row tuples.
Figures only; nothing is asserted (DESIGN.md, "Testing").
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from metrology.assessment import Assessment, HealthSnapshot
from metrology.health import Status
from metrology.reading import Reading
from storage.batch import StoreBatch
from storage.rows import reading_rows, snapshot_row
from storage.sqlite_store import SqliteStore

T0 = 1_790_000_000.0
INSTRUMENTS_PER_GATEWAY = 100

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


def make_batch(index: int, size: int, instruments: int) -> StoreBatch:
    """``size`` readings of ``instruments`` instruments, one reading each per round, grouped by
    gateway (one gateway's readings of the batch, then the next): timestamps interleave."""
    rounds = max(size // instruments, 1)
    readings: list[tuple[Reading, Assessment]] = []
    for first in range(0, instruments, INSTRUMENTS_PER_GATEWAY):
        gateway = f"gw-{first // INSTRUMENTS_PER_GATEWAY:03d}"
        members = range(first, min(first + INSTRUMENTS_PER_GATEWAY, instruments))
        for r in range(index * rounds, (index + 1) * rounds):
            for i in members:
                instrument = f"acme-pa-TT-{i:05d}"
                ts = T0 + r * 10.0 + i * 1e-3
                value = 21.5 + (r * 7 + i) % 97 * 1e-3
                readings.append(
                    (
                        Reading("acme", "plant-a", gateway, instrument, ts, value, "degC", r),
                        Assessment(
                            instrument,
                            ts,
                            r,
                            value + 0.02,
                            "CAL-2026-0001",
                            21.5,
                            value - 21.48,
                            0.03,
                            0.001,
                            0.0,
                            0.0,
                            1e-4,
                            Status.OK,
                        ),
                    )
                )
    last = {r.instrument_id: r for r, _ in readings}
    numbers: dict[str, float | str | None] = {k: 0.1234567 * n for n, k in enumerate(_NUMBER_KEYS)}
    numbers["decision_rule"] = "simple acceptance"
    snapshots = [
        HealthSnapshot(
            i,
            "acme",
            "plant-a",
            Status.OK,
            (Status.OK,),
            ("in tolerance, no drift signal",),
            r.ts,
            r.ts,
            numbers,
        )
        for i, r in last.items()
    ]
    return StoreBatch(readings=readings, snapshots=snapshots)


def bench_write(
    synchronous: str, batches: list[StoreBatch], with_state: bool
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU-time rates (readings inserted per second) of every batch."""
    wall, cpu = [], []
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "bench.sqlite", synchronous=synchronous)
        try:
            for batch in batches:
                if not with_state:
                    batch = StoreBatch(readings=batch.readings)
                started, started_cpu = time.perf_counter(), time.process_time()
                result = store.write(batch)
                wall.append(result.readings_inserted / (time.perf_counter() - started))
                cpu.append(result.readings_inserted / (time.process_time() - started_cpu))
        finally:
            store.close()
    return wall, cpu


def best_rate(build: Callable[[], object], items: int, repeat: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        build()
        best = min(best, time.perf_counter() - started)
    return items / best


def main() -> None:
    parser = argparse.ArgumentParser(description="Write throughput of the embedded SQLite store.")
    parser.add_argument("--batch", type=int, default=10_000, help="readings per batch")
    parser.add_argument("--batches", type=int, default=40, help="batches per run")
    parser.add_argument("--instruments", type=int, default=2_000)
    args = parser.parse_args()
    batches = [make_batch(i, args.batch, args.instruments) for i in range(args.batches)]
    gc.freeze()  # the batches are long-lived here; the pipeline holds one at a time
    first = batches[0]
    print(
        f"{args.batches} batches x {len(first.readings):,} readings, {args.instruments:,} "
        f"instruments ({len(first.snapshots):,} latest-state rows per batch)"
    )

    def by_attributes() -> list[tuple[object, ...]]:
        return [
            (r.tenant, r.site, r.gateway, r.instrument_id, r.ts, r.value, r.unit, r.seq,
             a.corrected, a.certificate_id, a.reference, a.residual, a.u_residual, a.ewma,
             a.cusum_high, a.cusum_low, a.drift_rate, a.status)
            for r, a in first.readings
        ]  # fmt: skip

    sliced = best_rate(lambda: reading_rows(first.readings), len(first.readings))
    attributes = best_rate(by_attributes, len(first.readings))
    states = best_rate(lambda: [snapshot_row(s) for s in first.snapshots], len(first.snapshots))
    print(f"reading rows: slice+concat {sliced:,.0f}/s, by attribute {attributes:,.0f}/s")
    print(f"latest-state rows (JSON included): {states:,.0f}/s")
    for synchronous in ("FULL", "NORMAL"):
        for with_state in (False, True):
            wall, cpu = bench_write(synchronous, batches, with_state)
            label = "readings + latest state" if with_state else "readings only"
            print(
                f"synchronous={synchronous:<6} {label:<24} median {statistics.median(wall):>9,.0f}"
                f" readings/s (min {min(wall):>9,.0f}); CPU-time rate "
                f"{statistics.median(cpu):>9,.0f}/s"
            )


if __name__ == "__main__":
    main()
