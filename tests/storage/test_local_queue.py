"""The durable local queue: order, bound, durability across kill -9, threads, versions."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from storage.errors import LocalQueueError, LocalQueueFull, LocalQueueVersionError, StorageError
from storage.local_queue import LAYOUT_VERSION, LegacyTable, LocalQueue, QueuedEntry, QueueDepth

ROOT = Path(__file__).resolve().parents[2]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def contents(queue: LocalQueue) -> list[tuple[bytes, str, int, float]]:
    return [(e.body, e.key, e.items, e.at) for e in queue]


# --- order and depth ---------------------------------------------------------------------------


def test_entries_come_back_oldest_first_with_their_metadata_across_reopening(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q" / "queue.sqlite"  # the folder is created
    with LocalQueue(path, max_bytes=10_000) as queue:
        ids = [
            queue.append(b"body-%d" % i, key=f"k/{i}", items=i + 1, at=1_700_000_000.5 + i)
            for i in range(5)
        ]
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert queue.depth.entries == 5
        assert queue.depth.items == 15
        assert queue.depth.bytes == 5 * 6
        oldest = queue.oldest()
        assert oldest is not None
        assert oldest == QueuedEntry(ids[0], b"body-0", "k/0", 1, 1_700_000_000.5)
        assert oldest.size == 6
        assert [e.key for e in queue.after(ids[2], 10)] == ["k/3", "k/4"]
        assert [e.key for e in queue.after(0, 2)] == ["k/0", "k/1"]
        queue.remove(oldest)
        queue.remove(ids[3])  # by id, out of order
        queue.remove(ids[3])  # a second time: nothing more is removed
    with LocalQueue(path, max_bytes=10_000) as again:  # the depth is read back from disk
        assert again.depth.entries == 3
        assert again.depth.items == 2 + 3 + 5
        assert again.depth.bytes == 3 * 6
        assert [e.key for e in again] == ["k/1", "k/2", "k/4"]
        # An id is never handed out twice, even once the newest entry was removed.
        again.remove(ids[4])
        assert again.append(b"next", key="k/5") > ids[4]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (LAYOUT_VERSION,)


def test_iteration_reads_past_one_page_in_order(tmp_path: Path) -> None:
    with LocalQueue(tmp_path / "queue.sqlite", max_bytes=1 << 20) as queue:
        for i in range(150):  # more than one page of 64
            queue.append(b"%d" % i, items=1)
        assert [int(e.body) for e in queue] == list(range(150))


def test_a_drained_queue_gives_its_space_back(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    with LocalQueue(path, max_bytes=1 << 24) as queue:
        for _ in range(40):
            queue.append(os.urandom(100_000), items=1)
        full_size = path.stat().st_size + (tmp_path / "queue.sqlite-wal").stat().st_size
        assert full_size > 4_000_000
        queue.remove(*list(queue))
        assert queue.empty and queue.depth == QueueDepth(0, 0, 0)
        drained_size = path.stat().st_size + (tmp_path / "queue.sqlite-wal").stat().st_size
        assert drained_size < 100_000


# --- the bound ---------------------------------------------------------------------------------


def test_the_bound_counts_body_bytes_exactly_and_refuses_without_dropping(tmp_path: Path) -> None:
    with LocalQueue(tmp_path / "queue.sqlite", max_bytes=100, name="spool") as queue:
        queue.append(b"a" * 60, key="first", items=1)
        assert queue.fits(40) and not queue.fits(41)
        with pytest.raises(LocalQueueFull, match=r"spool .* holds 60 bytes in 1 entries; "
                           r"second of 41 bytes would exceed its 100 bytes"):  # fmt: skip
            queue.append(b"b" * 41, key="second", items=1)
        queue.append(b"b" * 40, key="second", items=1)  # exactly at the bound: taken
        assert queue.depth.bytes == 100
        with pytest.raises(LocalQueueFull):
            queue.append(b"c")
        queue.append(b"", key="empty")  # nothing to count: an empty body still fits
        assert [e.key for e in queue] == ["first", "second", "empty"]  # nothing dropped
        assert queue.depth == QueueDepth(3, 2, 100)
        oldest = queue.oldest()
        assert oldest is not None
        queue.remove(oldest)
        assert queue.fits(60) and not queue.fits(61)
        queue.append(b"c" * 60, key="third")
        assert [e.key for e in queue] == ["second", "empty", "third"]
    with sqlite3.connect(tmp_path / "queue.sqlite") as conn:
        assert conn.execute("SELECT count(*), sum(length(body)) FROM entries").fetchone() == (
            3,
            100,
        )


def test_a_bound_that_is_not_positive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        LocalQueue(tmp_path / "queue.sqlite", max_bytes=0)


def test_the_errors_are_storage_errors() -> None:
    assert issubclass(LocalQueueFull, LocalQueueError)
    assert issubclass(LocalQueueVersionError, LocalQueueError)
    assert issubclass(LocalQueueError, StorageError)


# --- durability across kill -9 -----------------------------------------------------------------

_CHILD = """
import sys, time
from storage.local_queue import LocalQueue

queue = LocalQueue(sys.argv[1], max_bytes=1 << 30)
if sys.argv[2] == "script":
    for i in range(10):
        queue.append(b"entry %d" % i, key=f"k/{i}", items=i, at=float(i))
    for entry in queue.after(0, 4):
        queue.remove(entry)  # the 4 oldest, delivered
    queue.append(b"entry 10", key="k/10", items=10, at=10.0)
    print("ready", flush=True)
    time.sleep(120)
else:
    i = 0
    while True:
        print(queue.append(b"entry %d" % i, key=f"k/{i}", items=1, at=float(i)), flush=True)
        i += 1
"""


def child(path: Path, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), mode],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )


def killed(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL


def test_what_was_appended_and_not_removed_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    process = child(path, "script")
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
    finally:
        killed(process)
    assert (tmp_path / "queue.sqlite-wal").exists()  # not checkpointed: recovered from the WAL
    with LocalQueue(path, max_bytes=1 << 30) as queue:
        assert [e.key for e in queue] == [f"k/{i}" for i in range(4, 11)]
        assert queue.depth.entries == 7
        assert queue.depth.items == sum(range(4, 11))
        assert queue.depth.bytes == 6 * len(b"entry 4") + len(b"entry 10")


def test_every_append_that_returned_before_kill_9_is_on_disk_in_order(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    process = child(path, "stream")
    assert process.stdout is not None
    try:  # killed while appending, at least 300 appends in
        acknowledged = [int(process.stdout.readline()) for _ in range(300)]
    finally:
        killed(process)
    # Each id printed once its append returned, up to the kill (complete lines only).
    acknowledged += [int(line) for line in process.stdout.read().split(b"\n")[:-1]]
    with LocalQueue(path, max_bytes=1 << 30) as queue:
        ids = [e.id for e in queue]
        bodies = [e.body for e in queue]
        depth = queue.depth
    # Every append that returned is there, in order; at most one more, whose return the kill
    # cut short (its commit may or may not have happened).
    assert ids[: len(acknowledged)] == acknowledged
    assert len(acknowledged) <= len(ids) <= len(acknowledged) + 1
    assert bodies == [b"entry %d" % i for i in range(len(ids))]
    assert depth == QueueDepth(len(ids), len(ids), sum(len(b) for b in bodies))


# --- threads -----------------------------------------------------------------------------------


def test_concurrent_appenders_and_a_consumer_lose_and_reorder_nothing(tmp_path: Path) -> None:
    threads, each = 6, 40
    queue = LocalQueue(tmp_path / "queue.sqlite", max_bytes=1 << 20)
    start = threading.Barrier(threads + 1)
    appended: dict[int, list[int]] = {t: [] for t in range(threads)}
    consumed: list[QueuedEntry] = []
    done = threading.Event()

    def append(t: int) -> None:
        start.wait()
        for i in range(each):
            appended[t].append(queue.append(b"%d:%d" % (t, i), key=f"t{t}", items=t + 1))

    def consume() -> None:
        start.wait()
        while not done.is_set() or not queue.empty:
            entry = queue.oldest()
            if entry is not None:
                queue.remove(entry)
                consumed.append(entry)

    workers = [threading.Thread(target=append, args=(t,)) for t in range(threads)]
    consumer = threading.Thread(target=consume)
    for worker in [*workers, consumer]:
        worker.start()
    for worker in workers:
        worker.join(60)
    done.set()
    consumer.join(60)
    assert not consumer.is_alive()

    assert [e.id for e in consumed] == sorted(e.id for e in consumed)  # oldest first
    assert len(consumed) == threads * each  # each entry consumed exactly once
    for t in range(threads):
        mine = [e for e in consumed if e.key == f"t{t}"]
        assert [e.id for e in mine] == appended[t]
        assert [e.body for e in mine] == [b"%d:%d" % (t, i) for i in range(each)]
    assert queue.depth == QueueDepth(0, 0, 0)
    queue.close()


def test_concurrent_appenders_together_never_exceed_the_bound(tmp_path: Path) -> None:
    threads, each, fitting = 6, 20, 50
    queue = LocalQueue(tmp_path / "queue.sqlite", max_bytes=fitting * 10)
    start = threading.Barrier(threads)
    taken = [0] * threads
    refused = [0] * threads

    def append(t: int) -> None:
        start.wait()
        for _ in range(each):
            try:
                queue.append(b"x" * 10, items=1)
            except LocalQueueFull:
                refused[t] += 1
            else:
                taken[t] += 1

    workers = [threading.Thread(target=append, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert sum(taken) == fitting
    assert sum(refused) == threads * each - fitting
    assert queue.depth.bytes == fitting * 10 == queue.max_bytes
    queue.close()
    with LocalQueue(tmp_path / "queue.sqlite", max_bytes=fitting * 10) as again:
        assert again.depth.entries == fitting


# --- versions ----------------------------------------------------------------------------------


def test_a_file_of_another_layout_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    with LocalQueue(path, max_bytes=1_000) as queue:
        queue.append(b"kept", items=1)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION + 1}")
    before = digest(path)
    with pytest.raises(LocalQueueVersionError, match=r"layout version 2 \(entries\); .*untouched"):
        LocalQueue(path, max_bytes=1_000)
    assert digest(path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT body FROM entries").fetchall() == [(b"kept",)]


def test_a_file_that_is_not_a_queue_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE readings (ts REAL, value REAL)")
        conn.execute("INSERT INTO readings VALUES (1.0, 2.0)")
    conn.close()
    before = digest(path)
    with pytest.raises(LocalQueueVersionError, match=r"layout version 0 \(readings\)"):
        LocalQueue(path, max_bytes=1_000)
    assert digest(path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # no WAL switched on


def test_entries_of_another_format_are_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    with LocalQueue(path, max_bytes=1_000, entry_format=1) as queue:
        queue.append(b"one")
        queue.append(b"two")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE entries SET format = 3 WHERE body = ?", (b"two",))
    conn.close()
    before = digest(path)
    with pytest.raises(LocalQueueVersionError, match=r"entries of format 3; .* format 1 only"):
        LocalQueue(path, max_bytes=1_000, entry_format=1)
    with pytest.raises(LocalQueueVersionError, match=r"entries of format 1; .* format 3 only"):
        LocalQueue(path, max_bytes=1_000, entry_format=3)
    assert digest(path) == before


_LEGACY = LegacyTable("jobs", "id, version, '', weight, queued_at, data")


def legacy_file(path: Path, rows: list[tuple[int, int, int, float, bytes]]) -> None:
    """An unversioned queue file as an owner wrote it before (its own table and columns)."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL, "
            "weight INTEGER NOT NULL, queued_at REAL NOT NULL, data BLOB NOT NULL)"
        )
        conn.executemany("INSERT INTO jobs VALUES (?, ?, ?, ?, ?)", rows)
    conn.close()


def test_an_unversioned_file_of_the_owner_is_upgraded_in_order(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    legacy_file(path, [(3, 1, 5, 30.0, b"three"), (7, 1, 2, 70.0, b"seven")])
    with LocalQueue(path, max_bytes=1_000, legacy=_LEGACY) as queue:
        assert queue.depth.entries == 2 and queue.depth.items == 7 and queue.depth.bytes == 10
        assert [(e.id, e.body, e.items, e.at) for e in queue] == [
            (3, b"three", 5, 30.0),
            (7, b"seven", 2, 70.0),
        ]
        assert queue.append(b"eight") > 7
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (LAYOUT_VERSION,)
        names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        assert {n for (n,) in names} == {"entries", "sqlite_sequence"}
    # Without the owner's legacy table named, the same kind of file is refused.
    other = tmp_path / "other.sqlite"
    legacy_file(other, [(1, 1, 1, 1.0, b"x")])
    with pytest.raises(LocalQueueVersionError, match=r"\(jobs\)"):
        LocalQueue(other, max_bytes=1_000)


def test_an_unversioned_file_with_unknown_entries_is_not_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    legacy_file(path, [(1, 1, 1, 1.0, b"one"), (2, 2, 1, 2.0, b"two")])
    before = digest(path)
    with pytest.raises(LocalQueueVersionError, match="entries of format 2"):
        LocalQueue(path, max_bytes=1_000, legacy=_LEGACY)
    assert digest(path) == before  # refused before any change
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (2,)


# --- append and remove against a plain deque --------------------------------------------------


class QueueAgainstDeque(RuleBasedStateMachine):
    """Any sequence of appends, removals and reopenings: the queue holds what a deque holds."""

    MAX_BYTES = 200

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="local-queue-"))
        self.queue = LocalQueue(self.folder / "queue.sqlite", self.MAX_BYTES)
        self.model: deque[tuple[int, bytes, str, int]] = deque()

    def model_bytes(self) -> int:
        return sum(len(body) for _, body, _, _ in self.model)

    @rule(size=st.integers(0, 80), key=st.text(max_size=8), items=st.integers(0, 1_000))
    def append(self, size: int, key: str, items: int) -> None:
        body = bytes(range(size % 256))[:size].ljust(size, b"z")
        if self.model_bytes() + size > self.MAX_BYTES:
            with pytest.raises(LocalQueueFull):
                self.queue.append(body, key=key, items=items)
        else:
            entry_id = self.queue.append(body, key=key, items=items)
            assert not self.model or entry_id > self.model[-1][0]
            self.model.append((entry_id, body, key, items))

    @precondition(lambda self: bool(self.model))
    @rule()
    def remove_oldest(self) -> None:
        oldest = self.queue.oldest()
        assert oldest is not None
        self.queue.remove(oldest)
        assert self.model.popleft()[0] == oldest.id

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def remove_any(self, data: st.DataObject) -> None:
        chosen = data.draw(st.sampled_from(list(self.model)))
        self.queue.remove(chosen[0])
        self.model.remove(chosen)

    @rule()
    def reopen(self) -> None:
        self.queue.close()
        self.queue = LocalQueue(self.folder / "queue.sqlite", self.MAX_BYTES)

    @invariant()
    def holds_what_the_deque_holds(self) -> None:
        assert [(e.id, e.body, e.key, e.items) for e in self.queue] == list(self.model)
        depth = self.queue.depth
        assert depth.entries == len(self.model)
        assert depth.items == sum(items for *_, items in self.model)
        assert depth.bytes == self.model_bytes() <= self.MAX_BYTES
        assert self.queue.empty == (not self.model)

    def teardown(self) -> None:
        self.queue.close()
        shutil.rmtree(self.folder)


QueueAgainstDeque.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None
)
test_append_and_remove_sequences_match_a_deque = QueueAgainstDeque.TestCase
