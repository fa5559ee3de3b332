"""``calstream dashboards export`` and ``push`` (without a Grafana server)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from calstream.cli import app
from dashboards.build import JSON_DIR

runner = CliRunner()


@pytest.mark.parametrize(
    ("flavour", "expected"),
    [("all", {"sqlite", "influxdb"}), ("sqlite", {"sqlite"}), ("influxdb", {"influxdb"})],
)
def test_export_writes_the_committed_dashboards(
    tmp_path: Path, flavour: str, expected: set[str]
) -> None:
    result = runner.invoke(app, ["dashboards", "export", str(tmp_path), "--flavour", flavour])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    assert {p.parts[0] for p in written} == expected
    assert len(written) == 3 * len(expected)
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (JSON_DIR / relative).read_bytes()
    assert result.output.split() == [str(tmp_path / p) for p in written_in_order(written)]


def written_in_order(written: list[Path]) -> list[Path]:
    order = {"sqlite": 0, "influxdb": 1, "fleet.json": 0, "instrument.json": 1, "provider.json": 2}
    return sorted(written, key=lambda p: (order[p.parts[0]], order[p.parts[1]]))


def test_export_refuses_an_unknown_flavour(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dashboards", "export", str(tmp_path), "--flavour", "mysql"])
    assert result.exit_code == 2
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(
    importlib.util.find_spec("grafana_client") is not None,
    reason="grafana-client is installed: the missing-extra message cannot be shown",
)
def test_push_without_grafana_client_says_how_to_install_it() -> None:
    result = runner.invoke(
        app, ["dashboards", "push", "--url", "http://127.0.0.1:9", "--token", "t"]
    )
    assert result.exit_code == 2
    assert "pip install 'calstream[grafana]'" in " ".join(result.output.split())


GRAFANA = os.environ.get("CALSTREAM_TEST_GRAFANA", "")


@pytest.mark.skipif(
    not GRAFANA or importlib.util.find_spec("grafana_client") is None,
    reason="no Grafana server configured: set CALSTREAM_TEST_GRAFANA=URL,TOKEN (a service "
    "account token with dashboard write) and `pip install 'calstream[grafana]'` to push to one",
)
def test_push_saves_every_dashboard_in_a_real_grafana() -> None:
    """Against a live Grafana 12: push, then read every dashboard back by its uid."""
    import grafana_client  # type: ignore[import-not-found, unused-ignore]

    url, _, token = GRAFANA.partition(",")
    result = runner.invoke(app, ["dashboards", "push", "--url", url, "--token", token])
    assert result.exit_code == 0, result.output
    api = grafana_client.GrafanaApi.from_url(url, credential=token)
    for flavour in ("sqlite", "influxdb"):
        for name in ("fleet", "instrument", "provider"):
            uid = f"calstream-{name}-{flavour}"
            stored = api.dashboard.get_dashboard(uid)
            committed = json.loads((JSON_DIR / flavour / f"{name}.json").read_text())
            assert stored["dashboard"]["title"] == committed["title"]
            assert len(stored["dashboard"]["panels"]) == len(committed["panels"])
            assert stored["meta"]["folderUid"] == f"calstream-{flavour}"
