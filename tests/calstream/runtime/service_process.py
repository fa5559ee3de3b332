"""Helpers of the tests that run `calstream run` as a real process and count what it stored."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from calstream.servers.mosquitto import LocalMosquitto


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> bool:
    """Poll ``predicate`` every 50 ms until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def stored(db: Path) -> int:
    """Readings in a SQLite store (0 before the store or its schema exists)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


class Run:
    """`python -m calstream run` with its settings in the environment, logging to a file.

    ``broker`` None: no CALSTREAM_BROKER, the default path (`calstream run` starts its own).
    """

    def __init__(
        self,
        broker: LocalMosquitto | None,
        folder: Path,
        client_id: str = "calstream-under-test",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.db = folder / "calstream.sqlite"
        self.journal = folder / "journal"
        inherited = {k: v for k, v in os.environ.items() if k != "CALSTREAM_BROKER"}
        self.env = {
            **inherited,
            **({"CALSTREAM_BROKER": broker.url} if broker is not None else {}),
            "CALSTREAM_DB": str(self.db),
            "CALSTREAM_WORK_DIR": str(folder),
            "CALSTREAM_JOURNAL_DIR": str(self.journal),
            "CALSTREAM_CLIENT_ID": client_id,
            "CALSTREAM_METRICS_PORT": "0",
            **(env or {}),
        }
        self.log = folder / "run.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process; returns once it logged that it runs (a restart: once more)."""
        runs_before = self.log.read_bytes().count(b"calstream running") if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "calstream", "run", "--report-every", "1"],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        assert wait_for(
            lambda: self.log.read_bytes().count(b"calstream running") > runs_before, 30
        ), self.log.read_text()

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(30)


def dead_letters(db: Path) -> dict[str, int]:
    """Readings dead-lettered in a SQLite store, by reason (empty before the store exists)."""
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT reason, sum(count) FROM dead_letters GROUP BY reason")
            return {reason: int(n) for reason, n in rows.fetchall()}
        except sqlite3.OperationalError:
            return {}


class RawPublisher:
    """A paho client publishing arbitrary payloads at QoS 1 and waiting for every PUBACK."""

    def __init__(self, broker: LocalMosquitto, client_id: str = "raw-publisher") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id
        )
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self._pending: list = []

    def publish(self, topic: str, payload: bytes) -> None:
        self._pending.append(self.client.publish(topic, payload, qos=1))

    def flush(self, timeout: float = 30.0) -> None:
        for info in self._pending:
            info.wait_for_publish(timeout)
            assert info.is_published()
        self._pending = []

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
