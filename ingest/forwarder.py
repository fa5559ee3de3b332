"""The ingest forwarder: shared MQTT subscription in, validated readings out to Kafka.

Several forwarders run side by side as members of one MQTT 5 shared subscription; each takes
its messages through the same intake step as the embedded pipeline (:mod:`ingest.intake`:
decode, admit, bad input into dead letters with their reason), and forwards the admitted
readings as the records ``to_records`` makes of each message's readings (the composition root
passes the Faust workers' keying, :func:`stream_processors.routing.readings_records`: one
record per key and message). The MQTT
messages of a batch are acknowledged only once the sink has made the batch durable; a crash
before that leaves them with the broker, which sends them again.

Duplicates: each forwarder sees only part of a gateway's sequence numbers, so a message
re-delivered to *another* member after a crash passes its de-duplication window; the workers'
store writes are idempotent on (instrument, timestamp, sequence), and `step` treats a reading
no newer than the instrument's last as late (stored, not fed to the detectors again).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from ingest.admission import Admission
from ingest.forward_sinks import ForwardSink, SinkUnavailable
from ingest.intake import take_batch
from ingest.subscriber import DurableSubscriber, InboundMessage
from metrology.reading import Reading
from metrology.wire import DeadLetter

__all__ = ["Forwarder", "ForwarderCounters", "dead_letter_record"]

log = logging.getLogger(__name__)

Records = list[tuple[str, dict[str, Any]]]


@dataclass(slots=True)
class ForwarderCounters:
    """Counts since start: ``received == forwarded + rejected`` (readings)."""

    messages: int = 0
    received: int = 0
    forwarded: int = 0
    records: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    batches: int = 0


def dead_letter_record(letter: DeadLetter) -> tuple[str, dict[str, Any]]:
    """A dead letter as a Kafka record keyed by its tenant (or ``-`` when the topic had none)."""
    value = asdict(letter)
    value["reason"] = letter.reason.value
    return letter.tenant or "-", value


class Forwarder:
    """Decode, admit, forward, then acknowledge: one batch of MQTT messages at a time."""

    def __init__(
        self,
        subscriber: DurableSubscriber,
        admission: Admission,
        to_records: Callable[[list[Reading]], Records],
        sink: ForwardSink,
        *,
        clock: Callable[[], float] = time.time,
        max_messages_per_batch: int = 500,
        linger_s: float = 0.02,
    ) -> None:
        self.subscriber = subscriber
        self.admission = admission
        self.to_records = to_records
        self.sink = sink
        self.counters = ForwarderCounters()
        self._clock = clock
        self._max_messages = max_messages_per_batch
        self._linger_s = linger_s

    def prepare(self, messages: list[InboundMessage]) -> tuple[Records, Records]:
        """The records and dead letters of a batch (pure of I/O)."""
        intake = take_batch(self.admission, messages, self._clock())
        counters = self.counters
        counters.messages += len(messages)
        counters.received += intake.received
        counters.forwarded += intake.accepted
        counters.rejected += intake.rejected
        counters.rejected_by_reason.update(intake.rejected_by_reason)
        records: Records = []
        for taken in intake.taken:
            if taken.readings:
                records.extend(self.to_records(taken.readings))
        counters.records += len(records)
        return records, [dead_letter_record(letter) for letter in intake.dead_letters]

    def run_once(self, timeout: float = 0.2) -> int:
        """Forward one batch if messages arrive within ``timeout``; returns messages handled.

        While the sink is unavailable the batch is retried (nothing is acknowledged meanwhile,
        so the broker keeps the messages and stops sending beyond its in-flight window).
        """
        messages = self.subscriber.get_batch(self._max_messages, timeout, self._linger_s)
        if not messages:
            return 0
        records, dead = self.prepare(messages)
        retrying = Retrying(
            retry=retry_if_exception_type(SinkUnavailable),
            wait=wait_random_exponential(multiplier=0.1, max=5.0),
            before_sleep=lambda state: log.warning(
                "sink unavailable (attempt %d): %s; retrying",
                state.attempt_number,
                state.outcome.exception() if state.outcome else "",
            ),
        )
        retrying(self.sink.forward, records, dead)
        self.subscriber.ack(messages)
        self.counters.batches += 1
        return len(messages)
