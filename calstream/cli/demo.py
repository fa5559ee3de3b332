"""`calstream demo` and `calstream simulate`: a simulated fleet, live or against a broker."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from calstream.cli.common import (
    BrokerOption,
    DbOption,
    JsonOption,
    StoreOption,
    as_typed,
    fail,
    load_settings,
)
from metrology.errors import CalstreamError


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
    db: DbOption = None,
    store: StoreOption = None,
    broker: BrokerOption = None,
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
    json_output: JsonOption = False,
) -> None:
    """Simulate a fleet streaming over MQTT into drift processing and a SQLite store, live.

    The SQLite store given by --db is replaced if it is an earlier calstream store.
    """
    from calstream.cli.live import DemoScreen
    from calstream.demo.run import Demo, DemoOptions

    settings = load_settings()
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
    except (CalstreamError, OSError, ValueError) as exc:
        fail(str(exc))
    console = Console(stderr=json_output)
    screen = DemoScreen(run)
    try:
        with Live(screen.render(), console=console, refresh_per_second=4, transient=False) as live:
            result = run.run(on_tick=lambda _run: live.update(screen.render()))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Exception as exc:
        logging.getLogger("calstream").exception("demo failed")
        fail(f"demo failed: {exc}", code=1)
    summary = result.as_dict()
    console.print(screen.summary(result))
    command = as_typed(sys.argv[0])
    where = f"--db {result.db}" if run.db_path is not None else "--store URL"
    console.print(f"Fleet health stays in the store: [bold]{command} status {where}[/]")
    if json_output:
        sys.stdout.write(json.dumps(summary, sort_keys=False) + "\n")


def simulate(
    broker: BrokerOption = None,
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
    """Simulated edge gateways: publish the fleet's readings to a broker until SIGTERM/Ctrl-C.

    Prints one JSON line at the end: readings published and acknowledged, simulated time reached.
    """
    from calstream.demo.simulate import SimulationOptions
    from calstream.demo.simulate import simulate as run_simulation

    settings = load_settings()
    if broker is not None:
        settings = settings.model_copy(update={"broker": broker})
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # docker stop, Ctrl-C: flush, then exit
        signal.signal(signum, lambda *_: stop.set())
    options = SimulationOptions(seed, history_days, speedup, duration, spool)
    try:
        summary = run_simulation(settings, options, stop)
    except (CalstreamError, OSError, ValueError) as exc:
        fail(f"{exc}; check the broker URL and credentials (CALSTREAM_BROKER)", code=1)
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
