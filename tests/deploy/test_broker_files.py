"""deploy/mosquitto/ is one consistent set: the configuration the tests start is the shipped
one, every user has a password and rights, and the rights follow the fleet's tenancy."""

from __future__ import annotations

from pathlib import Path

from broker_clients import PIPELINE, acl_rules, passwd_users

from calstream.servers.mosquitto import (
    DEPLOY_ACL,
    DEPLOY_MOSQUITTO,
    DEPLOY_MOSQUITTO_CONF,
    DEPLOY_PASSWD,
    shipped_config,
)
from calstream.settings import Settings
from metrology.fleet import Fleet, TenantKind
from metrology.wire import READINGS_SUBSCRIPTION, alerts_topic, readings_topic


def directives(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_the_folder_holds_the_three_files_the_configuration_names() -> None:
    assert sorted(p.name for p in DEPLOY_MOSQUITTO.iterdir()) == ["acl", "mosquitto.conf", "passwd"]
    shipped = {words[0]: words[1:] for words in directives(DEPLOY_MOSQUITTO_CONF.read_text())}
    assert Path(shipped["password_file"][0]).name == DEPLOY_PASSWD.name
    assert Path(shipped["acl_file"][0]).name == DEPLOY_ACL.name
    assert shipped["allow_anonymous"] == ["false"]
    assert shipped["use_username_as_clientid"] == ["true"]
    assert "clientid_prefixes" not in shipped  # not to be combined with the line above


def test_the_tests_broker_is_the_shipped_file_with_only_the_machines_lines_replaced(
    tmp_path: Path,
) -> None:
    shipped = DEPLOY_MOSQUITTO_CONF.read_text().splitlines()
    started = shipped_config(1884, tmp_path).splitlines()
    if started[0] == "user root":  # root: mosquitto would drop to a user that cannot write here
        started = started[1:]
    assert len(started) == len(shipped)
    changed = {
        (before.split()[0], after)
        for before, after in zip(shipped, started, strict=True)
        if before != after
    }
    assert changed == {
        ("listener", "listener 1884 127.0.0.1"),
        ("persistence_location", f"persistence_location {tmp_path}/"),
        ("password_file", f"password_file {DEPLOY_PASSWD}"),
        ("acl_file", f"acl_file {DEPLOY_ACL}"),
    }


def test_every_user_has_a_password_and_rights_and_nothing_more() -> None:
    rules = acl_rules()
    assert sorted(passwd_users()) == sorted(rules)
    for user, granted in rules.items():
        assert granted, f"{user} may do nothing"
        for access, _ in granted:
            assert access in ("read", "write"), f"{user}: {access} (read or write, never both)"
    for line in DEPLOY_PASSWD.read_text().splitlines():
        assert line.split(":", 1)[1].startswith("$7$"), "passwords are stored hashed (PBKDF2)"


def test_calstreams_own_users_are_named_after_the_client_ids_they_ask_for() -> None:
    rules = acl_rules()
    assert Settings.model_fields["client_id"].default == PIPELINE
    assert rules[PIPELINE] == {("read", READINGS_SUBSCRIPTION), ("write", "calstream/v1/+/alerts")}
    for forwarder in ("calstream-ingest-1", "calstream-ingest-2"):
        assert rules[forwarder] == {("read", READINGS_SUBSCRIPTION)}
    assert rules["calstream-simulated-gateways"] == {("write", READINGS_SUBSCRIPTION)}
    assert rules["calstream-healthcheck"] == {("read", "$SYS/broker/uptime")}


def test_each_gateway_writes_its_own_topic_and_reads_its_tenants_alerts(
    example_fleet: Fleet,
) -> None:
    rules = acl_rules()
    gateways = {(i.tenant, i.site, i.gateway) for i in example_fleet.instruments.values()}
    assert len(gateways) == 12
    for tenant, site, gateway in gateways:
        assert rules[f"{tenant}-{site}-{gateway}"] == {
            ("write", readings_topic(tenant, site, gateway)),
            ("read", alerts_topic(tenant)),
        }


def test_a_provider_reads_its_clients_alerts_only(example_fleet: Fleet) -> None:
    rules = acl_rules()
    providers = [
        t for t in example_fleet.tenants.values() if t.kind is TenantKind.CALIBRATION_PROVIDER
    ]
    assert providers
    for provider in providers:
        assert rules[f"provider-{provider.tenant_id}"] == {
            ("read", alerts_topic(client)) for client in provider.clients
        }
