"""The broker as shipped: mosquitto started from ``deploy/mosquitto/`` exactly as it is, with
only what a machine owns replaced (:func:`calstream.servers.mosquitto.shipped_config`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from calstream.servers.mosquitto import LocalMosquitto, mosquitto_binary


@pytest.fixture
def secured_mosquitto(tmp_path: Path) -> Iterator[LocalMosquitto]:
    """Debian's mosquitto with the shipped configuration, password file and ACL."""
    try:
        mosquitto_binary()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    broker = LocalMosquitto(tmp_path / "mosquitto", secured=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
