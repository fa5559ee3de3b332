"""The intake step: the bytes of MQTT messages in, admitted readings and dead letters out.

One step, used by the embedded pipeline (:class:`calstream.runtime.pipeline.Pipeline`) and by the
ingest forwarder (:class:`ingest.forwarder.Forwarder`) alike: each message is decoded by the
decoder of its topic's wire format (:mod:`ingest.decoders`), its readings are admitted against
the registry (:class:`ingest.admission.Admission`), and every rejection becomes a dead letter
filed under the topic's tenant, counted by reason.

Intake never raises for a message or a reading. Decoders and admission refuse bad input with a
precise reason; what they raise unforeseen becomes a dead letter too, with the reason
``intake_error``, the stage, and the exception's type and message (:mod:`ingest.unforeseen`):
for one reading when admission fails on it (the other readings of its message go on), for the
whole message when its decoding fails. For every message, ``accepted + rejected == received``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ingest.admission import Admission
from ingest.decoders import DECODERS, Decoder, decoder_for
from ingest.unforeseen import unforeseen
from metrology.reading import Reading
from metrology.wire import (
    TOPIC_ROOT,
    DeadLetter,
    DecodedMessage,
    Rejection,
    RejectReason,
    dead_letters_of,
    excerpt_text,
)

__all__ = ["Arrival", "IntakeBatch", "Taken", "take", "take_batch"]


class Arrival(Protocol):
    """What intake needs of a received message (:class:`ingest.subscriber.InboundMessage`)."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes: ...

    @property
    def received_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Taken:
    """One message after intake: its admitted readings and its dead letters."""

    topic: str
    readings: list[Reading]
    dead_letters: list[DeadLetter]
    rejected: int
    """Readings refused (the sum of the dead letters' counts)."""

    @property
    def received(self) -> int:
        """Readings received in the message: accepted + rejected."""
        return len(self.readings) + self.rejected


@dataclass(slots=True)
class IntakeBatch:
    """Messages after intake, with the counts and the time spent in each phase."""

    taken: list[Taken] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    """Every admitted reading of the batch, in message order."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    decode_s: float = 0.0
    admit_s: float = 0.0


def take(
    admission: Admission, message: Arrival, now: float, decoders: Sequence[Decoder] = DECODERS
) -> Taken:
    """Decode and admit one message; its rejections become dead letters. Never raises."""
    return _take(admission, message, now, decoders, None)


def take_batch(
    admission: Admission,
    messages: Iterable[Arrival],
    now: float,
    decoders: Sequence[Decoder] = DECODERS,
) -> IntakeBatch:
    """Decode and admit messages in order, with counts by reason and phase timings."""
    batch = IntakeBatch()
    for message in messages:
        _take(admission, message, now, decoders, batch)
    return batch


def _decode(topic: str, payload: bytes, decoders: Sequence[Decoder]) -> DecodedMessage:
    try:
        decoder = decoder_for(topic, decoders)
        if decoder is None:
            rejection = Rejection(
                RejectReason.BAD_TOPIC,
                f"topic {excerpt_text(topic, 120)!r} is not "
                f"{TOPIC_ROOT}/<tenant>/<site>/<gateway>/readings",
            )
            return DecodedMessage(topic, [], [rejection])
        return decoder.decode(topic, payload)
    except Exception as exc:  # the boundary of one message: its decoding failed unforeseen
        rejection = Rejection(RejectReason.INTAKE_ERROR, unforeseen(exc, "decoding"))
        return DecodedMessage(topic, [], [rejection])


def _admit(
    admission: Admission, decoded: DecodedMessage, now: float
) -> tuple[list[Reading], list[Rejection]]:
    try:
        return admission.admit(decoded, now)
    except Exception as exc:  # admission guards each reading; this is the last resort
        failed = Rejection(
            RejectReason.INTAKE_ERROR,
            unforeseen(exc, "admission"),
            count=len(decoded.readings),
        )
        return [], [*decoded.rejections, *([failed] if decoded.readings else [])]


def _file(message: Arrival, rejections: list[Rejection]) -> list[DeadLetter]:
    if not rejections:
        return []
    try:
        return dead_letters_of(message.topic, message.payload, message.received_at, rejections)
    except Exception as exc:  # the rejections still count, without the excerpt
        detail = unforeseen(exc, "filing dead letters")
        return [
            DeadLetter(
                message.received_at, message.topic, RejectReason.INTAKE_ERROR, detail, "", r.count
            )
            for r in rejections
        ]


def _take(
    admission: Admission,
    message: Arrival,
    now: float,
    decoders: Sequence[Decoder],
    batch: IntakeBatch | None,
) -> Taken:
    clock = time.perf_counter
    started = clock()
    decoded = _decode(message.topic, message.payload, decoders)
    decoded_at = clock()
    readings, rejections = _admit(admission, decoded, now)
    admitted_at = clock()
    letters = _file(message, rejections)
    rejected = sum(letter.count for letter in letters)
    taken = Taken(message.topic, readings, letters, rejected)
    if batch is not None:
        batch.decode_s += decoded_at - started
        batch.admit_s += admitted_at - decoded_at
        batch.taken.append(taken)
        batch.readings.extend(readings)
        batch.accepted += len(readings)
        batch.received += len(readings) + rejected
        if letters:
            batch.dead_letters.extend(letters)
            batch.rejected += rejected
            by_reason = batch.rejected_by_reason
            for letter in letters:
                by_reason[letter.reason.value] += letter.count
    return taken
