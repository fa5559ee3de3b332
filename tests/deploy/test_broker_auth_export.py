"""The broker's logins generated from the registry, on a real mosquitto started from the shipped
mosquitto.conf with the exported password file and ACL (``calstream broker-auth export``).

Gateways are registered through the registry operations, their credentials issued, the files
exported; every change afterwards (a contract ended, a gateway retired, a password issued again)
reaches the running broker by exporting again and sending it SIGHUP. As in
test_broker_security.py, a message "never reaches" a subscriber when a later message from the
same publisher, which the ACL allows, has reached it: mosquitto handles one client's packets in
order.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker_clients import PIPELINE, Probe, acl_rules, wait_until
from typer.testing import CliRunner

from calstream.cli import app as cli
from calstream.cli import broker_auth
from calstream.servers.mosquitto import (
    DEPLOY_ACL,
    DEPLOY_PASSWD,
    LocalMosquitto,
    mosquitto_binary,
    shipped_config,
)
from metrology.fleet import Fleet
from metrology.tenancy import Principal
from metrology.wire import READINGS_SUBSCRIPTION, alerts_topic, readings_topic
from storage.registry.broker_access import BrokerAccess, mosquitto_verify
from storage.sqlite_store import SqliteStore

NOT_AUTHORIZED = 135
LOCAL = Principal.local()
PIPELINE_PASSWORD = "pipeline-secret"
COMPONENTS = ("calstream-ingest-1", "calstream-ingest-2", "calstream-simulated-gateways",
              "calstream-healthcheck")  # fmt: skip
runner = CliRunner()


class ExportedMosquitto(LocalMosquitto):
    """mosquitto from the shipped configuration with the exported password file and ACL.

    Besides the listener and the persistence folder, only the two file paths and the log are
    changed: the log goes to a file mosquitto writes itself, with ``information`` messages, so
    the test sees "Reloading config." when it is written (standard output into a file is
    written out in blocks) and knows the broker has re-read its files.
    """

    def __init__(self, folder: Path, passwd: Path, acl: Path) -> None:
        super().__init__(folder, secured=True)
        self.broker_log = folder / "broker.log"
        replaced = {
            f"password_file {DEPLOY_PASSWD}": f"password_file {passwd}",
            f"acl_file {DEPLOY_ACL}": f"acl_file {acl}",
            "log_dest stdout": f"log_dest file {self.broker_log}\nlog_type information",
        }
        lines = shipped_config(self.port, folder).splitlines()
        assert all(line in lines for line in replaced)
        self.config.write_text("\n".join(replaced.get(line, line) for line in lines) + "\n")

    def reloads(self) -> int:
        if not self.broker_log.exists():
            return 0
        return self.broker_log.read_text(errors="replace").count("Reloading config.")

    def reload(self) -> None:
        """SIGHUP, then wait until the broker has begun re-reading its files (it handles no
        client before it has finished)."""
        assert self.process is not None
        before = self.reloads()
        os.kill(self.process.pid, signal.SIGHUP)
        assert wait_until(lambda: self.reloads() > before)


def components_file(folder: Path) -> Path:
    """calstream's own users, written by the real mosquitto_passwd."""
    path = folder / "components.passwd"
    for user, password in [(PIPELINE, PIPELINE_PASSWORD), *((c, f"{c}-pw") for c in COMPONENTS)]:
        flags = ["-b"] if path.exists() else ["-c", "-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(path), user, password], check=True)
    return path


def export(store: Path, components: Path, out: Path) -> None:
    result = runner.invoke(
        broker_auth.app,
        ["export", "--out", str(out), "--components", str(components),
         "--store", f"sqlite:///{store}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(out / "passwd"), str(out / "acl")]


def logs_in(broker: LocalMosquitto, user: str, password: str) -> bool:
    probe = Probe(user, password=password, protocol=mqtt.MQTTv5)
    accepted = not probe.connect(broker).is_failure
    if accepted:
        probe.close()
    return accepted


def connected(broker: LocalMosquitto, user: str, password: str, topic: str | None = None) -> Probe:
    probe = Probe(user, password=password, protocol=mqtt.MQTTv5)
    assert not probe.connect(broker).is_failure, user
    if topic is not None:
        probe.subscribe(topic)
    return probe


class Fixture:
    """A registry file with three manufacturers and a provider, issued credentials, exported."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db = folder / "registry" / "calstream.sqlite"
        self.out = folder / "broker"
        self.components = components_file(folder)
        self.passwords: dict[str, str] = {}
        with SqliteStore(self.db) as store:
            ops = store.operations
            for tenant, kind in (("acme", "manufacturer"), ("globex", "manufacturer"),
                                 ("initech", "manufacturer"),
                                 ("calprov", "calibration_provider")):  # fmt: skip
                ops.create_tenant(LOCAL, {"id": tenant, "kind": kind})
            for tenant, site in (("acme", "north"), ("globex", "main"), ("initech", "hq")):
                ops.create_site(LOCAL, {"tenant": tenant, "id": site})
            for tenant, site, gateway in (("acme", "north", "gw-01"), ("acme", "north", "gw-02"),
                                          ("globex", "main", "gw-01")):  # fmt: skip
                ops.register_gateway(LOCAL, {"tenant": tenant, "site": site, "id": gateway})
                self.issue(store, tenant, site, gateway)
            ops.register_gateway(LOCAL, {"tenant": "initech", "site": "hq", "id": "gw-01"})
            for client in ("acme", "globex"):
                ops.create_contract(LOCAL, {"provider": "calprov", "client": client})
            issued = BrokerAccess(ops).issue_provider_credentials(LOCAL, {"tenant": "calprov"})
            self.passwords[issued.username] = issued.password
        export(self.db, self.components, self.out)

    def issue(self, store: SqliteStore, tenant: str, site: str, gateway: str) -> str:
        issued = BrokerAccess(store.operations).issue_gateway_credentials(
            LOCAL, {"tenant": tenant, "site": site, "gateway": gateway}
        )
        self.passwords[issued.username] = issued.password
        return issued.password

    def export(self) -> None:
        export(self.db, self.components, self.out)


@pytest.fixture
def exported(tmp_path: Path) -> Fixture:
    return Fixture(tmp_path)


@pytest.fixture
def broker(exported: Fixture, tmp_path: Path) -> Iterator[ExportedMosquitto]:
    try:
        mosquitto_binary()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    started = ExportedMosquitto(tmp_path / "mosquitto", exported.out / "passwd",
                                exported.out / "acl")  # fmt: skip
    started.start()
    try:
        yield started
    finally:
        started.kill()


def test_the_export_is_the_registry_as_it_is_and_the_same_twice(exported: Fixture) -> None:
    passwd = (exported.out / "passwd").read_bytes()
    acl = (exported.out / "acl").read_bytes()
    exported.export()
    assert (exported.out / "passwd").read_bytes() == passwd
    assert (exported.out / "acl").read_bytes() == acl
    assert sorted(p.name for p in exported.out.iterdir()) == ["acl", "passwd"]
    hashes = dict(line.split(":", 1) for line in passwd.decode().splitlines())
    assert list(hashes) == [PIPELINE, *COMPONENTS, "acme-north-gw-01", "acme-north-gw-02",
                            "globex-main-gw-01", "provider-calprov"]  # fmt: skip
    # calstream's users copied from mosquitto_passwd's file, the others from the registry.
    assert mosquitto_verify(PIPELINE_PASSWORD, hashes[PIPELINE])
    for user, password in exported.passwords.items():
        assert mosquitto_verify(password, hashes[user]), user
    rules = acl_rules(acl.decode())
    assert rules["acme-north-gw-01"] == {
        ("write", readings_topic("acme", "north", "gw-01")), ("read", alerts_topic("acme"))
    }  # fmt: skip
    assert rules["provider-calprov"] == {("read", alerts_topic("acme")),
                                         ("read", alerts_topic("globex"))}  # fmt: skip
    # initech's gateway has no credentials: no user, and the command says so.
    assert "initech" not in acl.decode()
    result = runner.invoke(
        broker_auth.app,
        ["export", "--out", str(exported.out), "--components", str(exported.components),
         "--store", f"sqlite:///{exported.db}"],
    )  # fmt: skip
    assert "initech/hq/gw-01" in result.stderr


def test_the_example_fleet_exports_the_shipped_acl(example_fleet: Fleet, tmp_path: Path) -> None:
    """deploy/mosquitto/acl is what the export writes for the example fleet, rule for rule."""
    db = tmp_path / "calstream.sqlite"
    with SqliteStore(db) as store:
        store.register_fleet(example_fleet)
        access = BrokerAccess(store.operations)
        for tenant, site, gateway in sorted(example_fleet.gateways):
            access.issue_gateway_credentials(
                LOCAL, {"tenant": tenant, "site": site, "gateway": gateway}
            )
        access.issue_provider_credentials(LOCAL, {"tenant": "calibra"})
    export(db, components_file(tmp_path), tmp_path / "broker")
    assert acl_rules((tmp_path / "broker" / "acl").read_text()) == acl_rules()


def test_a_gateway_writes_its_own_topic_and_reads_its_tenants_alerts_only(
    exported: Fixture, broker: ExportedMosquitto
) -> None:
    pw = exported.passwords
    pipeline = connected(broker, PIPELINE, PIPELINE_PASSWORD, READINGS_SUBSCRIPTION)
    gateway = connected(broker, "acme-north-gw-01", pw["acme-north-gw-01"], "calstream/v1/#")
    own = readings_topic("acme", "north", "gw-01")
    for foreign in (readings_topic("acme", "north", "gw-02"),
                    readings_topic("globex", "main", "gw-01"), alerts_topic("acme")):  # fmt: skip
        assert gateway.publish(foreign, b"forged").value == NOT_AUTHORIZED, foreign
    assert not gateway.publish(own, b"own").is_failure
    assert wait_until(lambda: len(pipeline.received()) >= 1)
    assert pipeline.received() == [(own, b"own")]
    for tenant in ("globex", "initech", "acme"):
        assert not pipeline.publish(alerts_topic(tenant), tenant.encode()).is_failure
    assert wait_until(lambda: len(gateway.received()) >= 1)
    assert gateway.received() == [(alerts_topic("acme"), b"acme")]
    for probe in (pipeline, gateway):
        probe.close()


def test_a_provider_reads_a_clients_alerts_only_while_its_contract_is_in_force(
    exported: Fixture, broker: ExportedMosquitto
) -> None:
    pipeline = connected(broker, PIPELINE, PIPELINE_PASSWORD)
    provider = connected(broker, "provider-calprov", exported.passwords["provider-calprov"],
                         alerts_topic("+"))  # fmt: skip
    for tenant in ("initech", "acme", "globex"):
        pipeline.publish(alerts_topic(tenant), b"1")
    assert wait_until(lambda: len(provider.received()) >= 2)
    assert provider.received() == [(alerts_topic("acme"), b"1"), (alerts_topic("globex"), b"1")]

    with SqliteStore(exported.db) as store:
        ops = store.operations
        (acme,) = [c for c in ops.contracts(ops.scope(LOCAL)) if c.client == "acme"]
        ops.end_contract(LOCAL, {"contract_id": acme.contract_id, "reason": "tender lost"})
    exported.export()
    assert acl_rules((exported.out / "acl").read_text())["provider-calprov"] == {
        ("read", alerts_topic("globex"))
    }
    broker.reload()
    for tenant in ("acme", "globex"):
        pipeline.publish(alerts_topic(tenant), b"2")
    assert wait_until(lambda: len(provider.received()) >= 3)
    assert provider.received()[2:] == [(alerts_topic("globex"), b"2")]
    # Same connection, same subscription: the ACL is applied to every delivery.
    assert provider.client.is_connected()
    provider.close()
    # No contract in force at all: the provider's block grants nothing, and mosquitto takes
    # such a file (a globex gateway still gets its tenant's alerts after the reload).
    with SqliteStore(exported.db) as store:
        ops = store.operations
        (globex,) = [c for c in ops.contracts(ops.scope(LOCAL)) if c.client == "globex"]
        ops.end_contract(LOCAL, {"contract_id": globex.contract_id, "reason": "tender lost"})
    exported.export()
    assert acl_rules((exported.out / "acl").read_text())["provider-calprov"] == set()
    broker.reload()
    gateway = connected(broker, "globex-main-gw-01", exported.passwords["globex-main-gw-01"],
                        alerts_topic("globex"))  # fmt: skip
    pipeline.publish(alerts_topic("globex"), b"3")
    assert wait_until(lambda: gateway.received() == [(alerts_topic("globex"), b"3")])
    assert logs_in(broker, "provider-calprov", exported.passwords["provider-calprov"])
    for probe in (pipeline, gateway):
        probe.close()


def test_a_retired_gateway_and_a_replaced_password_stop_logging_in_after_the_reload(
    exported: Fixture, broker: ExportedMosquitto
) -> None:
    pw = dict(exported.passwords)
    with SqliteStore(exported.db) as store:
        BrokerAccess(store.operations).retire_gateway(
            LOCAL, {"tenant": "acme", "site": "north", "gateway": "gw-02", "reason": "replaced"}
        )
        new_password = exported.issue(store, "acme", "north", "gw-01")
    # Until the export is loaded, the broker goes on with what it has.
    assert logs_in(broker, "acme-north-gw-01", pw["acme-north-gw-01"])
    assert not logs_in(broker, "acme-north-gw-01", new_password)
    retiring = connected(broker, "acme-north-gw-02", pw["acme-north-gw-02"])
    exported.export()
    assert "acme-north-gw-02" not in (exported.out / "passwd").read_text()
    broker.reload()
    # mosquitto drops the connection of a user its password file no longer has...
    assert wait_until(lambda: not retiring.client.is_connected())
    retiring.client.loop_stop()
    # ...and refuses it from then on; the old password of a re-issued login too.
    assert not logs_in(broker, "acme-north-gw-02", pw["acme-north-gw-02"])
    assert not logs_in(broker, "acme-north-gw-01", pw["acme-north-gw-01"])
    assert logs_in(broker, "acme-north-gw-01", new_password)
    assert logs_in(broker, "globex-main-gw-01", pw["globex-main-gw-01"])
    assert logs_in(broker, PIPELINE, PIPELINE_PASSWORD)


def test_credentials_and_retirement_from_the_command_line(exported: Fixture) -> None:
    store = ["--store", f"sqlite:///{exported.db}"]
    issued = runner.invoke(cli, ["gateways", "credentials", "initech/hq/gw-01", *store])
    assert issued.exit_code == 0, issued.output
    user, password = issued.stdout.strip().split("\t")
    assert user == "initech-hq-gw-01" and len(password) == 43
    assert "shown once" in " ".join(issued.stderr.split())
    provider = runner.invoke(broker_auth.app, ["provider-credentials", "calprov", *store])
    assert provider.exit_code == 0, provider.output
    provider_user, provider_password = provider.stdout.strip().split("\t")
    exported.export()
    hashes = dict(line.split(":", 1) for line in (exported.out / "passwd").read_text().split())
    assert mosquitto_verify(password, hashes[user])
    assert mosquitto_verify(provider_password, hashes[provider_user])
    assert not mosquitto_verify(exported.passwords["provider-calprov"], hashes[provider_user])

    retired = runner.invoke(
        cli, ["gateways", "retire", "initech/hq/gw-01", "--reason", "moved", *store]
    )
    assert retired.exit_code == 0, retired.output
    assert retired.stdout.strip() == "initech/hq/gw-01\tretired"
    exported.export()
    assert user not in (exported.out / "passwd").read_text()
    for args, message in (
        (["credentials", "initech/hq", *store], "name it TENANT/SITE/GATEWAY"),
        (["credentials", "initech/hq/gw-01", *store], "was retired at"),
        (["credentials", "initech/hq/gw-99", *store], "initech/hq/gw-99 is not registered"),
        (["retire", "acme/north/gw-01", *store], "Missing option '--reason'"),
    ):
        refused = runner.invoke(cli, ["gateways", *args])
        assert refused.exit_code == 2, args
        assert message in " ".join(refused.output.split()), refused.output
    missing = runner.invoke(
        broker_auth.app,
        ["export", "--out", str(exported.out), "--components", str(exported.components),
         "--forwarders", "3", *store],
    )  # fmt: skip
    assert missing.exit_code == 2
    assert "no password for calstream's user 'calstream-ingest-3'" in " ".join(
        missing.output.split()
    )
