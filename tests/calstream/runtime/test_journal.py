"""The pipeline's journal: its format, its bounds, and the store outages it bridges.

Outages are real: another process holds the SQLite store's write lock (as a backup tool or a
stuck writer would) while readings flow through a real mosquitto. Counts are exact.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_process import Run, stored, wait_for

from calstream.runtime.journal import (
    JOURNAL_FILE,
    Journal,
    JournalError,
    JournalFull,
    decode_batch,
    encode_batch,
)
from calstream.servers.mosquitto import LocalMosquitto
from calstream.settings import Settings
from calstream.wiring import pipeline_for, subscriber_for
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator, GatewayBatch
from ingest.subscriber import InboundMessage
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import encode, readings_topic
from storage.sqlite_store import SqliteStore

# --- helpers -----------------------------------------------------------------------------------

_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class StoreLock:
    """Another process holding the SQLite write lock until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == b"locked\n"

    def release(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write(b"\n")
            self.process.stdin.flush()
            assert self.process.wait(10) == 0


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def journal_rows(folder: Path) -> int:
    path = folder / JOURNAL_FILE
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def simulated(fleet: Fleet, days: float, seed: int) -> list[GatewayBatch]:
    end = fleet.as_of or 0.0
    return list(FleetSimulator(fleet, seed=seed, start=end - days * SECONDS_PER_DAY, end=end))


def processed_batch(fleet: Fleet, tmp_path: Path) -> OutputBatch:
    """A real pipeline batch: readings with assessments, snapshots, changes and a dead letter."""
    end = fleet.as_of or 0.0
    store = SqliteStore(tmp_path / "format.sqlite")
    store.register_fleet(fleet)
    pipeline = pipeline_for(fleet, Settings(), store, None, clock=lambda: end)  # type: ignore[arg-type]
    messages = [
        InboundMessage(i, 1, readings_topic(t, s, g), encode(t, s, g, r), end, 1)
        for i, (t, s, g, r) in enumerate(simulated(fleet, 4, seed=2))
    ]
    messages.append(InboundMessage(0, 1, readings_topic("acme", "x", "y"), b"{nope", end, 1))
    batch = pipeline.process(messages)
    store.close()
    return batch


# --- the format and the file --------------------------------------------------------------------


def test_a_batch_survives_the_journal_format_unchanged(
    example_fleet: Fleet, tmp_path: Path
) -> None:
    batch = processed_batch(example_fleet, tmp_path)
    assert batch.readings and batch.snapshots and batch.changes and batch.dead_letters
    body = encode_batch(batch)
    assert body.startswith(b'{"v":1,')
    again = decode_batch(body)
    assert again.readings == batch.readings
    assert again.snapshots == batch.snapshots
    assert again.changes == batch.changes
    assert again.dead_letters == batch.dead_letters
    assert encode_batch(again) == body


def test_entries_come_back_in_order_and_the_depth_is_exact(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", max_bytes=10_000)
    bodies = [encode_batch(OutputBatch()) for _ in range(3)]
    for index, body in enumerate(bodies):
        journal.append(body, readings=index + 1, received_at=float(index))
    assert journal.depth.batches == 3
    assert journal.depth.readings == 6
    assert journal.depth.bytes == sum(len(b) for b in bodies)
    journal.close()

    reopened = Journal(tmp_path / "j", max_bytes=10_000)  # the depth is read back from disk
    assert reopened.depth.batches == 3 and reopened.depth.readings == 6
    seen = []
    while (entry := reopened.oldest()) is not None:
        seen.append(entry.received_at)
        reopened.remove(entry)
    assert seen == [0.0, 1.0, 2.0]
    assert reopened.depth.batches == reopened.depth.readings == reopened.depth.bytes == 0
    reopened.close()


def test_a_full_journal_refuses_and_keeps_what_it_has(tmp_path: Path) -> None:
    body = encode_batch(OutputBatch())
    journal = Journal(tmp_path / "j", max_bytes=2 * len(body))
    journal.append(body, 1, 0.0)
    journal.append(body, 1, 0.0)
    assert not journal.fits(len(body))
    with pytest.raises(JournalFull, match="would exceed"):
        journal.append(body, 1, 0.0)
    assert journal.depth.batches == 2
    journal.close()


def test_an_unknown_format_is_refused_and_left_untouched(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", max_bytes=10_000)
    journal.append(encode_batch(OutputBatch()), 0, 0.0)
    journal.close()
    with sqlite3.connect(tmp_path / "j" / JOURNAL_FILE) as conn:
        conn.execute("UPDATE entries SET format = 2")
    with pytest.raises(JournalError, match="format 2"):
        Journal(tmp_path / "j", max_bytes=10_000)
    with sqlite3.connect(tmp_path / "j" / JOURNAL_FILE) as conn:
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 1
    with pytest.raises(JournalError, match="format 7"):
        decode_batch(b'{"v":7}')
    with pytest.raises(JournalError, match="not a valid format-1 batch"):
        decode_batch(b'{"v":1,"readings":[[1]]}')
    with pytest.raises(JournalError, match="not JSON"):
        decode_batch(b"{nope")


_JOURNAL_BEFORE_THE_LOCAL_QUEUE = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    format INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    received_at REAL NOT NULL,
    body BLOB NOT NULL
)
"""


def journal_written_the_old_way(folder: Path, rows: list[tuple[int, int, float, bytes]]) -> Path:
    """A journal file as the journal wrote it before it was a local queue: its own table, WAL."""
    folder.mkdir(parents=True)
    path = folder / JOURNAL_FILE
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(_JOURNAL_BEFORE_THE_LOCAL_QUEUE)
    conn.executemany(
        "INSERT INTO entries (format, readings, received_at, body) VALUES (?, ?, ?, ?)", rows
    )
    conn.execute("DELETE FROM entries WHERE id = 1")  # replayed before the journal was closed
    conn.close()
    return path


def test_a_journal_written_before_the_local_queue_opens_and_replays_in_order(
    example_fleet: Fleet, tmp_path: Path
) -> None:
    batch = processed_batch(example_fleet, tmp_path)
    empty = encode_batch(OutputBatch())
    full = encode_batch(batch)
    journal_written_the_old_way(
        tmp_path / "j",
        [(1, 9, 5.0, empty), (1, len(batch.readings), 10.0, full), (1, 0, 20.0, empty)],
    )
    journal = Journal(tmp_path / "j", max_bytes=10_000_000)
    assert journal.depth.batches == 2
    assert journal.depth.readings == len(batch.readings)
    assert journal.depth.bytes == len(full) + len(empty)
    first = journal.oldest()
    assert first is not None
    assert (first.id, first.received_at, first.readings, first.size) == (
        2, 10.0, len(batch.readings), len(full),
    )  # fmt: skip
    assert first.batch.readings == batch.readings
    assert first.batch.snapshots == batch.snapshots
    assert first.batch.changes == batch.changes
    assert first.batch.dead_letters == batch.dead_letters
    journal.remove(first)
    journal.append(empty, 0, 30.0)  # new batches go behind what the old journal held
    journal.close()

    reopened = Journal(tmp_path / "j", max_bytes=10_000_000)
    seen = []
    while (entry := reopened.oldest()) is not None:
        seen.append((entry.id, entry.received_at))
        reopened.remove(entry)
    assert seen == [(3, 20.0), (4, 30.0)]
    assert reopened.depth.batches == reopened.depth.readings == reopened.depth.bytes == 0
    reopened.close()


def test_a_journal_written_before_the_local_queue_with_an_unknown_format_is_left_untouched(
    tmp_path: Path,
) -> None:
    body = encode_batch(OutputBatch())
    path = journal_written_the_old_way(
        tmp_path / "j", [(1, 0, 0.0, body), (1, 1, 1.0, body), (2, 1, 2.0, body)]
    )
    before = path.read_bytes()
    with pytest.raises(JournalError, match="format 2"):
        Journal(tmp_path / "j", max_bytes=10_000)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*), min(readings) FROM entries").fetchone() == (2, 1)


# --- a store outage through a real broker ------------------------------------------------------


class PeakMemory:
    """Samples the process's resident memory every 10 ms; :meth:`since` restarts the peak."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def since(self) -> int:
        """The peak so far; the peak starts again from now."""
        peak, self.peak = self.peak, rss_bytes()
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_a_store_locked_beyond_the_retry_budget_spills_to_the_journal_and_loses_nothing(
    mosquitto: LocalMosquitto, example_fleet: Fleet, tmp_path: Path
) -> None:
    """The store is locked by another process for about 8 s while readings keep coming.

    Batches go to the journal and are acknowledged (the broker is not asked to hold them);
    after the lock is released the journal is replayed: every reading stored exactly once and
    the journal empty. Memory stays bounded: the bounded queues never exceed their bounds, and
    journalling a second, equal share of the outage's readings grows the process's resident
    memory by less than those readings' encoded size (what is journalled is not in memory).
    """
    fleet = example_fleet
    end = fleet.as_of or 0.0
    batches = simulated(fleet, 20, seed=6)
    total = sum(len(b.readings) for b in batches)
    path = tmp_path / "store.sqlite"
    store = SqliteStore(path, busy_timeout_ms=100)
    store.register_fleet(fleet)
    journal = Journal(tmp_path / "journal", max_bytes=1 << 30)
    subscriber = subscriber_for(Settings(), mosquitto.host, mosquitto.port, "journal-outage")
    pipeline = pipeline_for(
        fleet, Settings(), store, subscriber, clock=lambda: end, journal=journal,
        max_messages_per_batch=100,
    )  # fmt: skip
    pipeline.start(write_behind=True)
    publisher = GatewayPublisher(client_id="gateways-journal-outage")
    publisher.connect(mosquitto.host, mosquitto.port)
    bounded = {"write queue": 0, "subscriber queue": 0}

    def publish(part: list[GatewayBatch]) -> None:
        for batch in part:
            publisher.publish_batch(*batch)
            bounded["write queue"] = max(bounded["write queue"], pipeline.write_backlog)
            bounded["subscriber queue"] = max(bounded["subscriber queue"], subscriber.backlog)
        assert publisher.flush(60)
        # Taken and acknowledged although the store is locked: journalled.
        assert wait_for(lambda: subscriber.messages_acked == publisher.messages_acked, 30)

    tenth = len(batches) // 10
    publish(batches[:tenth])
    assert wait_for(lambda: store.reading_count() == publisher.readings_acked)
    warm = publisher.readings_acked

    lock = StoreLock(path)
    outage_started = time.monotonic()
    memory = PeakMemory()
    half = tenth + (len(batches) - tenth) // 2
    publish(batches[tenth:half])
    first_share = journal.depth
    peak_after_first = memory.since()
    publish(batches[half:])
    second_share = journal.depth
    peak_after_second = memory.since()
    memory.stop()
    assert store.reading_count() == warm  # nothing reached the store during the outage
    assert first_share.batches > 0
    assert second_share.readings == total - warm  # every reading since the lock is journalled
    time.sleep(max(0.0, 8.0 - (time.monotonic() - outage_started)))
    lock.release()

    assert wait_for(lambda: store.reading_count() == total and journal.empty, 60), (
        store.reading_count(),
        total,
        journal.depth,
    )
    pipeline.stop()
    publisher.close()
    subscriber.stop()
    assert pipeline.error is None
    assert publisher.readings_acked == total
    assert store.reading_count() == total
    assert pipeline.counters.stored == total
    assert pipeline.counters.duplicates_in_store == 0
    assert pipeline.counters.journaled == total - warm
    assert journal.depth.batches == journal.depth.readings == journal.depth.bytes == 0
    assert bounded["write queue"] <= 2
    assert bounded["subscriber queue"] <= 2_000
    added = second_share.bytes - first_share.bytes
    assert added > 8_000_000
    # Kept in memory, those readings would take several times their encoded size (a Reading and
    # its Assessment are about 1 kB as Python objects, 240 bytes in the journal).
    assert peak_after_second - peak_after_first < added, (
        peak_after_first,
        peak_after_second,
        added,
    )
    journal.close()
    store.close()


def test_a_full_journal_falls_back_to_back_pressure_and_says_so(
    mosquitto: LocalMosquitto,
    example_fleet: Fleet,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A journal of 400 kB fills up during the outage: the pipeline stops acknowledging (the
    broker keeps the rest), says so in the log and in /metrics, and loses nothing."""
    from prometheus_client import generate_latest

    fleet = example_fleet
    end = fleet.as_of or 0.0
    batches = simulated(fleet, 6, seed=7)
    total = sum(len(b.readings) for b in batches)
    path = tmp_path / "store.sqlite"
    store = SqliteStore(path, busy_timeout_ms=100)
    store.register_fleet(fleet)
    journal = Journal(tmp_path / "journal", max_bytes=400_000)
    subscriber = subscriber_for(Settings(), mosquitto.host, mosquitto.port, "journal-full")
    pipeline = pipeline_for(
        fleet, Settings(), store, subscriber, clock=lambda: end, journal=journal,
        max_messages_per_batch=10,
    )  # fmt: skip
    pipeline.start(write_behind=True)
    publisher = GatewayPublisher(client_id="gateways-journal-full")
    publisher.connect(mosquitto.host, mosquitto.port)

    lock = StoreLock(path)
    publisher.publish_all(batches)
    assert publisher.flush(30)
    assert wait_for(lambda: pipeline.journal_is_full, 30)
    metrics = generate_latest(pipeline.metrics.registry).decode()
    assert "calstream_journal_full 1.0" in metrics
    assert "journal full" in caplog.text and "not acknowledging" in caplog.text
    assert 0 < journal.depth.bytes <= 400_000
    assert subscriber.messages_acked < len(batches)  # the broker keeps the rest
    assert store.reading_count() == 0
    lock.release()

    assert wait_for(lambda: store.reading_count() == total and journal.empty, 60), (
        store.reading_count(),
        total,
    )
    assert wait_for(lambda: not pipeline.journal_is_full, 10)
    pipeline.stop()
    publisher.close()
    subscriber.stop()
    assert pipeline.error is None
    assert store.reading_count() == pipeline.counters.stored == total
    assert pipeline.counters.journal_full >= 1
    metrics = generate_latest(pipeline.metrics.registry).decode()
    assert "calstream_journal_full 0.0" in metrics
    assert "calstream_journal_bytes 0.0" in metrics
    assert "calstream_journal_full_episodes_total" in metrics
    journal.close()
    store.close()


# --- kill -9 while the journal holds batches ----------------------------------------------------


@pytest.fixture
def run(mosquitto: LocalMosquitto, tmp_path: Path) -> Iterator[Run]:
    service = Run(mosquitto, tmp_path, "calstream-journal-kill")
    yield service
    if service.process is not None and service.process.poll() is None:
        service.process.kill()
        service.process.wait(10)


def test_kill_9_while_the_journal_holds_batches_then_restart_stores_all_exactly_once(
    mosquitto: LocalMosquitto, run: Run, example_fleet: Fleet
) -> None:
    batches = simulated(example_fleet, 10, seed=8)
    total = sum(len(b.readings) for b in batches)
    run.start()
    publisher = GatewayPublisher(client_id="gateways-journal-kill")
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.publish_all(batches[:5])
    assert publisher.flush(30)
    assert wait_for(lambda: stored(run.db) == publisher.readings_acked, 30)

    lock = StoreLock(run.db)
    try:
        publisher.publish_all(batches[5:])
        assert publisher.flush(60)
        # The store's busy timeout (10 s) runs out, the batch goes to the journal, and the
        # batches after it follow it there.
        assert wait_for(lambda: journal_rows(run.journal) >= 2, 20), run.log.read_text()
        assert run.signal(signal.SIGKILL) == -signal.SIGKILL
        in_journal = journal_rows(run.journal)
        assert in_journal >= 2
    finally:
        lock.release()
    assert stored(run.db) < total, "nothing was left to recover: publish more"

    run.start()  # the journal goes to the store first, then what the broker kept
    assert wait_for(lambda: stored(run.db) == total, 60), (stored(run.db), total)
    assert wait_for(lambda: journal_rows(run.journal) == 0, 10)
    time.sleep(1.0)  # nothing more arrives: no duplicate
    assert stored(run.db) == total
    assert run.signal(signal.SIGTERM) == 0
    log = run.log.read_text()
    assert "replaying first" in log
    assert "journal 0 batches / 0 readings / 0 bytes" in log
    publisher.close()
