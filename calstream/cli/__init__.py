"""The calstream command line: one module per group of verbs, the shared options in one place.

- :mod:`calstream.cli.demo`: ``demo``, ``simulate``
- :mod:`calstream.cli.service`: ``run``, ``ingest``, ``worker``
- :mod:`calstream.cli.status`: ``status``
- :mod:`calstream.cli.evaluation`: ``bench``, ``soak``, ``detect-bench``
- ``dashboards``: :mod:`dashboards.cli`, ``dashboards provision`` and ``grafana-roles``
  (:mod:`calstream.cli.grafana_tenants`: one Grafana organisation per tenant)
- :mod:`calstream.cli.broker_auth`: ``broker-auth export|provider-credentials``, ``gateways
  credentials|retire``
- :mod:`calstream.cli.api`: ``api`` (the HTTP API on its own)
- the registry, as the HTTP API has it: ``tenants`` (:mod:`calstream.cli.tenants`), ``sites``,
  ``gateways``, ``instruments``, ``calibrations``, ``contracts``, ``tokens`` (a module each),
  sharing :mod:`calstream.cli.resources` (the running API with ``--api``, else the store in
  process as the local principal)
- :mod:`calstream.cli.common`: settings, failing with a message, the options several verbs share
"""

from __future__ import annotations

import typer

from calstream.cli import (
    api,
    broker_auth,
    calibrations,
    contracts,
    demo,
    evaluation,
    gateways,
    grafana_tenants,
    instruments,
    service,
    sites,
    status,
    tenants,
    tokens,
)
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
app.command()(api.api)
app.add_typer(tenants.app, name="tenants")
app.add_typer(sites.app, name="sites")
app.add_typer(gateways.app, name="gateways")
app.add_typer(instruments.app, name="instruments")
app.add_typer(calibrations.app, name="calibrations")
app.add_typer(contracts.app, name="contracts")
app.add_typer(tokens.app, name="tokens")
app.add_typer(broker_auth.app, name="broker-auth")
gateways.app.command("credentials")(broker_auth.gateway_credentials)
gateways.app.command("retire")(broker_auth.retire_gateway)
app.command("grafana-roles")(grafana_tenants.grafana_roles)
dashboards_app.command("provision")(grafana_tenants.provision)


def main() -> None:  # pragma: no cover - console entry point
    app()
