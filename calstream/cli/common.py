"""What every command shares: settings, logging, failing with a message, the shared options."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from calstream.settings import Settings

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL: sqlite:///path, influxdb://host:8086/db or "
        "influxdb2://host:8086?org=..&bucket=..&token=.. (overrides CALSTREAM_STORE and --db).",
    ),
]
DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="SQLite store (shorthand for --store sqlite:///PATH). "
        "Default: CALSTREAM_DB or calstream-work/calstream.sqlite",
    ),
]
BrokerOption = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="MQTT broker URL mqtt://host:port (default: CALSTREAM_BROKER, else one calstream "
        "starts itself).",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Print the result as one JSON object on the last line of standard output."
    ),
]
InstrumentsOption = Annotated[
    int, typer.Option("--instruments", min=1, help="Instruments in the generated fleet.")
]


def load_settings() -> Settings:
    """The settings (environment, CALSTREAM_CONFIG, defaults), logging configured from them."""
    try:
        settings = Settings()
    except Exception as exc:  # pydantic's own message names the bad setting
        fail(f"invalid settings: {exc}")
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return settings


def with_store(settings: Settings, store: str | None) -> Settings:
    """``settings`` with the store a ``--store`` option names (validated like CALSTREAM_STORE)."""
    if store is None:
        return settings
    try:
        return Settings.model_validate({**settings.model_dump(), "store": store})
    except Exception as exc:  # pydantic's message names the accepted forms
        fail(f"invalid --store: {exc}")


def service_logging(settings: Settings) -> None:
    """Long-running services report progress at INFO unless a log level was chosen."""
    if settings.log_level.upper() == "WARNING":
        logging.getLogger("calstream").setLevel(logging.INFO)


def as_typed(program: str) -> str:
    """How to call this program again from here (``.venv/bin/calstream`` after ``make demo``)."""
    path = Path(program)
    if path.name in ("__main__.py", "-c") or not path.exists():
        return "calstream"
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return path.name


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on standard error and exit with ``code``."""
    Console(stderr=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
