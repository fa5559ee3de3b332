"""paho-mqtt clients of the deploy tests: who logs in as whom, and what each one saw."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from calstream.servers.mosquitto import DEPLOY_ACL, DEPLOY_PASSWD, LocalMosquitto

PIPELINE = "calstream-pipeline"
"""The pipeline's user, and the client id it asks for (CALSTREAM_CLIENT_ID's default)."""


def default_password(user: str) -> str:
    """The shipped password of ``user`` (docs/deploy.md: change before use)."""
    return f"{user}-change-me"


def passwd_users() -> list[str]:
    return [line.split(":", 1)[0] for line in DEPLOY_PASSWD.read_text().splitlines() if line]


def acl_rules(text: str | None = None) -> dict[str, set[tuple[str, str]]]:
    """user -> {(access, topic filter)} of an ACL file's text (the shipped one by default)."""
    rules: dict[str, set[tuple[str, str]]] = {}
    user = None
    for line in (DEPLOY_ACL.read_text() if text is None else text).splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            user = words[1]
            rules.setdefault(user, set())
        else:
            assert words[0] == "topic" and user is not None, line
            rules[user].add((words[1], words[2]))
    return rules


def broker_log_count(broker: LocalMosquitto, pattern: str) -> int:
    """Lines of the broker's log matching ``pattern`` (a regular expression)."""
    return len(re.findall(pattern, broker.log.read_text(errors="replace"), re.MULTILINE))


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


@dataclass
class Probe:
    """One MQTT connection that records its CONNACK, its messages and its acknowledgements."""

    user: str | None
    client_id: str = ""
    password: str | None = None
    protocol: int = mqtt.MQTTv311
    clean: bool = True
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    connack: ReasonCode | None = None
    disconnects: int = 0
    acks: dict[int, ReasonCode] = field(default_factory=dict)
    granted: dict[int, list[ReasonCode]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._answered = threading.Event()
        self._lock = threading.Lock()
        options = {} if self.protocol == mqtt.MQTTv5 else {"clean_session": self.clean}
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id or (self.user or ""),
            protocol=self.protocol,  # type: ignore[arg-type]
            **options,  # type: ignore[arg-type]
        )
        if self.user is not None:
            self.client.username_pw_set(self.user, self.password or default_password(self.user))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    # --- lifecycle ---

    def connect(self, broker: LocalMosquitto, timeout: float = 10.0) -> ReasonCode:
        """Connect and wait for the CONNACK; returns its reason code (refusals included)."""
        if self.protocol == mqtt.MQTTv5:
            properties = Properties(mqtt.PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 0 if self.clean else 3600
            self.client.connect(
                broker.host, broker.port, clean_start=self.clean, properties=properties
            )
        else:  # MQTT 3.1.1: the clean session flag was given to the client
            self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._answered.wait(timeout), f"no CONNACK for {self.user}"
        assert self.connack is not None
        if self.connack.is_failure:
            self.close()
        return self.connack

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # --- acting ---

    def subscribe(self, topic: str, timeout: float = 10.0) -> list[ReasonCode]:
        _, mid = self.client.subscribe(topic, qos=1)
        assert wait_until(lambda: mid in self.granted, timeout), f"no SUBACK for {topic}"
        return self.granted[mid]

    def publish(self, topic: str, payload: bytes, timeout: float = 10.0) -> ReasonCode:
        """Publish at QoS 1; returns the PUBACK's reason code (MQTT 3.1.1 always says success)."""
        info = self.client.publish(topic, payload, qos=1)
        assert wait_until(lambda: info.mid in self.acks, timeout), f"no PUBACK for {topic}"
        return self.acks[info.mid]

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    # --- paho callbacks (network thread) ---

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        self.connack = reason_code
        self._answered.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        self.disconnects += 1
        if not self._answered.is_set():  # refused before a CONNACK reached the callback
            self.connack = reason_code
            self._answered.set()

    def _on_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.messages.append((message.topic, message.payload))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        self.acks[mid] = reason_code

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # type: ignore[no-untyped-def]
        self.granted[mid] = list(reason_codes)
