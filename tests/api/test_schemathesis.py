"""Schemathesis against the OpenAPI document the live API serves: thousands of generated requests,
valid and invalid, on the embedded (SQLite) store and on a PostgreSQL registry.

Every answer must be documented (status, content type, headers, body schema), no answer may be a
server error, and data the document calls invalid must be refused. The token is an admin's of
``acme`` (so changes go through, not only refusals). ``revoke_token`` runs on its own, with a
token of its own: schemathesis learns token ids from the answers and would revoke the token the
rest of the run uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from api_harness import Clock, LiveApi, problem, seed, served

from storage.select import open_store

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,negative_data_rejection"
)
EXAMPLES = 20
"""Generated cases per operation and phase (coverage, fuzzing): ~2,300 requests a run."""


def schemathesis(
    live: LiveApi, tmp_path: Path, *options: str, role: str = "admin"
) -> dict[str, Any]:
    """Run schemathesis as a process against ``live``; its JSON report."""
    report = tmp_path / f"schemathesis-{len(list(tmp_path.glob('schemathesis-*')))}.json"
    token = live.token("acme", role)
    done = subprocess.run(
        [
            str(SCHEMATHESIS), "run", f"{live.url}/v1/openapi.json",
            "--header", f"Authorization: Bearer {token}", "--checks", CHECKS,
            "--max-examples", str(EXAMPLES), "--seed", "20260301", "--phases", "coverage,fuzzing",
            "--workers", "1", "--report", "json", "--report-json-path", str(report), *options,
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert report.exists(), done.stdout + done.stderr
    result: dict[str, Any] = json.loads(report.read_text())
    assert done.returncode == 0, done.stdout[-20_000:]
    assert result["failures"] == [] and result["errors"] == [], done.stdout[-20_000:]
    assert result["operations"]["tested"] == result["operations"]["selected"]
    return result


def _whole_document(live: LiveApi, tmp_path: Path, *, without: tuple[str, ...] = ()) -> int:
    """Every operation but ``revoke_token`` (and ``without``), then ``revoke_token`` alone;
    returns the number of generated requests."""
    excluded = ["--exclude-operation-id", "revoke_token"]
    for operation in without:
        excluded += ["--exclude-operation-id", operation]
    most = schemathesis(live, tmp_path, *excluded)
    revoke = schemathesis(live, tmp_path, "--include-operation-id", "revoke_token")
    operations = most["operations"]["tested"] + revoke["operations"]["tested"]
    assert operations == most["operations"]["total"] - len(without)
    generated: int = most["test_cases"]["generated"] + revoke["test_cases"]["generated"]
    return generated


def test_the_embedded_store_answers_as_documented(live: LiveApi, tmp_path: Path) -> None:
    assert _whole_document(live, tmp_path) >= 2_000


def test_a_postgresql_registry_answers_as_documented(
    postgres: Any, victoria_metrics: Any, tmp_path: Path
) -> None:
    """The production layout: registry on PostgreSQL, series on an InfluxDB v2 write API.

    Reading a series back from InfluxDB is not built yet: that operation answers 501 with a
    problem (checked here) and is left out of the generated run.
    """
    store = open_store(victoria_metrics.store_url, postgres.url)
    clock = Clock()
    try:
        seed(store)
        with served(store, clock) as live:
            assert _whole_document(live, tmp_path, without=("instrument_series",)) >= 2_000
            series = live.as_role("acme", "viewer").get("/v1/instruments/acme-TT-001/series")
            assert series.status_code == 501
            assert problem(series)["type"] == "urn:calstream:problem:not-implemented"
            hidden = live.as_role("acme", "viewer").get("/v1/instruments/globex-TT-001/series")
            assert hidden.status_code == 404
    finally:
        store.close()
