"""The broker as shipped (deploy/mosquitto/): logins, client ids bound to users, the ACL.

Every test runs Debian's mosquitto from the shipped configuration, password file and ACL
(``secured_mosquitto``), and logs in with the shipped default passwords. A message "never
reaches" a subscriber when a later message from the same client, which the ACL allows, has
reached it: mosquitto handles one client's packets in order.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from broker_clients import (
    PIPELINE,
    Probe,
    acl_rules,
    broker_log_count,
    default_password,
    passwd_users,
    wait_until,
)

from calstream.servers.mosquitto import LocalMosquitto
from edge_sim.gateway import GatewayPublisher
from edge_sim.simulator import FleetSimulator, GatewayBatch
from ingest.shared_subscriber import SharedSubscriber
from ingest.subscriber import DurableSubscriber, InboundMessage
from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY
from metrology.wire import READINGS_SUBSCRIPTION, alerts_topic, readings_topic

NOT_AUTHORIZED = 135  # MQTT 5 reason code of a refused PUBLISH


def gateway_user(tenant: str, site: str, gateway: str) -> str:
    return f"{tenant}-{site}-{gateway}"


def pipeline_subscriber(broker: LocalMosquitto) -> DurableSubscriber:
    """The pipeline's durable subscription, as `calstream run` makes it."""
    subscriber = DurableSubscriber(
        broker.host,
        broker.port,
        client_id=PIPELINE,
        topic=READINGS_SUBSCRIPTION,
        username=PIPELINE,
        password=default_password(PIPELINE),
    )
    subscriber.start()
    return subscriber


def drain(subscriber: DurableSubscriber, expected: int, timeout: float = 30.0) -> list[str]:
    """Take and acknowledge messages until ``expected`` arrived (or ``timeout``); their topics."""
    topics: list[str] = []

    def take() -> bool:
        batch: list[InboundMessage] = subscriber.get_batch(1_000, timeout=0.2)
        subscriber.ack(batch)
        topics.extend(message.topic for message in batch)
        return len(topics) >= expected

    wait_until(take, timeout)
    topics.extend(message.topic for message in subscriber.get_batch(1_000, timeout=0.5))
    return topics


def subscribed(subscriber: DurableSubscriber, gateway: Probe, topic: str) -> None:
    """Wait until a new subscription is in place: the broker confirms it after ``start()``
    returned, and a message published before that reaches nobody. ``gateway`` publishes on
    ``topic`` until the subscriber gets a message; those are taken and acknowledged."""

    def arrived() -> bool:
        gateway.publish(topic, b"before counting")
        batch = subscriber.get_batch(100, timeout=0.2)
        subscriber.ack(batch)
        return bool(batch)

    assert wait_until(arrived, 10)
    subscriber.ack(subscriber.get_batch(100, timeout=0.5))


@pytest.fixture
def fleet_batches(example_fleet: Fleet) -> dict[str, list[GatewayBatch]]:
    """Two simulated days of the example fleet, by the user of the gateway that sends them."""
    end = example_fleet.as_of or 0.0
    by_user: dict[str, list[GatewayBatch]] = {}
    for batch in FleetSimulator(example_fleet, seed=3, start=end - 2 * SECONDS_PER_DAY, end=end):
        user = gateway_user(batch.tenant, batch.site, batch.gateway)
        by_user.setdefault(user, []).append(batch)
    return by_user


def gateway_publisher(broker: LocalMosquitto, user: str) -> GatewayPublisher:
    publisher = GatewayPublisher(client_id=user, username=user, password=default_password(user))
    publisher.connect(broker.host, broker.port)
    return publisher


# --- logins --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_anonymous_clients_and_wrong_passwords_are_refused(
    secured_mosquitto: LocalMosquitto, protocol: int
) -> None:
    anonymous = Probe(None, client_id="anyone", protocol=protocol)
    assert anonymous.connect(secured_mosquitto).is_failure
    assert str(anonymous.connack) == "Not authorized"
    wrong = Probe(PIPELINE, password="guessed", protocol=protocol)
    assert wrong.connect(secured_mosquitto).is_failure
    unknown = Probe("intruder", protocol=protocol)
    assert unknown.connect(secured_mosquitto).is_failure


def test_every_shipped_user_logs_in_with_its_documented_default_password(
    secured_mosquitto: LocalMosquitto,
) -> None:
    users = passwd_users()
    assert len(users) == len(set(users)) == len(acl_rules()) == 18
    for user in users:
        probe = Probe(user)
        assert not probe.connect(secured_mosquitto).is_failure, user
        probe.close()


# --- client ids bound to users -------------------------------------------------------------------


def test_a_gateway_with_the_pipelines_client_id_takes_over_nothing_and_nothing_is_lost(
    secured_mosquitto: LocalMosquitto,
    fleet_batches: dict[str, list[GatewayBatch]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A gateway user connects again and again under the pipeline's client id (MQTT 3.1.1 and 5,
    clean and durable) while every other gateway of the fleet publishes: the pipeline is never
    disconnected and receives every message the gateways published meanwhile. Then the same
    attempt while the pipeline is away, with a clean session that would wipe its queue: the
    pipeline comes back to its session and every message queued for it."""
    attacker = "acme-north-gw-03"
    senders = sorted(set(fleet_batches) - {attacker})
    assert len(senders) == 11
    caplog.set_level(logging.INFO, logger="ingest.subscriber")
    pipeline = pipeline_subscriber(secured_mosquitto)
    own_gateway = Probe(attacker)
    assert not own_gateway.connect(secured_mosquitto).is_failure
    subscribed(pipeline, own_gateway, readings_topic("acme", "north", "gw-03"))
    own_gateway.close()
    publishers = {user: gateway_publisher(secured_mosquitto, user) for user in senders}
    half = {user: len(batches) // 2 for user, batches in fleet_batches.items()}

    def publish_first_half(user: str) -> None:
        publishers[user].publish_all(fleet_batches[user][: half[user]])

    threads = [threading.Thread(target=publish_first_half, args=(u,)) for u in senders]
    for thread in threads:
        thread.start()
    attempts = [
        (mqtt.MQTTv311, True),
        (mqtt.MQTTv311, False),
        (mqtt.MQTTv5, True),
        (mqtt.MQTTv5, False),
    ] * 5
    for protocol, clean in attempts:
        probe = Probe(attacker, client_id=PIPELINE, protocol=protocol, clean=clean)
        assert not probe.connect(secured_mosquitto).is_failure  # a valid login...
        probe.close()
        assert pipeline.connected  # ...that leaves the pipeline's connection alone
    for thread in threads:
        thread.join(60)
    for publisher in publishers.values():
        assert publisher.flush(30)
    topic = {
        user: readings_topic(first.tenant, first.site, first.gateway)
        for user in senders
        for first in fleet_batches[user][:1]
    }
    published = Counter({topic[user]: publishers[user].messages_acked for user in senders})
    assert sum(published.values()) == sum(half[u] for u in senders)

    received = drain(pipeline, sum(published.values()))
    assert Counter(received) == published
    assert pipeline.connected
    assert [r.getMessage() for r in caplog.records if r.name == "ingest.subscriber"] == [
        f"subscribed to {READINGS_SUBSCRIPTION} (session new)"
    ], "the pipeline's connection dropped"

    # The pipeline away: the gateways publish the rest, queued in its session; the attacker
    # connects with a clean session under its id, which would discard that queue.
    pipeline.stop()
    for user in senders:
        publishers[user].publish_all(fleet_batches[user][half[user] :])
    for protocol in (mqtt.MQTTv311, mqtt.MQTTv5):
        probe = Probe(attacker, client_id=PIPELINE, protocol=protocol, clean=True)
        assert not probe.connect(secured_mosquitto).is_failure
        probe.close()
    for publisher in publishers.values():
        assert publisher.flush(30)
    queued = Counter({topic[user]: publishers[user].messages_acked for user in senders})
    queued -= published
    assert sum(queued.values()) == sum(len(fleet_batches[u]) - half[u] for u in senders)
    pipeline = pipeline_subscriber(secured_mosquitto)
    assert Counter(drain(pipeline, sum(queued.values()))) == queued
    pipeline.stop()
    for publisher in publishers.values():
        publisher.close()

    # The broker's own record (its log is written out when it stops): the pipeline connected
    # twice, never displaced; each attempt was renamed after the attacker's user.
    secured_mosquitto.stop()
    assert broker_log_count(secured_mosquitto, rf" as {PIPELINE} \(") == 2
    assert broker_log_count(secured_mosquitto, rf" as {attacker} \(") == len(attempts) + 3
    assert broker_log_count(secured_mosquitto, rf"Client {PIPELINE} already connected") == 0


def test_the_forwarders_mqtt5_sessions_survive_a_restart(
    secured_mosquitto: LocalMosquitto,
) -> None:
    """An ingest forwarder's durable MQTT 5 session (shared subscription, session expiry) is
    kept under its user while it is away, as before the client ids were bound to users."""

    def forwarder() -> SharedSubscriber:
        subscriber = SharedSubscriber(
            secured_mosquitto.host,
            secured_mosquitto.port,
            client_id="calstream-ingest-1",
            group="calstream-ingest",
            username="calstream-ingest-1",
            password=default_password("calstream-ingest-1"),
        )
        subscriber.start()
        return subscriber

    gateway = Probe("nordfab-oslo-gw-02")
    assert not gateway.connect(secured_mosquitto).is_failure
    topic = readings_topic("nordfab", "oslo", "gw-02")
    first = forwarder()
    subscribed(first, gateway, topic)
    for n in range(5):
        gateway.publish(topic, b"live %d" % n)
    assert len(drain(first, 5)) == 5
    first.stop()
    for n in range(7):
        gateway.publish(topic, b"while away %d" % n)
    again = forwarder()
    assert drain(again, 7) == [topic] * 7
    again.stop()
    gateway.close()


# --- the ACL -------------------------------------------------------------------------------------


def test_a_gateway_publishes_into_its_own_topic_only(secured_mosquitto: LocalMosquitto) -> None:
    pipeline = Probe(PIPELINE, client_id="ignored: the broker uses the user name")
    assert not pipeline.connect(secured_mosquitto).is_failure
    assert [c.value for c in pipeline.subscribe("calstream/v1/#")] == [1]
    gateway = Probe("acme-north-gw-01", protocol=mqtt.MQTTv5)
    assert not gateway.connect(secured_mosquitto).is_failure
    foreign = [
        readings_topic("acme", "north", "gw-02"),  # another gateway of the site
        readings_topic("acme", "south", "gw-01"),  # another site of the tenant
        readings_topic("nordfab", "oslo", "gw-01"),  # another tenant
        readings_topic("nordfab", "north", "gw-01"),  # another tenant, same site and gateway names
        alerts_topic("acme"),  # its tenant's alerts: the pipeline's to publish
        "calstream/v1/acme/north/gw-01/readings/more",
    ]
    for topic in foreign:
        assert gateway.publish(topic, b"forged").value == NOT_AUTHORIZED, topic
    own = readings_topic("acme", "north", "gw-01")
    assert not gateway.publish(own, b"own").is_failure
    assert wait_until(lambda: len(pipeline.received()) >= 1)
    assert pipeline.received() == [(own, b"own")]

    # MQTT 3.1.1 has no reason code in a PUBACK: the forged message is dropped all the same.
    old_gateway = Probe("acme-north-gw-02")
    assert not old_gateway.connect(secured_mosquitto).is_failure
    old_gateway.publish(readings_topic("nordfab", "oslo", "gw-01"), b"forged")
    old_gateway.publish(readings_topic("acme", "north", "gw-01"), b"forged")
    old_gateway.publish(readings_topic("acme", "north", "gw-02"), b"own")
    assert wait_until(lambda: len(pipeline.received()) >= 2)
    assert pipeline.received() == [
        (own, b"own"),
        (readings_topic("acme", "north", "gw-02"), b"own"),
    ]
    for probe in (pipeline, gateway, old_gateway):
        probe.close()


def test_gateways_read_their_tenants_alerts_and_providers_their_clients(
    secured_mosquitto: LocalMosquitto,
) -> None:
    pipeline = Probe(PIPELINE)
    assert not pipeline.connect(secured_mosquitto).is_failure
    acme_gateway = Probe("acme-south-gw-01")
    nordfab_gateway = Probe("nordfab-bergen-gw-03")
    provider = Probe("provider-calibra")
    for probe in (acme_gateway, nordfab_gateway, provider):
        assert not probe.connect(secured_mosquitto).is_failure
        # mosquitto grants the subscription and filters every delivery through the ACL
        assert [c.value for c in probe.subscribe("calstream/v1/#")] == [1]
    for tenant in ("nordfab", "acme", "other"):
        assert not pipeline.publish(alerts_topic(tenant), tenant.encode()).is_failure
    # The gateways and the provider publish nothing: what they read is alerts only, and only
    # their own tenants'. One more alert each as the fence, then nothing else may have come.
    pipeline.publish(alerts_topic("acme"), b"fence")
    pipeline.publish(alerts_topic("nordfab"), b"fence")
    for probe in (acme_gateway, nordfab_gateway, provider):
        assert wait_until(lambda p=probe: any(m[1] == b"fence" for m in p.received()))
    assert wait_until(lambda: len(provider.received()) >= 4)

    def alerts(probe: Probe) -> Counter[tuple[str, bytes]]:
        return Counter(probe.received())

    acme, nordfab = alerts_topic("acme"), alerts_topic("nordfab")
    assert alerts(acme_gateway) == Counter({(acme, b"acme"): 1, (acme, b"fence"): 1})
    assert alerts(nordfab_gateway) == Counter({(nordfab, b"nordfab"): 1, (nordfab, b"fence"): 1})
    assert alerts(provider) == Counter(
        {(acme, b"acme"): 1, (acme, b"fence"): 1, (nordfab, b"nordfab"): 1, (nordfab, b"fence"): 1}
    )
    # Nobody reads another gateway's readings either.
    readings = Probe("acme-south-gw-02")
    assert not readings.connect(secured_mosquitto).is_failure
    readings.publish(readings_topic("acme", "south", "gw-02"), b"reading")
    readings.publish(alerts_topic("acme"), b"refused")  # dropped: gateways do not publish alerts
    pipeline.publish(alerts_topic("acme"), b"last fence")
    assert wait_until(lambda: (acme, b"last fence") in acme_gateway.received())
    assert (readings_topic("acme", "south", "gw-02"), b"reading") not in acme_gateway.received()
    assert (acme, b"refused") not in acme_gateway.received()
    for probe in (pipeline, acme_gateway, nordfab_gateway, provider, readings):
        probe.close()
