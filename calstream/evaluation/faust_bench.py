"""Per-reading cost of the Faust path beside the embedded runner, on the same input, in one run.

    python -m calstream.evaluation.faust_bench [--days 3] [--store memory://|rocksdb://]

Simulated days of the example fleet are admitted once; the admitted readings of every gateway
message then go (1) through :meth:`FleetProcessor.process`, as the embedded pipeline runs them,
and (2) through the Faust agent in Faust's test harness (``agent.test_context()``, no Kafka),
one record per key and message as ingest forwards them. Both are timed; the Faust run is then
repeated under cProfile and its own time is split into where it goes. No MQTT, Kafka or store
is involved: the figures are the processing engines' cost only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from calstream.settings import example_fleet_path
from edge_sim.simulator import FleetSimulator
from ingest.admission import Admission, AdmissionPolicy
from ingest.importers.fleet_file import read_fleet
from metrology.fleet import Fleet
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import DecodedMessage, readings_topic
from stream_processors.faust_app import make_app
from stream_processors.routing import encode_readings_record, keyed_records
from stream_processors.runner import FleetProcessor

CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("step (metrology + stream_processors step/keyed/peers)", (
        "/metrology/", "stream_processors/step.py", "stream_processors/keyed.py",
        "stream_processors/peers.py", "stream_processors/recommend.py",
        "stream_processors/dates.py", "stream_processors/describe.py",
        "stream_processors/conformity.py", "stream_processors/context.py",
    )),
    ("state codec (encode/decode state, readings records)", (
        "stream_processors/codec.py", "stream_processors/routing.py", "/typing.py",
        "/json/", "/enum.py",
    )),
    ("worker glue (faust_app: load, store, pending outputs)", ("stream_processors/faust_app.py",)),
    ("table store (faust tables, rocksdict)", ("/faust/tables/", "/faust/stores/", "rocksdict")),
    ("Faust stream, channel, agent and test harness", ("/faust/", "/mode/")),
    ("asyncio event loop", ("/asyncio/",)),
)  # fmt: skip


def category_of(filename: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in filename for n in needles):
            return name
    return "other (builtins, sinks, logging)"


def admitted_messages(fleet: Fleet, days: float, seed: int) -> list[list[Reading]]:
    end = fleet.as_of or time.time()
    simulator = FleetSimulator(fleet, seed=seed, start=end - days * SECONDS_PER_DAY, end=end)
    admission = Admission(fleet.instruments, AdmissionPolicy())
    messages = []
    for tenant, site, gateway, batch in simulator:
        message = DecodedMessage(readings_topic(tenant, site, gateway), batch, [])
        messages.append(admission.admit(message, batch[-1].ts)[0])
    return messages


def run_embedded(fleet: Fleet, messages: list[list[Reading]]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of the embedded runner over every message."""
    processor = FleetProcessor(fleet)
    started, cpu = time.perf_counter(), time.process_time()
    for readings in messages:
        processor.process(readings)
    return time.perf_counter() - started, time.process_time() - cpu


def run_faust(fleet: Fleet, messages: list[list[Reading]], store: str) -> tuple[float, float, int]:
    """Wall-clock and CPU seconds through the agent (records put, processed) and the records."""
    records = [
        (key, encode_readings_record(key, part))
        for readings in messages
        for key, part in keyed_records(readings, fleet.instruments)
    ]

    async def scenario() -> tuple[float, float]:
        with tempfile.TemporaryDirectory(prefix="calstream-bench-faust-") as folder:
            engine = make_app(fleet, store=store, data_dir=Path(folder))
            engine.app.loop = asyncio.get_running_loop()
            async with engine.process_readings.test_context() as agent:
                started, cpu = time.perf_counter(), time.process_time()
                for key, value in records:
                    await agent.put(value, key=key)
                await engine.flush()
                return time.perf_counter() - started, time.process_time() - cpu

    wall, cpu = asyncio.run(scenario())
    return wall, cpu, len(records)


def profile(run: Callable[[], object], readings: int) -> list[tuple[str, float]]:
    """Own time per category, in µs per reading, largest first."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    totals: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        totals[category_of(filename)] += own
    return sorted(((k, v / readings * 1e6) for k, v in totals.items()), key=lambda kv: -kv[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=3.0, help="simulated days (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", default="memory://", help="memory:// or rocksdb://")
    args = parser.parse_args(argv)

    fleet = read_fleet(example_fleet_path())
    messages = admitted_messages(fleet, args.days, args.seed)
    readings = sum(len(m) for m in messages)
    run_embedded(fleet, messages)  # warm caches (health table, unit conversions) for both
    embedded_s, embedded_cpu = min(run_embedded(fleet, messages) for _ in range(3))
    faust_s, faust_cpu, records = min(run_faust(fleet, messages, args.store) for _ in range(2))
    per = 1e6 / readings
    print(
        f"{args.days:g} simulated days of the example fleet ({len(fleet.instruments)} "
        f"instruments): {readings:,} readings in {len(messages):,} messages, "
        f"{records:,} Faust records ({readings / records:.2f} readings/record)"
    )
    print(f"{'':30}{'wall µs/reading':>16}{'CPU µs/reading':>16}")
    print(f"{'embedded FleetProcessor':30}{embedded_s * per:16.1f}{embedded_cpu * per:16.1f}")
    print(f"{'Faust agent, ' + args.store:30}{faust_s * per:16.1f}{faust_cpu * per:16.1f}")
    print(
        f"Faust / embedded: {faust_s / embedded_s:.1f}x wall, {faust_cpu / embedded_cpu:.1f}x CPU; "
        f"{faust_s / records * 1e6:.0f} µs wall per Faust record"
    )
    print("\nwhere the Faust path's time goes (cProfile, own time, µs/reading; profiled run):")
    breakdown = profile(lambda: run_faust(fleet, messages, args.store), readings)
    total = sum(us for _, us in breakdown)
    for name, us in breakdown:
        print(f"  {name:<58} {us:8.1f}  {us / total:5.1%}")
    print(f"  {'total (profiled: cProfile inflates every call)':<58} {total:8.1f}")


if __name__ == "__main__":
    main()
