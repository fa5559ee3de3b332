"""docker-compose.yml: valid against the Compose Specification's schema, every file it mounts
exists, and the pieces it wires agree with each other (broker users, Grafana provisioning)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).parent / "compose_spec" / "compose-spec.json"
SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
MOSQUITTO = REPO / "deploy" / "mosquitto"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def bind_mounts(compose: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(service, host path, container path) of every bind mount (short syntax)."""
    mounts = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith(("./", "/", "../")):
                mounts.append((name, source, target))
    return mounts


def test_the_vendored_schema_is_the_published_one() -> None:
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    # The schema names draft 2019-09 (as "http://json-schema.org/draft/2019-09/schema#").
    jsonschema.Draft201909Validator.check_schema(schema)
    # No format checker: the schema's "duration" means Go durations ("10s"), not ISO 8601.
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_refuses_what_compose_refuses(compose: dict[str, Any]) -> None:
    """The validation has teeth: a misspelt key and a bad dependency condition fail."""
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["grafana"]["volume"] = []
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(compose))
    broken["services"]["calstream"]["depends_on"]["influxdb"]["condition"] = "healthy"
    assert not validator.is_valid(broken)


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    mounts = bind_mounts(compose)
    assert len(mounts) == 6
    missing = [(s, src) for s, src, _ in mounts if not (REPO / src).exists()]
    assert not missing
    build = compose["services"]["calstream"]["build"]
    assert (REPO / build["context"] / build["dockerfile"]).is_file()
    dockerfile = (REPO / build["dockerfile"]).read_text()
    for source in re.findall(r"^COPY (\S+) ", dockerfile, flags=re.MULTILINE):
        assert (REPO / build["context"] / source).exists(), f"Dockerfile copies missing {source}"


def test_named_volumes_and_dependencies_are_declared(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("./", "/", "../")):
                assert source in compose["volumes"], f"{name}: volume {source} not declared"


def test_stack_has_the_services_of_the_design(compose: dict[str, Any]) -> None:
    services = compose["services"]
    base = {name for name, service in services.items() if "profiles" not in service}
    assert base == {"mosquitto", "influxdb", "grafana", "calstream", "simulator"}
    scale = {name for name, service in services.items() if service.get("profiles") == ["scale"]}
    assert scale == {"kafka", "calstream-worker", "calstream-ingest-1", "calstream-ingest-2"}
    assert {services[name]["command"][0] for name in scale - {"kafka"}} == {"worker", "ingest"}
    assert services["simulator"]["command"][0] == "simulate"
    assert services["influxdb"]["image"].startswith("influxdb:2.")
    assert services["grafana"]["image"].startswith("grafana/grafana:12.")
    assert "frser-sqlite-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    store = services["calstream"]["environment"]["CALSTREAM_STORE"]
    assert store.startswith("influxdb2://influxdb:8086?")
    text = COMPOSE_FILE.read_text()
    assert "# --- scale-out profile (docs/scaling.md) ---" in text


def test_the_pipeline_writes_where_grafana_reads(compose: dict[str, Any]) -> None:
    services = compose["services"]
    influx = services["influxdb"]["environment"]
    store = services["calstream"]["environment"]["CALSTREAM_STORE"]
    grafana = services["grafana"]["environment"]
    assert f"org={influx['DOCKER_INFLUXDB_INIT_ORG']}" in store
    assert f"bucket={influx['DOCKER_INFLUXDB_INIT_BUCKET']}" in store
    assert f"database={grafana['CALSTREAM_INFLUXDB_DATABASE']}" in store
    assert influx["CALSTREAM_INFLUXDB_DATABASE"] == grafana["CALSTREAM_INFLUXDB_DATABASE"]
    assert f"token={influx['DOCKER_INFLUXDB_INIT_ADMIN_TOKEN']}" in store
    assert grafana["CALSTREAM_INFLUXDB_TOKEN"] == influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    sqlite_path = Path(grafana["CALSTREAM_SQLITE_PATH"])
    work_dir = services["calstream"]["environment"]["CALSTREAM_WORK_DIR"]
    assert sqlite_path.parent == Path(work_dir)
    assert f"calstream-data:{work_dir}" in services["grafana"]["volumes"]


def test_grafana_provisioning_uses_only_variables_the_service_sets(
    compose: dict[str, Any],
) -> None:
    environment = compose["services"]["grafana"]["environment"]
    for path in sorted((PROVISIONING / "datasources").glob("*.yaml")):
        used = set(re.findall(r"\$\{(\w+)\}", path.read_text()))
        assert used <= set(environment), f"{path.name} needs {used - set(environment)}"


def test_dashboard_providers_read_the_mounted_json_folders(compose: dict[str, Any]) -> None:
    mounts = {
        target: REPO / source
        for service, source, target in bind_mounts(compose)
        if service == "grafana"
    }
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "calstream.yaml").read_text())
    for provider in providers["providers"]:
        container_path = Path(provider["options"]["path"])
        host = next(
            mounts[t] / container_path.relative_to(t)
            for t in mounts
            if container_path.is_relative_to(t)
        )
        assert sorted(p.name for p in host.glob("*.json")) == [
            "fleet.json",
            "instrument.json",
            "provider.json",
        ]
    home = Path(
        compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    )
    target = next(t for t in mounts if home.is_relative_to(t))
    assert (mounts[target] / home.relative_to(target)).is_file()


def _directives(path: Path) -> dict[str, str]:
    return dict(
        line.split(None, 1) for line in path.read_text().splitlines() if line and line[0] != "#"
    )


def test_the_broker_runs_the_shipped_configuration_with_its_password_file_and_acl(
    compose: dict[str, Any],
) -> None:
    mounts = {
        target: source for service, source, target in bind_mounts(compose) if service == "mosquitto"
    }
    assert mounts["/mosquitto/config/mosquitto.conf"] == "./deploy/mosquitto/mosquitto.conf"
    directives = _directives(MOSQUITTO / "mosquitto.conf")
    assert mounts[directives["password_file"]] == "./deploy/mosquitto/passwd"
    assert mounts[directives["acl_file"]] == "./deploy/mosquitto/acl"
    assert directives["allow_anonymous"] == "false"
    assert directives["use_username_as_clientid"] == "true"
    data = directives["persistence_location"].rstrip("/")
    assert f"mosquitto-data:{data}" in compose["services"]["mosquitto"]["volumes"]
    assert int(directives["max_queued_messages"]) > 1000


def _broker_logins(compose: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """service -> (user, client id it asks for) of every service that connects to the broker."""
    from calstream.demo.simulate import CLIENT_ID as SIMULATOR_CLIENT_ID
    from calstream.settings import Settings

    logins = {}
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        user = environment.get("CALSTREAM_MQTT_USERNAME")
        if user is None:
            continue
        command = service.get("command", ["run"])[0]
        client_id = {
            "run": environment.get(
                "CALSTREAM_CLIENT_ID", Settings.model_fields["client_id"].default
            ),
            "ingest": environment.get("CALSTREAM_INGEST_CLIENT_ID"),
            "simulate": SIMULATOR_CLIENT_ID,
        }[command]
        logins[name] = (user, client_id)
    health = " ".join(compose["services"]["mosquitto"]["healthcheck"]["test"])
    logins["mosquitto (health check)"] = (re.findall(r" -u (\S+)", health)[0], "")
    return logins


def test_every_broker_login_of_the_stack_is_a_user_of_its_own(compose: dict[str, Any]) -> None:
    """The broker uses the user name as the client id: two services sharing a user would
    drop each other's connection, and a user named after a component's client id keeps the
    logs and the documentation in one vocabulary."""
    passwd_users = {
        line.split(":", 1)[0]
        for line in (MOSQUITTO / "passwd").read_text().splitlines()
        if line.strip()
    }
    acl_users = set(re.findall(r"^user (\S+)$", (MOSQUITTO / "acl").read_text(), re.MULTILINE))
    assert passwd_users == acl_users
    logins = _broker_logins(compose)
    assert set(logins) == {
        "calstream", "simulator", "calstream-ingest-1", "calstream-ingest-2",
        "mosquitto (health check)",
    }  # fmt: skip
    users = [user for user, _ in logins.values()]
    assert len(users) == len(set(users)), logins
    for name, (user, client_id) in logins.items():
        assert user in passwd_users, f"{name} logs in as unknown {user}"
        assert client_id in ("", user), f"{name} asks for client id {client_id}, is {user}"
    for line in (MOSQUITTO / "passwd").read_text().splitlines():
        assert line.split(":", 1)[1].startswith("$7$"), "passwords are stored hashed (PBKDF2)"
