"""The calstream command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console, Group
from rich.live import Live

from calstream.settings import Settings
from ingest.errors import BrokerUnavailable
from metrology.errors import MetrologyError
from storage.errors import StorageError

if TYPE_CHECKING:
    from storage.contract import Store

app = typer.Typer(
    name="calstream",
    help=(
        "calstream: live calibration correction, drift detection and fleet health for measuring "
        "instruments streaming over MQTT.\n\n"
        "Settings come from options, CALSTREAM_* environment variables, or the TOML file named by "
        "CALSTREAM_CONFIG."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings() -> Settings:
    try:
        settings = Settings()
    except Exception as exc:  # pydantic's own message names the bad setting
        _fail(f"invalid settings: {exc}")
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return settings


def _with_store(settings: Settings, store: str | None) -> Settings:
    """``settings`` with the store a ``--store`` option names (validated like CALSTREAM_STORE)."""
    if store is None:
        return settings
    try:
        return Settings.model_validate({**settings.model_dump(), "store": store})
    except Exception as exc:  # pydantic's message names the accepted forms
        _fail(f"invalid --store: {exc}")


def _as_typed(program: str) -> str:
    """How to call this program again from here (``.venv/bin/calstream`` after ``make demo``)."""
    path = Path(program)
    if path.name in ("__main__.py", "-c") or not path.exists():
        return "calstream"
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return path.name


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@app.command()
def demo(
    duration: Annotated[
        float,
        typer.Option(
            "--duration",
            min=1.0,
            help="Wall-clock seconds over which the simulated days stream "
            "(longer if the pipeline falls behind).",
        ),
    ] = 30.0,
    instruments: Annotated[
        int,
        typer.Option(
            "--instruments",
            min=1,
            help="Instruments to simulate "
            "(60 = the shipped example fleet; other sizes are generated).",
        ),
    ] = 60,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the simulated behaviour (same seed, same run).")
    ] = 1,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="SQLite store to create (replaced if it is an earlier calstream store). "
            "Default: CALSTREAM_DB or calstream-work/calstream.sqlite",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URL: sqlite:///path, influxdb://host:8086/db or "
            "influxdb2://host:8086?org=..&bucket=..&token=.. (overrides CALSTREAM_STORE and --db).",
        ),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker", help="Use this MQTT broker (mqtt://host:port) instead of the embedded one."
        ),
    ] = None,
    sim_days: Annotated[
        float,
        typer.Option(
            "--sim-days", min=1.0, help="Simulated days of instrument life streamed during the run."
        ),
    ] = 100.0,
    fleet: Annotated[
        Path | None,
        typer.Option("--fleet", help="Fleet file (YAML) to simulate instead of the example fleet."),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the summary as one JSON object on the last line of standard output.",
        ),
    ] = False,
) -> None:
    """Simulate a fleet streaming over MQTT into drift processing and a SQLite store, live."""
    from calstream.demo import Demo, DemoOptions
    from calstream.live import DemoScreen

    settings = _settings()
    options = DemoOptions(
        duration_s=duration,
        instruments=instruments,
        seed=seed,
        sim_days=sim_days,
        db=db,
        store=store,
        broker=broker or settings.broker,
        fleet=fleet,
    )
    try:
        run = Demo(options, settings)
    except (MetrologyError, FileExistsError, OSError, ValueError) as exc:
        _fail(str(exc))
    console = Console(stderr=json_output)
    screen = DemoScreen(run)
    try:
        with Live(screen.render(), console=console, refresh_per_second=4, transient=False) as live:
            result = run.run(on_tick=lambda _run: live.update(screen.render()))
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except Exception as exc:
        logging.getLogger("calstream").exception("demo failed")
        _fail(f"demo failed: {exc}", code=1)
    summary = result.as_dict()
    console.print(screen.summary(result))
    command = _as_typed(sys.argv[0])
    where = f"--db {result.db}" if run.db_path is not None else "--store URL"
    console.print(f"Fleet health stays in the store: [bold]{command} status {where}[/]")
    if json_output:
        sys.stdout.write(json.dumps(summary, sort_keys=False) + "\n")


@app.command()
def run(
    report_every: Annotated[
        float,
        typer.Option("--report-every", min=0.5, help="Seconds between progress lines in the log."),
    ] = 10.0,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URL: sqlite:///path, influxdb://host:8086/db or "
            "influxdb2://host:8086?org=..&bucket=..&token=.. (overrides CALSTREAM_STORE).",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="embedded: one process (default). faust: an ingest forwarder and a Faust worker "
            "in this process, through Kafka (CALSTREAM_KAFKA); more of either with "
            "`calstream ingest` / `calstream worker` (docs/scaling.md).",
        ),
    ] = "embedded",
) -> None:
    """Run the pipeline as a service: broker -> processing -> store, until SIGTERM or Ctrl-C.

    Configure with CALSTREAM_* variables or CALSTREAM_CONFIG (see README): CALSTREAM_BROKER,
    CALSTREAM_FLEET, CALSTREAM_DB. Without a broker, an embedded one listens on 127.0.0.1:1883.
    """
    from calstream.service import Service

    if engine not in ("embedded", "faust"):
        _fail(f"--engine must be embedded or faust, not {engine!r}")
    settings = _with_store(_settings(), store)
    if engine == "faust":
        _run_scale_out(settings, "engine")
        return
    if settings.log_level.upper() == "WARNING":
        logging.getLogger("calstream").setLevel(logging.INFO)
    try:
        service = Service(settings)
    except (MetrologyError, OSError, ValueError, StorageError) as exc:
        _fail(str(exc))
    try:
        report = service.run(report_every_s=report_every)
    except BrokerUnavailable as exc:
        _fail(f"{exc}; check CALSTREAM_BROKER")
    Console(stderr=True).print(
        f"stopped after {report.uptime_s:.0f} s: received {report.received}, stored "
        f"{report.stored}, rejected {report.rejected}, alerts {report.alerts}"
    )


@app.command()
def status(
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="SQLite store to read. Default: CALSTREAM_DB or calstream-work/calstream.sqlite",
        ),
    ] = None,
    store_option: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URL: sqlite:///path, influxdb://host:8086/db or "
            "influxdb2://host:8086?org=..&bucket=..&token=.. (overrides CALSTREAM_STORE and --db).",
        ),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's instruments.")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print fleet health as JSON.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="How many of the worst instruments to list.")
    ] = 15,
    instrument: Annotated[
        str | None,
        typer.Option(
            "--instrument",
            help="Show one instrument: its status, every reason and every number behind them "
            "(conformity, detectors, drift and dates, interval recommendations).",
        ),
    ] = None,
) -> None:
    """Print fleet health from a store: counts by status per site, worst instruments, alerts."""
    from contextlib import closing

    from calstream.views import (
        WIDE_COLUMNS,
        alerts_table,
        dead_letter_table,
        site_table,
        worst_table,
    )
    from storage.select import SQLITE_PREFIX, describe_store, open_store, sqlite_path, store_kind

    settings = _settings()
    store_url = store_option or (f"{SQLITE_PREFIX}{db}" if db else settings.store_url)
    try:
        embedded = store_kind(store_url) == "sqlite"
    except ValueError as exc:
        _fail(str(exc))
    path = sqlite_path(store_url) if embedded else None
    if path is not None and not path.exists():
        _fail(f"no store at {path}; run `calstream demo` first or pass --db PATH")
    try:
        opened = open_store(store_url, settings.registry, work_dir=settings.work_dir)
    except (ValueError, StorageError) as exc:
        _fail(str(exc))
    where = str(path) if path is not None else describe_store(store_url)
    if instrument is not None:
        _show_instrument(opened, instrument, tenant, where, json_output)
        return
    try:
        with closing(opened) as store:
            by_status = store.counts_by_status(tenant)
            by_site = {
                k: v for k, v in store.counts_by_site().items() if tenant is None or k[0] == tenant
            }
            worst = store.worst_instruments(limit, tenant)
            alerts = store.alerts(10, tenant)
            dead = store.dead_letters_by_reason()
            readings = store.reading_count()
    except StorageError as exc:
        _fail(f"cannot read the store {where}: {exc}", code=1)
    if json_output:
        document = {
            "db": where,
            "readings": readings,
            "instruments_by_status": by_status,
            "sites": [
                {"tenant": t, "site": s, "instruments_by_status": counts}
                for (t, s), counts in sorted(by_site.items())
            ],
            "worst": [
                {
                    "instrument": w.instrument_id,
                    "tenant": w.tenant,
                    "site": w.site,
                    "status": str(w.status),
                    "conditions": [str(c) for c in w.conditions],
                    "reasons": list(w.reasons),
                    "numbers": w.numbers,
                }
                for w in worst
            ],
            "dead_letters_by_reason": dead,
            "alerts": len(alerts),
        }
        sys.stdout.write(json.dumps(document) + "\n")
        return
    console = Console()
    console.print(f"[bold]{where}[/]: {readings} readings, {sum(by_status.values())} instruments")
    wide = console.width >= WIDE_COLUMNS
    console.print(Group(site_table(by_site), worst_table(worst, wide=wide), alerts_table(alerts)))
    if dead:
        console.print(dead_letter_table(dead))


def _show_instrument(
    store: Store, instrument: str, tenant: str | None, where: str, json_output: bool
) -> None:
    """``calstream status --instrument ID``: one instrument's whole snapshot."""
    from calstream.views import instrument_table

    try:
        snapshots = {s.instrument_id: s for s in store.snapshots(tenant)}
    except StorageError as exc:
        _fail(f"cannot read the store {where}: {exc}", code=1)
    finally:
        store.close()
    snapshot = snapshots.get(instrument)
    if snapshot is None:
        known = ", ".join(sorted(snapshots)[:5]) or "none yet"
        _fail(
            f"no health stored for {instrument!r} in {where}"
            + (f" (tenant {tenant})" if tenant else "")
            + f"; instruments with health: {known}"
            + (", ..." if len(snapshots) > 5 else "")
        )
    if json_output:
        document = {
            "instrument": snapshot.instrument_id,
            "tenant": snapshot.tenant,
            "site": snapshot.site,
            "status": str(snapshot.status),
            "conditions": [str(c) for c in snapshot.conditions],
            "reasons": list(snapshot.reasons),
            "evaluated_at": snapshot.evaluated_at,
            "numbers": snapshot.numbers,
        }
        sys.stdout.write(json.dumps(document) + "\n")
        return
    Console().print(instrument_table(snapshot))


@app.command()
def bench(
    instruments: Annotated[
        int, typer.Option("--instruments", min=1, help="Instruments in the generated bench fleet.")
    ] = 1000,
    readings: Annotated[
        int, typer.Option("--readings", min=1000, help="Readings sent in the 100-per-message case.")
    ] = 400_000,
    single_readings: Annotated[
        int,
        typer.Option("--single-readings", min=100, help="Readings sent in the 1-per-message case."),
    ] = 20_000,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            help="Use this mosquitto (mqtt://host:port) instead of starting one (deploy tuning).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object on the last line.")
    ] = False,
) -> None:
    """End-to-end readings/s through a real mosquitto beside the raw broker-to-subscriber rate."""
    import tempfile

    from rich.table import Table

    from calstream.bench import as_document, run_bench
    from calstream.local_mosquitto import LocalMosquitto
    from calstream.settings import broker_address

    _settings()
    console = Console(stderr=json_output)
    with tempfile.TemporaryDirectory(prefix="calstream-bench-broker-") as folder:
        try:
            if broker:
                address = broker_address(broker)
                local = None
            else:
                local = LocalMosquitto(Path(folder))
                local.start()
                address = (local.host, local.port)
        except (FileNotFoundError, RuntimeError, ValueError) as exc:
            _fail(str(exc))
        try:
            with console.status(
                "publishing and processing (raw ceiling first, then the pipeline)..."
            ):
                results = run_bench(address, instruments, readings, single_readings)
        finally:
            if local is not None:
                local.kill()
    table = Table(
        title=f"calstream bench: {instruments} instruments, mosquitto at {address[0]}:{address[1]}"
    )
    for column in (
        "readings/msg",
        "readings",
        "raw ceiling (readings/s)",
        "pipeline (readings/s)",
        "ratio",
        "stored",
        "µs/reading: decode",
        "admit",
        "step",
        "snapshot",
        "store",
        "ack",
    ):
        table.add_column(column, justify="right")
    for r in results:
        us = r.us_per_reading
        table.add_row(
            str(r.readings_per_message),
            f"{r.readings:,}",
            f"{r.raw_readings_per_s:,.0f}",
            f"{r.pipeline_readings_per_s:,.0f}",
            f"{r.ratio:.2f}",
            f"{r.stored:,}",
            *(f"{us[k]:.1f}" for k in ("decode", "admit", "step", "snapshot", "store", "ack")),
        )
    console.print(table)
    if json_output:
        sys.stdout.write(json.dumps(as_document(results)) + "\n")


@app.command("detect-bench")
def detect_bench(
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=1,
            help="Simulation seeds 1..N; each also gets its own generated fleet (seed + 1000).",
        ),
    ] = 8,
    instruments: Annotated[
        int, typer.Option("--instruments", min=12, help="Instruments in each generated fleet.")
    ] = 60,
    sim_days: Annotated[
        float, typer.Option("--sim-days", min=10.0, help="Simulated days per seed.")
    ] = 365.0,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes running seeds (default: CPU count)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object on the last line.")
    ] = False,
) -> None:
    """Score drift detection against the simulator's ground truth over many seeds (no MQTT).

    Simulated readings go through admission and the fleet processor (the pipeline's `step`)
    directly; the issue's targets are printed beside the figures. Exits with status 1 if a seed
    failed (its error is printed; the other seeds are still scored). Defaults reduced to 8 seeds
    (not 20) of a 60-instrument fleet over 365 days, about 20 million readings, to stay near
    3 minutes on 2 cores (about 30 s of CPU per seed); --seeds 20 takes about 5-6 minutes.
    """
    import os

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from calstream.detection_bench import detect_bench_tables, run_detect_bench, seed_cases
    from calstream.wiring import policy_for

    settings = _settings()
    cases = seed_cases(seeds, instruments, sim_days)
    total = seeds * sim_days
    progress = Progress(
        TextColumn("[bold]detect-bench[/]"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} simulated days"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task("seeds", total=total)
        result = run_detect_bench(
            cases,
            policy_for(settings),
            workers=workers or os.cpu_count() or 1,
            on_progress=lambda days: progress.update(task, completed=days),
        )
    console = Console(stderr=json_output)
    console.print(detect_bench_tables(result))
    if json_output:
        sys.stdout.write(json.dumps(result.as_document()) + "\n")
    if result.seed_errors:
        raise typer.Exit(1)


app.add_typer(__import__("dashboards.cli").cli.app, name="dashboards")


# --- scale-out engine (docs/scaling.md) ---


def _run_scale_out(settings: Settings, part: str, sink: str = "kafka") -> None:
    from calstream import scale_out

    if settings.log_level.upper() == "WARNING":
        logging.getLogger("calstream").setLevel(logging.INFO)
    try:
        if part == "worker":
            scale_out.run_worker(settings)
        elif part == "engine":
            scale_out.run_faust_engine(settings)
        else:
            import signal
            import threading

            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            counters = scale_out.run_ingest(settings, sink, stop)
            Console(stderr=True).print(
                f"stopped: {counters.messages} messages, {counters.forwarded} readings forwarded "
                f"in {counters.records} records, {counters.rejected} rejected"
            )
    except scale_out.KafkaUnavailable as exc:
        _fail(str(exc))
    except BrokerUnavailable as exc:
        _fail(f"{exc}; check CALSTREAM_BROKER")
    except (MetrologyError, OSError, ValueError) as exc:
        _fail(str(exc))


@app.command()
def worker() -> None:
    """Run a Faust worker: readings from Kafka (CALSTREAM_KAFKA) through `step` into the store.

    Workers of one deployment share the readings topic's partitions (CALSTREAM_TOPIC_PARTITIONS
    is the most that can be busy) and keep instrument state in RocksDB tables with changelogs.
    """
    _run_scale_out(_settings(), "worker")


@app.command()
def ingest(
    sink: Annotated[
        str,
        typer.Option(
            "--sink",
            help="kafka (CALSTREAM_KAFKA, default) or sqlite:PATH (one host, or tests).",
        ),
    ] = "kafka",
) -> None:
    """Run an ingest forwarder: a member of the MQTT 5 shared subscription, forwarding to Kafka.

    Give every forwarder its own CALSTREAM_INGEST_CLIENT_ID (a durable session each) and the
    same CALSTREAM_SHARED_GROUP; the broker spreads the gateways' messages among them.
    """
    _run_scale_out(_settings(), "ingest", sink)


@app.command()
def soak(
    minutes: Annotated[
        float, typer.Option("--minutes", min=0.05, help="How long to run at the soak rate.")
    ] = 10.0,
    instruments: Annotated[
        int, typer.Option("--instruments", min=1, help="Instruments in the generated fleet.")
    ] = 1000,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker", help="Use this mosquitto (mqtt://host:port) instead of a local one."
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object on the last line.")
    ] = False,
) -> None:
    """Measure capacity, then run at half of it for N minutes: memory, stored, latency p50/p99."""
    from calstream.soak import soak_command

    _settings()
    try:
        soak_command(minutes, instruments, broker, json_output)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))


@app.command()
def simulate(
    broker: Annotated[
        str | None,
        typer.Option("--broker", help="Broker URL mqtt://host:port (default CALSTREAM_BROKER)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Simulation seed.")] = 1,
    history_days: Annotated[
        float,
        typer.Option("--history-days", min=0.0, help="Simulated days replayed before now."),
    ] = 30.0,
    speedup: Annotated[
        float,
        typer.Option(
            "--speedup", min=1.0, help="Simulated seconds per second while replaying history."
        ),
    ] = 720.0,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.0, help="Stop after this many seconds (default: never)."),
    ] = None,
    spool: Annotated[
        Path | None,
        typer.Option(
            "--spool",
            help="Spool file: messages the broker cannot take are kept on disk and published "
            "in order once it is back (store and forward).",
        ),
    ] = None,
) -> None:
    """Simulated edge gateways: publish the fleet's readings to a broker until SIGTERM/Ctrl-C."""
    import signal
    import threading

    from calstream.simulate import SimulationOptions
    from calstream.simulate import simulate as run_simulation

    settings = _settings()
    if broker is not None:
        settings = settings.model_copy(update={"broker": broker})
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # docker stop, Ctrl-C: flush, then exit
        signal.signal(signum, lambda *_: stop.set())
    options = SimulationOptions(seed, history_days, speedup, duration, spool)
    from edge_sim.errors import PublishError

    try:
        summary = run_simulation(settings, options, stop)
    except (MetrologyError, OSError, ValueError, PublishError) as exc:
        _fail(f"{exc}; check the broker URL and credentials (CALSTREAM_BROKER)", code=1)
    sys.stdout.write(
        json.dumps(
            {
                "published_readings": summary.published_readings,
                "acknowledged_readings": summary.acknowledged_readings,
                "simulated_until": summary.simulated_until,
            }
        )
        + "\n"
    )


def main() -> None:  # pragma: no cover - console entry point
    app()
