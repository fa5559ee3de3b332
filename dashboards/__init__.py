"""Grafana dashboards as code: fleet health, instrument detail, calibration provider.

Each dashboard is described once (:mod:`dashboards.fleet`, :mod:`dashboards.instrument`,
:mod:`dashboards.provider`: rows of panels, what each shows and needs) and built with
``grafana-foundation-sdk`` in two flavours that differ only in datasource and query text:
``sqlite`` (:mod:`dashboards.queries_sqlite`, the embedded store through
``frser-sqlite-datasource``) and ``influxdb`` (:mod:`dashboards.queries_influxql`).

``python -m dashboards.build`` regenerates the committed JSON under ``dashboards/json/``;
``calstream dashboards export DIR`` writes it elsewhere, ``calstream dashboards push`` saves it
in a running Grafana (``docs/deploy.md``).

Nothing is imported here: ``calstream`` loads :mod:`dashboards.cli` at start-up, and the SDK
is only needed when dashboards are built.
"""
