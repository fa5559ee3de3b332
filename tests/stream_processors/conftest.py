"""Fixtures of the stream-processor tests: the Kafka broker of the Kafka-backed tests.

- ``kafka``: a real Apache Kafka broker (KRaft, one node) for the whole session, started from the
  jars ``make test-servers`` fetches from Maven Central (``tests/servers/kafka.py``), or the
  broker ``CALSTREAM_TEST_KAFKA=host:port`` names instead. Per test, ``kafka.name("readings")``
  gives topic names and Faust app ids no other test uses, so nothing is shared between tests.
  When there is no broker to be had, the fixture fails and says what to run: the Kafka-backed
  tests are never skipped.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest
from servers.kafka import KafkaForTest, LocalKafka

from calstream.runtime.scale_out import KafkaUnavailable, check_kafka


@pytest.fixture(scope="session")
def kafka_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, LocalKafka | None]]:
    """The session's broker: ``CALSTREAM_TEST_KAFKA``'s, or one started from the installed jars."""
    outside = os.environ.get("CALSTREAM_TEST_KAFKA")
    if outside:
        try:
            check_kafka(outside)
        except KafkaUnavailable as exc:
            pytest.fail(f"CALSTREAM_TEST_KAFKA names no answering broker: {exc}")
        yield outside, None
        return
    try:
        server = LocalKafka(tmp_path_factory.mktemp("kafka"))
    except FileNotFoundError as exc:
        pytest.fail(f"no Kafka broker for the Kafka-backed tests: {exc}")
    try:
        server.start()
        yield server.bootstrap, server
    finally:
        server.kill()


@pytest.fixture
def kafka(
    kafka_broker: tuple[str, LocalKafka | None], request: pytest.FixtureRequest
) -> KafkaForTest:
    """The session's Kafka broker with names unique to this test (see the module docstring)."""
    bootstrap, server = kafka_broker
    if server is not None and not server.running:  # a test stopped it and failed before a start
        server.start()
    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))
    test = test.strip("-")[:40]
    return KafkaForTest(bootstrap, server, f"calstream-test-{test}-{uuid.uuid4().hex[:8]}")
