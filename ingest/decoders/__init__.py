"""Wire formats: one module per payload format, each a :class:`Decoder`, chosen by topic.

A decoder turns the bytes of one MQTT message into a :class:`metrology.wire.DecodedMessage`
(readings and rejections) and never raises on input. :func:`decoder_for` picks the decoder whose
topic root the message's topic starts with; JSON v1 (:mod:`ingest.decoders.json_v1`) owns
``calstream/v1/...``. A second format (Sparkplug B on ``spBv1.0/...``) is one new module here
and one entry in :data:`DECODERS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ingest.decoders import json_v1
from metrology.wire import DecodedMessage

__all__ = ["DECODERS", "Decoder", "decoder_for"]


class Decoder(Protocol):
    """One wire format: the bytes and topic of a message in, readings and rejections out."""

    @property
    def name(self) -> str:
        """Short name of the format, for logs (``json_v1``)."""
        ...

    @property
    def topic_root(self) -> str:
        """The topics this format is published on start with this root and a slash."""
        ...

    def decode(self, topic: str, payload: bytes) -> DecodedMessage:
        """Readings and rejections of one message; never raises on input."""
        ...


DECODERS: tuple[Decoder, ...] = (json_v1.DECODER,)
"""Every wire format ingest reads, each owning the topics under its root."""


def decoder_for(topic: str, decoders: Sequence[Decoder] = DECODERS) -> Decoder | None:
    """The decoder of the format published on ``topic``, or None if no format owns it."""
    for decoder in decoders:
        root = decoder.topic_root
        if topic.startswith(root) and topic[len(root) : len(root) + 1] == "/":
            return decoder
    return None
