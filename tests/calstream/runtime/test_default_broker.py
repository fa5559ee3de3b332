"""`calstream run` without CALSTREAM_BROKER: the broker it starts keeps the no-loss promises.

The pipeline runs as a real process on the default path: it starts Debian's mosquitto as a
process of its own in the work folder (docs/operations.md, "The broker of `calstream run`").

The store is made slow for real: another connection holds the SQLite store's write lock while
readings flow, so deliveries stay unacknowledged for longer than the 5 s amqtt waits for a
PUBACK. The journal is off in those tests (``CALSTREAM_JOURNAL_MAX_BYTES=0``): a journalled
batch is acknowledged, and what is proven here is what the *broker* keeps for a pipeline that
has not acknowledged.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_process import Run, stored, wait_for

from calstream.servers.base import free_port
from calstream.servers.mosquitto import MosquittoDaemon
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator, GatewayBatch
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY

STATUS = re.compile(r"received (\d+), stored (\d+), .*backlog (\d+) messages")
HELD_BEYOND_AMQTT_WAIT_S = 6.0
"""How long the store stays locked once the pipeline holds readings: longer than the 5 s amqtt
waits for an acknowledgement."""
NO_JOURNAL = {"CALSTREAM_JOURNAL_MAX_BYTES": "0"}


def simulated(fleet: Fleet, days: float, seed: int) -> list[GatewayBatch]:
    end = fleet.as_of or 0.0
    return list(FleetSimulator(fleet, seed=seed, start=end - days * SECONDS_PER_DAY, end=end))


def running(pid: int) -> bool:
    """Whether a process runs under ``pid`` (a zombie has no command line)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def statuses(run: Run) -> list[tuple[int, int, int]]:
    """(received, stored, backlog) of every status line the pipeline logged (one a second)."""
    return [tuple(map(int, found)) for found in STATUS.findall(run.log.read_text())]  # type: ignore[misc]


class StoreLock:
    """Another connection holding the SQLite store's write lock: every write of the pipeline
    waits for it (and is retried) until :meth:`release`."""

    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()


class DefaultRun(Run):
    """`calstream run` without CALSTREAM_BROKER, its broker on a free port of 127.0.0.1."""

    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        super().__init__(
            None, folder, env={"CALSTREAM_EMBEDDED_BROKER_PORT": str(self.port), **(env or {})}
        )
        self.broker = MosquittoDaemon(folder / "mosquitto", self.port)

    def publisher(self, client_id: str) -> GatewayPublisher:
        gateways = GatewayPublisher(client_id=client_id)
        gateways.connect("127.0.0.1", self.port)
        return gateways

    def end(self) -> None:
        """Whatever a test left running: the pipeline, and the broker it started."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.broker.kill()


@pytest.fixture
def default_run(tmp_path: Path) -> Iterator[DefaultRun]:
    run = DefaultRun(tmp_path)
    yield run
    run.end()


def publish_into_a_locked_store(
    run: DefaultRun, batches: list[GatewayBatch]
) -> tuple[int, StoreLock]:
    """Publish ``batches`` while another connection holds the store's write lock, and keep the
    lock until the pipeline has held readings, unstored and so unacknowledged, for longer than
    5 s. Returns the readings the broker took, and the lock (still held)."""
    lock = StoreLock(run.db)
    with run.publisher("gateways-slow-store") as gateways:
        gateways.publish_all(batches)
        assert gateways.flush(30)
        total = gateways.readings_acked
    assert total == sum(len(b.readings) for b in batches)
    # The pipeline has taken messages from the broker (processed or waiting in its queue)...
    assert wait_for(lambda: any(r + b > 0 for r, _, b in statuses(run)), 30), run.log.read_text()
    time.sleep(HELD_BEYOND_AMQTT_WAIT_S)  # ...and holds them longer than amqtt waits for a PUBACK
    assert stored(run.db) == 0
    assert statuses(run)[-1][1] == 0
    return total, lock


def test_a_store_slower_than_5_s_loses_nothing_on_the_default_broker(
    tmp_path: Path, example_fleet: Fleet
) -> None:
    run = DefaultRun(tmp_path, env=NO_JOURNAL)
    try:
        run.start()
        total, lock = publish_into_a_locked_store(run, simulated(example_fleet, 3, seed=21))
        lock.release()
        assert wait_for(lambda: stored(run.db) == total, 60), (stored(run.db), total)
        time.sleep(1.0)  # nothing more arrives: no duplicate
        assert stored(run.db) == total
        assert run.signal(signal.SIGTERM) == 0
        assert "started mosquitto" in run.log.read_text()
        assert run.broker.running_pid() is None, "a clean stop ends the broker it started"
    finally:
        run.end()


@pytest.mark.parametrize("embedded_broker", ["mosquitto", "amqtt"])
def test_kill_9_while_the_store_is_slow(
    tmp_path: Path, example_fleet: Fleet, embedded_broker: str
) -> None:
    """The pipeline killed while it holds readings it could not store for more than 5 s: the
    default broker re-delivers them to the next run; amqtt, gone with the process, cannot."""
    run = DefaultRun(tmp_path, env={"CALSTREAM_EMBEDDED_BROKER": embedded_broker, **NO_JOURNAL})
    try:
        run.start()
        total, lock = publish_into_a_locked_store(run, simulated(example_fleet, 3, seed=23))
        assert run.signal(signal.SIGKILL) == -signal.SIGKILL
        lock.release()
        logged = len(statuses(run))
        run.start()
        if embedded_broker == "mosquitto":
            assert wait_for(lambda: stored(run.db) == total, 60), (stored(run.db), total)
            time.sleep(1.0)
            assert stored(run.db) == total
        else:
            # Three status lines of the new run (one a second): it has settled.
            assert wait_for(lambda: len(statuses(run)) >= logged + 3, 30)
            assert stored(run.db) == 0 < total
            log = run.log.read_text()
            assert "amqtt runs inside this process" in log
            assert "within 5 s" in log
            assert not run.broker.folder.exists()
        assert run.signal(signal.SIGTERM) == 0
    finally:
        run.end()


def test_kill_9_of_the_pipeline_leaves_the_broker_and_the_next_run_stores_everything(
    default_run: DefaultRun, example_fleet: Fleet
) -> None:
    batches = simulated(example_fleet, 20, seed=22)
    half = len(batches) // 2
    default_run.start()
    broker_pid = default_run.broker.running_pid()
    assert broker_pid is not None
    gateways = default_run.publisher("gateways-kill-9")
    gateways.publish_all(batches[:half])
    assert gateways.flush(30)
    assert wait_for(lambda: stored(default_run.db) == gateways.readings_acked, 60)

    assert default_run.signal(signal.SIGKILL) == -signal.SIGKILL
    assert default_run.broker.running_pid() == broker_pid, "the broker died with the pipeline"
    # The pipeline is down; the gateways keep publishing to the same broker, which queues
    # their readings in the pipeline's durable session.
    before = gateways.readings_acked
    gateways.publish_all(batches[half:])
    assert gateways.flush(30)
    total = gateways.readings_acked
    assert total == sum(len(b.readings) for b in batches) > before
    assert gateways.connections == 1, "the gateways' connection never dropped"
    assert stored(default_run.db) == before

    default_run.start()
    assert default_run.broker.running_pid() == broker_pid
    assert f"reusing the mosquitto (pid {broker_pid})" in default_run.log.read_text()
    assert wait_for(lambda: stored(default_run.db) == total, 60), (stored(default_run.db), total)
    time.sleep(1.0)
    assert stored(default_run.db) == total
    assert default_run.signal(signal.SIGTERM) == 0
    assert default_run.broker.running_pid() is None
    gateways.close()


def test_a_broker_left_running_with_another_port_is_replaced_with_its_persistence(
    tmp_path: Path,
) -> None:
    """The pid file names a running broker of this folder; the configured port changed: the
    old broker is stopped (saving its queues) and a new one starts on the new port."""
    first = MosquittoDaemon(tmp_path / "mosquitto", free_port())
    second = MosquittoDaemon(tmp_path / "mosquitto", free_port())
    try:
        first.start()
        assert not first.reused
        old_pid = first.running_pid()
        assert old_pid is not None
        again = MosquittoDaemon(tmp_path / "mosquitto", first.port)
        again.start()
        assert again.reused and again.pid == old_pid
        second.start()
        assert not second.reused
        assert second.pid is not None and second.pid != old_pid
        assert not running(old_pid)
        assert (tmp_path / "mosquitto" / "mosquitto.db").is_file()  # saved on the way out
        with GatewayPublisher(client_id="probe") as probe:
            probe.connect("127.0.0.1", second.port)
            assert probe.connected
    finally:
        first.kill()
        second.kill()
