"""Print how fast the simulator generates and encodes readings (a command, never a test).

python -m calstream.evaluation.simulator_bench [--days 365] [--seed 7]
    [--fleet calstream/data/fleet.yaml]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import yaml

from edge_sim.simulator import FleetSimulator
from metrology.fleet import load_fleet
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import encode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m calstream.evaluation.simulator_bench")
    parser.add_argument("--fleet", default="calstream/data/fleet.yaml")
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    fleet = load_fleet(yaml.safe_load(Path(args.fleet).read_text(encoding="utf-8")))
    end = fleet.as_of if fleet.as_of is not None else time.time()
    began = time.perf_counter()
    simulator = FleetSimulator(fleet, args.seed, end - args.days * SECONDS_PER_DAY, end)
    built = time.perf_counter()
    sample = []
    batches = 0
    for batch in simulator:  # kept readings would cost garbage-collector time: keep 1 in 10
        if batches % 10 == 0:
            sample.append(batch)
        batches += 1
    generated = time.perf_counter()
    readings = simulator.readings_generated
    sampled = sum(len(b.readings) for b in sample)
    t0 = time.perf_counter()
    for batch in sample:
        encode(*batch)
    t1 = time.perf_counter()
    for batch in sample:
        encode(*batch)
    t2 = time.perf_counter()
    truth = simulator.truth
    drifting = truth.drifting()
    print(f"instruments          {len(fleet.instruments)}")
    print(f"window               {args.days:g} days, seed {args.seed}")
    print(f"scenario built in    {built - began:.3f} s")
    print(f"readings             {readings:,} in {batches:,} batches")
    print(f"generated            {readings / (generated - built):,.0f} readings/s")
    print(f"encoded (edge_sim)   {sampled / (t1 - t0):,.0f} readings/s")
    print(f"encoded (wire)       {sampled / (t2 - t1):,.0f} readings/s")
    mix = Counter(t.behaviour.value for t in truth.instruments.values())
    print(f"behaviours           {dict(mix)}")
    crossing = sum(t.true_oot_at is not None for t in drifting)
    print(f"drifting             {len(drifting)}, leaving tolerance in the window: {crossing}")


if __name__ == "__main__":
    main()
