"""`calstream bench`, `calstream soak`, `calstream detect-bench`: figures, never assertions."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from calstream.cli.common import BrokerOption, InstrumentsOption, JsonOption, fail, load_settings


def bench(
    instruments: InstrumentsOption = 1000,
    readings: Annotated[
        int, typer.Option("--readings", min=1000, help="Readings sent in the 100-per-message case.")
    ] = 400_000,
    single_readings: Annotated[
        int,
        typer.Option("--single-readings", min=100, help="Readings sent in the 1-per-message case."),
    ] = 20_000,
    broker: BrokerOption = None,
    json_output: JsonOption = False,
) -> None:
    """End-to-end readings/s through a real mosquitto beside the raw broker-to-subscriber rate.

    Without --broker, a mosquitto with the deploy tuning is started on a free port.
    """
    from rich.table import Table

    from calstream.evaluation.throughput import as_document, run_bench
    from calstream.servers.mosquitto import LocalMosquitto
    from calstream.settings import broker_address

    load_settings()
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
            fail(str(exc))
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


def soak(
    minutes: Annotated[
        float, typer.Option("--minutes", min=0.05, help="How long to run at the soak rate.")
    ] = 10.0,
    instruments: InstrumentsOption = 1000,
    broker: BrokerOption = None,
    json_output: JsonOption = False,
) -> None:
    """Measure capacity, then run at half of it for N minutes: memory, stored, latency p50/p99."""
    from calstream.evaluation.soak import soak_command

    load_settings()
    try:
        soak_command(minutes, instruments, broker, json_output)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        fail(str(exc))


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
    json_output: JsonOption = False,
) -> None:
    """Score drift detection against the simulator's ground truth over many seeds (no MQTT).

    Simulated readings go through admission and the fleet processor (the pipeline's `step`)
    directly; calstream's detection goals (docs/metrology.md) are printed beside the figures.
    Exits with status 1 if a seed failed (its error is printed; the other seeds are still
    scored). The defaults, 8 seeds of a 60-instrument fleet over 365 days (about 20 million
    readings), take about 3 minutes on 2 cores (about 30 s of CPU per seed); --seeds 20 takes
    about 5-6 minutes.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from calstream.evaluation.detection.report import detect_bench_tables
    from calstream.evaluation.detection.run import run_detect_bench, seed_cases
    from calstream.wiring import policy_for

    settings = load_settings()
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
