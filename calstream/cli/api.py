"""`calstream api`: the HTTP API on its own, against the configured store and registry.

Stateless: any number of them may serve the same registry (PostgreSQL in production, beside the
InfluxDB series) while `calstream run` or the Faust workers process readings. `calstream run`
serves the same API in its own process (CALSTREAM_API_PORT).
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from calstream.cli.common import StoreOption, fail, load_settings, service_logging, with_store


def api(
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="Address to listen on (default: CALSTREAM_API_HOST, 127.0.0.1).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="Port (default: CALSTREAM_API_PORT, 8080; 0: a free one, named in the log).",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Serve the HTTP API (docs/api.md) until SIGTERM or Ctrl-C.

    The OpenAPI document is at /v1/openapi.json; /healthz answers while the API runs, /readyz
    while the store answers too. Requests carry a token: `calstream tokens create`.
    """
    from calstream.api import create_app
    from calstream.api.server import ApiServer
    from calstream.wiring import store_for
    from storage.errors import StorageError

    settings = with_store(load_settings(), store)
    service_logging(settings)
    try:
        opened = store_for(settings)
    except (ValueError, StorageError) as exc:
        fail(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = ApiServer(
            create_app(opened),
            settings.api_host if host is None else host,
            settings.api_port if port is None else port,
        )
        server.start()
    except (OSError, TimeoutError) as exc:
        opened.close()
        fail(f"the API cannot listen: {exc}")
    console = Console(stderr=True)
    console.print(f"calstream API on {server.url} (OpenAPI document: {server.url}/v1/openapi.json)")
    try:
        while not stop.wait(0.5):
            if not server.running:
                fail("the API server stopped", code=1)
    finally:
        server.stop()
        opened.close()
    console.print("stopped")
