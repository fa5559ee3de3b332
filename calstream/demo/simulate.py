"""`calstream simulate`: simulated edge gateways publishing a fleet to a broker, like real ones.

The fleet's gateways replay ``history_days`` of simulated history ending now, ``speedup`` times
faster than the wall clock, then follow the wall clock: readings are never stamped in the
future (the pipeline refuses readings more than ``max_future_s`` ahead of its clock). Publishing
is QoS 1 under a fixed client id; with a spool file, messages the broker cannot take (it is
down or unreachable) are kept on disk and published in order once it is back
(:mod:`edge_sim.spool`), so a broker outage delays readings instead of losing them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from calstream.settings import Settings, broker_address
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator
from edge_sim.spool import Spool
from ingest.importers.fleet_file import read_fleet
from metrology.timebase import SECONDS_PER_DAY

log = logging.getLogger(__name__)

HORIZON_DAYS = 3650.0
"""How far past the start the simulated window reaches (the command runs until stopped)."""
CLIENT_ID = "calstream-simulated-gateways"


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    seed: int = 1
    history_days: float = 30.0
    speedup: float = 720.0
    """Simulated seconds per wall-clock second while catching up (720: an hour every 5 s)."""
    duration_s: float | None = None
    """Stop after this many wall-clock seconds (None: until ``stop`` is set)."""
    spool: Path | None = None
    client_id: str = CLIENT_ID


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    published_readings: int
    acknowledged_readings: int
    simulated_until: float


def simulate(
    settings: Settings, options: SimulationOptions, stop: threading.Event | None = None
) -> SimulationSummary:
    """Publish the fleet's simulated readings to ``settings.broker`` until stopped."""
    stop = stop or threading.Event()
    host, port = broker_address(settings.broker or "mqtt://localhost:1883")
    fleet = read_fleet(settings.fleet_path)
    started_wall = time.time()
    start = started_wall - options.history_days * SECONDS_PER_DAY
    simulator = FleetSimulator(fleet, options.seed, start, start + HORIZON_DAYS * SECONDS_PER_DAY)
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    publisher = GatewayPublisher(
        client_id=options.client_id,
        username=settings.mqtt_username,
        password=password,
        spool=None if options.spool is None else Spool(options.spool),
    )
    publisher.connect(host, port)
    log.info("publishing %d instruments to %s:%d", len(fleet.instruments), host, port)
    published = 0
    target = start
    try:
        while not stop.is_set():
            now = time.time()
            if options.duration_s is not None and now - started_wall >= options.duration_s:
                break
            target = min(start + (now - started_wall) * options.speedup, now)
            for tenant, site, gateway, readings in simulator.batches_until(target):
                publisher.publish_batch(tenant, site, gateway, readings)
                published += len(readings)
                if stop.is_set():
                    break
            stop.wait(1.0)
    finally:
        publisher.flush(timeout=30.0)
        publisher.close()
    log.info("stopped: %d readings acknowledged by the broker", publisher.readings_acked)
    return SimulationSummary(published, publisher.readings_acked, target)
