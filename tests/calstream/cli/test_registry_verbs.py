"""`calstream tenants|sites|gateways|instruments|calibrations|contracts|tokens`, as processes:
on the embedded store directly (the local principal), and against a live API with a token."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import sys as _sys
from pathlib import Path
from typing import Any

import pytest

_sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "api"))
from api_harness import Clock, LiveApi, seed, served  # noqa: E402

from storage.sqlite_store import SqliteStore  # noqa: E402

INSTRUMENT_YAML = """\
tenant: acme
site: plant
id: acme-TT-001
gateway: gw-01
measurand: temperature
unit: degC
range: {low: -50, high: 150}
tolerance: {mpe: 0.3}
period_s: 60
reference: {kind: check_standard}
description: oven probe
"""


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calstream", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON line a `--json` verb printed (it succeeded)."""
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def refusal(done: subprocess.CompletedProcess[str]) -> Any:
    """The problem a refused `--json` verb printed (exit status 1)."""
    assert done.returncode == 1, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSTREAM_")}
    env["CALSTREAM_WORK_DIR"] = str(tmp_path / "work")
    return env


def test_verbs_on_the_embedded_store(tmp_path: Path, environment: dict[str, str]) -> None:
    env = environment
    assert (
        answer(cli("tenants", "create", "--id", "acme", "--name", "Acme", "--json", env=env))[
            "tenant_id"
        ]
        == "acme"
    )
    site = answer(cli("sites", "create", "--tenant", "acme", "--id", "plant", "--json", env=env))
    assert site == {"tenant": "acme", "site_id": "plant", "name": ""}
    gateway = cli("gateways", "register", "--tenant", "acme", "--site", "plant", "--id", "gw-01",
                  env=env)  # fmt: skip
    assert gateway.returncode == 0 and "gw-01" in gateway.stdout
    document = tmp_path / "instrument.yaml"
    document.write_text(INSTRUMENT_YAML)
    registered = answer(
        cli(
            "instruments", "register", "--file", str(document), "--period", "30", "--json", env=env
        )  # fmt: skip
    )
    assert (registered["tolerance_upper"], registered["reporting_period_s"]) == (0.3, 30.0)
    recorded = answer(
        cli(
            "calibrations",
            "record",
            "acme-TT-001",
            "--certificate",
            "C-1",
            "--date",
            "2026-01-15T00:00:00Z",
            "--offset",
            "0.02",
            "--uncertainty",
            "0.06",
            "--interval-days",
            "365",
            "--json",
            env=env,
        )  # fmt: skip
    )
    assert (recorded["revision"], recorded["correction"]["offset"]) == (0, 0.02)
    amended = answer(
        cli(
            "calibrations",
            "amend",
            "acme-TT-001",
            "C-1",
            "--reason",
            "offset transposed",
            "--offset",
            "0.03",
            "--json",
            env=env,
        )  # fmt: skip
    )
    assert amended["revision"] == 1
    assert amended["amendment"]["amended_by"] == getpass.getuser()
    token = cli("tokens", "create", "--tenant", "acme", "--role", "viewer", env=env)
    assert token.returncode == 0
    assert token.stdout.count("\n") == 1 and token.stdout.startswith("cs_")
    missing = refusal(cli("instruments", "show", "acme-TT-404", "--json", env=env))
    assert (missing["status"], missing["type"]) == (404, "urn:calstream:problem:not-found")
    invalid = refusal(
        cli(
            "instruments",
            "register",
            "--tenant",
            "acme",
            "--site",
            "plant",
            "--id",
            "x-1",
            "--json",
            env=env,
        )  # fmt: skip
    )
    assert {e["pointer"] for e in invalid["errors"]} == {
        "#/gateway", "#/measurand", "#/unit", "#/range", "#/tolerance", "#/period_s",
        "#/reference",
    }  # fmt: skip

    with SqliteStore(tmp_path / "work" / "calstream.sqlite") as store:
        from metrology.tenancy import Principal

        operations = store.operations
        scope = operations.scope(Principal.local())
        trail = operations.audit_trail(scope, limit=10).items
        assert [e.operation for e in trail] == [
            "create_token", "amend_calibration", "record_calibration", "register_instrument",
            "register_gateway", "create_site", "create_tenant",
        ]  # fmt: skip
        assert {e.principal for e in trail} == {getpass.getuser()}
        principal = operations.authenticate(token.stdout.strip())
        assert (principal.tenant, principal.role.value) == ("acme", "viewer")


@pytest.fixture
def live(tmp_path: Path) -> Any:
    clock = Clock()
    store = SqliteStore(tmp_path / "served.sqlite", clock=clock)
    seed(store)
    with served(store, clock) as api:
        yield api
    store.close()


def test_verbs_against_the_live_api(live: LiveApi, environment: dict[str, str]) -> None:
    admin = live.token("acme", "admin")
    remote = ["--api", live.url, "--token", admin]
    issued = answer(cli("tokens", "create", "--tenant", "acme", "--role", "viewer", "--json",
                        *remote, env=environment))  # fmt: skip
    viewer = issued["token"]
    listed = answer(
        cli("instruments", "list", "--api", live.url, "--token", viewer, "--json", env=environment)
    )
    assert [i["instrument_id"] for i in listed["items"]] == ["acme-TT-001", "acme-TT-002"]

    env = {**environment, "CALSTREAM_API_URL": live.url, "CALSTREAM_API_TOKEN": admin}
    changed = answer(cli("instruments", "change", "acme-TT-001", "--description", "moved",
                         "--reason", "line 2", "--json", env=env))  # fmt: skip
    assert changed["description"] == "moved"
    retired = cli("instruments", "retire", "acme-TT-002", "--reason", "scrapped", env=env)
    assert retired.returncode == 0 and "retired_at" in retired.stdout
    forbidden = cli("tenants", "create", "--id", "newco", env=env)
    assert forbidden.returncode == 1 and "403" in forbidden.stderr
    hidden = refusal(cli("instruments", "show", "globex-TT-001", "--json", env=env))
    assert hidden["status"] == 404
    revoked = answer(cli("tokens", "revoke", issued["record"]["token_id"], "--reason", "done",
                         "--json", env=env))  # fmt: skip
    assert revoked["revoked_at"] is not None
    refused = refusal(cli("instruments", "list", "--api", live.url, "--token", viewer, "--json",
                          env=environment))  # fmt: skip
    assert refused["status"] == 401
    unreachable = cli("tenants", "list", "--api", "http://127.0.0.1:9", "--token", admin,
                      env=environment)  # fmt: skip
    assert unreachable.returncode == 1 and "cannot reach the API" in unreachable.stderr
