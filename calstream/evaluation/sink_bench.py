"""Sink throughput against the raw ceiling: ``python -m calstream.evaluation.sink_bench``.

Starts Debian's influxd (1.x, v1 ``/write``) and VictoriaMetrics (v2 ``/api/v2/write``) in a
temporary folder and, against each, alternates two writers over the same kind of batches
(readings of a fleet shaped like ``calstream bench``'s, half with drift numbers, plus one
health snapshot per instrument and batch):

- **sink**: ``InfluxSink.write_series(batch)``: serialising, chunking, gzip, posting, retries;
- **raw ceiling**: the same batches' lines serialised beforehand (not timed), chunked and
  gzipped as the sink does them and posted with the same concurrency by plain httpx: what the
  server and the network take when serialising costs nothing.

Each writer gets fresh time ranges (no overwrites), after one warm-up batch that creates the
series. Prints points/s (the best round of each, and the medians) and the ratio sink / raw.
A round is about 100,000 points (several seconds): VictoriaMetrics flushes its in-memory parts
about once a second, and a request that meets a flush waits 100-200 ms, so rounds of a fraction
of a second compare the flushes each writer happened to meet rather than the writers. Figures
only; the machine may be shared (the load average is printed), so compare within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
from influxdb_client.client.write.point import Point

from calstream.evaluation.sqlite_bench import bench_fleet, make_batches
from calstream.servers.influxdb import LocalInfluxDB, LocalVictoriaMetrics
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from storage.influx.lineprotocol import nanoseconds
from storage.influx.points import ReadingSerialiser, health_lines
from storage.influx.schema import READING_DRIFT_FIELDS
from storage.influx.sink import InfluxSink
from storage.influx.target import WritePolicy
from storage.influx.transport import GZIP_LEVEL, request_body


def batch_lines(fleet: Fleet, batch: OutputBatch) -> list[str]:
    """The lines the sink writes for ``batch`` (fleet_status aside: one line per site)."""
    measurands = {i: spec.measurand for i, spec in fleet.instruments.items()}
    lines = ReadingSerialiser(measurands.get).lines(batch.readings)
    lines += health_lines(batch.snapshots)
    return lines


class RawPoster:
    """Pre-serialised line protocol, chunked and gzipped as the sink does (in the submitting
    thread, :func:`~storage.influx.transport.request_body`), posted by ``senders`` threads."""

    def __init__(self, url: str, params: dict[str, str], chunk_lines: int, senders: int) -> None:
        self._client = httpx.Client(timeout=30.0, limits=httpx.Limits(max_connections=senders))
        self._url, self._params = url, params
        self._chunk_lines = chunk_lines
        self._pool = ThreadPoolExecutor(senders)

    def _post(self, body: bytes) -> None:
        response = self._client.post(
            self._url, params=self._params, content=body, headers={"Content-Encoding": "gzip"}
        )
        if response.status_code != 204:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")

    def write(self, lines: list[str]) -> int:
        size = self._chunk_lines
        futures = [
            self._pool.submit(self._post, request_body(lines[i : i + size], gzipped=True))
            for i in range(0, len(lines), size)
        ]
        for future in futures:
            future.result()
        return len(lines)

    def close(self) -> None:
        self._pool.shutdown()
        self._client.close()


def _rate(write: Callable[[], int]) -> float:
    started = time.perf_counter()
    points = write()
    return points / (time.perf_counter() - started)


def compare(
    name: str, sink: InfluxSink, raw: RawPoster, fleet: Fleet, batches: list[OutputBatch]
) -> tuple[float, float]:
    """Points/s of the sink and of the raw poster (best rounds), alternating rounds."""
    sink.write_series(batches[0])  # warm-up: creates every series
    sink_rates, raw_rates = [], []
    for i in range(1, len(batches) - 1, 2):
        lines = batch_lines(fleet, batches[i])
        raw_rates.append(_rate(partial(raw.write, lines)))
        sink_rates.append(_rate(partial(sink.write_series, batches[i + 1])))
    # The best round of each writer: on a shared machine the other rounds measure the others.
    sink_rate, raw_rate = max(sink_rates), max(raw_rates)
    sink_median, raw_median = statistics.median(sink_rates), statistics.median(raw_rates)
    print(
        f"{name:<34} sink {sink_rate:>9,.0f} points/s   raw ceiling {raw_rate:>9,.0f} points/s"
        f"   ratio {sink_rate / raw_rate:.2f}   (best of {len(sink_rates)} rounds; medians "
        f"{sink_median:,.0f} / {raw_median:,.0f}, ratio {sink_median / raw_median:.2f})"
    )
    return sink_rate, raw_rate


def serialiser_costs(fleet: Fleet, batch: OutputBatch) -> None:
    """CPU time per reading line: influxdb-client's Point, the generic serialiser, the hot path."""
    measurands = {i: spec.measurand for i, spec in fleet.instruments.items()}
    serialiser = ReadingSerialiser(measurands.get)
    readings = batch.readings

    def points() -> None:
        for r, a in readings:
            point = Point("reading").tag("tenant", r.tenant).tag("site", r.site)
            point.tag("instrument", r.instrument_id).tag("measurand", measurands[r.instrument_id])
            for key, value in zip(READING_DRIFT_FIELDS, a[5:12], strict=True):
                point.field(key, value)
            point.field("value", r.value).field("corrected", a.corrected).field("seq", r.seq)
            point.field("status", a.status.value).field("certificate", a.certificate_id)
            point.time(nanoseconds(r.ts)).to_line_protocol()

    for name, run in (
        ("influxdb_client.Point", points),
        ("generic line()", lambda: [serialiser.line(r, a) for r, a in readings]),
        ("ReadingSerialiser.lines", lambda: serialiser.lines(readings)),
    ):
        best = min(_cpu(run) for _ in range(3))
        print(f"  {name:<26} {best / len(readings) * 1e6:6.2f} us CPU per reading line")


def _cpu(run: Callable[[], object]) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def split_cpus() -> tuple[set[int], set[int]] | None:
    """Half of this process's CPUs for the server, the rest for the client (``None`` with
    fewer than two)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


Server = type[LocalInfluxDB] | type[LocalVictoriaMetrics]


def bench_server(
    server: Server,
    folder: Path,
    fleet: Fleet,
    batches: list[OutputBatch],
    args: argparse.Namespace,
    cpus: tuple[set[int], set[int]] | None,
) -> None:
    """Start ``server`` in ``folder`` and compare the sink with the raw ceiling against it."""
    local = server(folder)
    every = os.sched_getaffinity(0)
    try:
        # A child inherits the starting thread's CPU affinity, and so do later threads.
        if cpus is not None:
            os.sched_setaffinity(0, cpus[0])
        local.start()
        if cpus is not None:
            os.sched_setaffinity(0, cpus[1])
        policy = {"chunk_lines": args.chunk_lines, "senders": args.senders}
        sink = InfluxSink.from_url(local.store_url, fleet, **policy)
        if isinstance(local, LocalInfluxDB):
            name = "influxd 1.6 (v1 /write)"
            url, params = f"{local.base_url}/write", {"db": local.database, "precision": "ns"}
        else:
            name = "VictoriaMetrics (v2 /api/v2/write)"
            url = f"{local.base_url}/api/v2/write"
            params = {"bucket": local.bucket, "org": "calstream", "precision": "ns"}
        raw = RawPoster(url, params, args.chunk_lines, args.senders)
        where = (
            "CPUs shared"
            if cpus is None
            else f"server on CPU {sorted(cpus[0])}, writers on {sorted(cpus[1])}"
        )
        try:
            compare(f"{name}, {where}", sink, raw, fleet, batches)
        finally:
            sink.close()
            raw.close()
    finally:
        os.sched_setaffinity(0, every)
        local.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruments", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100_000, help="readings per batch")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per writer and server")
    parser.add_argument("--residual-share", type=float, default=0.5)
    parser.add_argument("--chunk-lines", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=WritePolicy().senders)
    parser.add_argument("--skip", choices=("influxdb", "victoriametrics"), action="append")
    parser.add_argument(
        "--cpus",
        choices=("split", "shared", "both"),
        default="both",
        help="split: the server on half the CPUs and the writers on the others, as on separate "
        "machines; shared: every process on every CPU (default: both)",
    )
    parser.add_argument(
        "--serialiser", action="store_true", help="only the serialisers' CPU cost, no server"
    )
    args = parser.parse_args(argv)
    skip = set(args.skip or ())

    fleet = bench_fleet(args.instruments)
    if args.serialiser:
        batch = make_batches(fleet, 1, args.batch, args.residual_share)[0]
        print(f"{len(batch.readings):,} readings, {args.residual_share:.0%} with drift numbers")
        serialiser_costs(fleet, batch)
        return
    batches = make_batches(fleet, 2 * args.rounds + 1, args.batch, args.residual_share)
    points = len(batch_lines(fleet, batches[0]))
    print(
        f"{args.instruments} instruments, {args.rounds} rounds of ~{points:,} points per writer, "
        f"{args.chunk_lines} lines per request, gzip level {GZIP_LEVEL}, {args.senders} senders; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    split = split_cpus()
    placements: list[tuple[set[int], set[int]] | None] = []
    if args.cpus in ("split", "both"):
        if split is None:
            print("one CPU only: the server and the writers cannot be split")
        else:
            placements.append(split)
    if args.cpus in ("shared", "both"):
        placements.append(None)
    servers: list[Server] = []
    if "influxdb" not in skip:
        servers.append(LocalInfluxDB)
    if "victoriametrics" not in skip:
        servers.append(LocalVictoriaMetrics)
    with tempfile.TemporaryDirectory() as folder:
        for n, (server, cpus) in enumerate((s, c) for s in servers for c in placements):
            bench_server(server, Path(folder) / f"{server.name}-{n}", fleet, batches, args, cpus)


if __name__ == "__main__":
    main()
