"""The calstream command line: one module per group of verbs, the shared options in one place.

- :mod:`calstream.cli.demo`: ``demo``, ``simulate``
- :mod:`calstream.cli.service`: ``run``, ``ingest``, ``worker``
- :mod:`calstream.cli.status`: ``status``
- :mod:`calstream.cli.evaluation`: ``bench``, ``soak``, ``detect-bench``
- ``dashboards``: :mod:`dashboards.cli`
- :mod:`calstream.cli.common`: settings, failing with a message, the options several verbs share
"""

from __future__ import annotations

import typer

from calstream.cli import demo, evaluation, service, status
from dashboards.cli import app as dashboards_app

__all__ = ["app", "main"]

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

app.command()(demo.demo)
app.command()(service.run)
app.command()(status.status)
app.command()(evaluation.bench)
app.command("detect-bench")(evaluation.detect_bench)
app.add_typer(dashboards_app, name="dashboards")
app.command()(service.worker)
app.command()(service.ingest)
app.command()(evaluation.soak)
app.command()(demo.simulate)


def main() -> None:  # pragma: no cover - console entry point
    app()
