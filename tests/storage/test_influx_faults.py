"""Failure behaviour of the sink against real servers: influxd stopped and started again; a
throttling front (a small real HTTP server that answers 429 with Retry-After, then forwards to
influxd); a front that holds requests, to see the in-flight bound stop the caller."""

from __future__ import annotations

import gzip
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from calstream.servers.influxdb import LocalInfluxDB
from metrology.batch import OutputBatch
from storage.errors import StorageError
from storage.influx import InfluxSink


def readings(make_reading, n: int, start: int = 0) -> OutputBatch:
    return OutputBatch(readings=[make_reading("acme-n-TT-001", seq) for seq in range(start, n)])


def test_server_away_raises_storage_error_then_the_same_batch_writes(
    influxdb: LocalInfluxDB, make_reading
) -> None:
    batch = readings(make_reading, 120)
    with InfluxSink.from_url(influxdb.store_url, retry_s=1.0, chunk_lines=50) as sink:
        assert sink.write_series(readings(make_reading, 10)) == 10
        influxdb.stop()
        with pytest.raises(StorageError, match=r"within the retry budget.*server is up"):
            sink.write_series(batch)
        assert sink.pending_chunks == 0
        influxdb.start()
        assert sink.write_series(batch) == 120
        assert sink.reading_count() == 120


class Front:
    """A real HTTP server in front of influxd: answers writes with 429 + Retry-After while told
    to (and whenever a client comes back before the Retry-After it was given), holds them while
    ``gate`` is closed, and forwards them, and every query, to influxd."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.throttle = 0
        self.retry_after = 1
        self.not_before = 0.0
        self.too_early = 0
        self.answered_429 = 0
        self.forwarded_lines = 0
        self.arrived = 0
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # queries: forwarded as they are
                with urllib.request.urlopen(front.upstream + self.path, timeout=30) as answer:
                    status, payload = answer.status, answer.read()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with front.lock:
                    front.arrived += 1
                    now = time.monotonic()
                    early = now < front.not_before
                    front.too_early += early
                    throttled = early or front.throttle > 0
                    if throttled:
                        front.throttle = max(front.throttle - 1, 0)
                        front.answered_429 += 1
                        front.not_before = now + front.retry_after
                if throttled:
                    self.send_response(429)
                    self.send_header("Retry-After", str(front.retry_after))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                front.gate.wait(60)
                request = urllib.request.Request(
                    front.upstream + self.path, data=body, method="POST",
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )  # fmt: skip
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status = answer.status
                    payload = answer.read()
                with front.lock:
                    text = gzip.decompress(body) if self.headers.get("Content-Encoding") else body
                    front.forwarded_lines += len(text.splitlines())
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front(influxdb: LocalInfluxDB) -> Iterator[Front]:
    server = Front(influxdb.base_url)
    yield server
    server.close()


def url_via(front: Front, influxdb: LocalInfluxDB) -> str:
    return f"influxdb://127.0.0.1:{front.port}/{influxdb.database}"


def test_retry_after_is_honoured(front: Front, influxdb: LocalInfluxDB, make_reading) -> None:
    front.throttle = 2  # the first two requests get 429, Retry-After: 1
    with InfluxSink.from_url(url_via(front, influxdb), senders=1, retry_s=30) as sink:
        assert sink.write_series(readings(make_reading, 40)) == 40
    # Every retry waited for the Retry-After it was given: none came back too early.
    assert (front.answered_429, front.too_early, front.forwarded_lines) == (2, 0, 40)
    with InfluxSink.from_url(influxdb.store_url) as reader:
        assert reader.reading_count() == 40


def test_retry_after_beyond_the_budget_fails_without_an_early_retry(
    front: Front, influxdb: LocalInfluxDB, make_reading
) -> None:
    front.throttle, front.retry_after = 1, 120
    url = url_via(front, influxdb)
    with (
        InfluxSink.from_url(url, senders=1, retry_s=5) as sink,
        pytest.raises(StorageError, match="HTTP 429"),
    ):
        sink.write_series(readings(make_reading, 5))
    assert (front.arrived, front.answered_429, front.too_early) == (1, 1, 0)


def test_in_flight_bound_stops_the_caller(
    front: Front, influxdb: LocalInfluxDB, make_reading
) -> None:
    front.gate.clear()  # hold every request
    url = url_via(front, influxdb)
    with InfluxSink.from_url(url, chunk_lines=10, in_flight=2, senders=4) as sink:
        result: list[int] = []
        writer = threading.Thread(
            target=lambda: result.append(sink.write_series(readings(make_reading, 100)))
        )
        writer.start()
        deadline = time.monotonic() + 30
        while front.arrived < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        writer.join(0.5)  # give an unbounded writer the chance to send more
        # Two chunks are in flight (held), the caller waits for a slot: 2 of 10 chunks sent.
        assert (front.arrived, sink.pending_chunks, writer.is_alive()) == (2, 2, True)
        front.gate.set()
        writer.join(30)
        assert result == [100]
        assert (front.arrived, front.forwarded_lines, sink.pending_chunks) == (10, 100, 0)
        assert sink.reading_count() == 100


def test_reads_through_the_real_server(influxdb: LocalInfluxDB, make_reading) -> None:
    with InfluxSink.from_url(influxdb.store_url, chunk_lines=7) as sink:
        assert sink.write_series(readings(make_reading, 100)) == 100
        assert sink.reading_count() == 100
