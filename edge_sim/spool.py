"""Store-and-forward at the edge: an on-disk spool of messages waiting for the broker.

A gateway whose broker is unreachable keeps producing readings; :class:`GatewayPublisher`
appends each message to this spool (one SQLite transaction per message, fsynced:
``synchronous=FULL``) and, once the broker is back, publishes the spooled messages oldest first,
deleting each only after the broker's PUBACK. A crash of the gateway loses nothing spooled: the
next publisher on the same file publishes what is left (a message whose PUBACK was lost is sent
again; the pipeline's de-duplication by sequence number absorbs it).

Bounded by ``max_bytes`` of payload: when the next message does not fit, :meth:`Spool.append`
refuses it with :class:`SpoolFull` and the publisher counts it (``readings_refused``). The spool
never drops its oldest messages to make room: what was accepted is delivered, what was refused
is known to the caller (a real gateway would stop sampling or keep its own ring buffer).

The file is a :class:`storage.local_queue.LocalQueue` (its layout, durability and bound are that
module's): an entry's key is the message's topic, its body the payload as published, its items
the readings in it. A spool written before the spool was such a queue (its ``messages`` table
without a layout version) is upgraded when opened, its messages kept in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_sim.errors import SpoolError, SpoolFull
from storage.local_queue import LegacyTable, LocalQueue, LocalQueueError, LocalQueueFull

__all__ = ["Spool", "SpoolDepth", "SpoolError", "SpoolFull", "SpooledMessage"]

_MESSAGE_FORMAT = 1
"""An entry is an MQTT message: the payload exactly as published, its topic as the key."""

_TODAYS_TABLE = LegacyTable("messages", f"id, {_MESSAGE_FORMAT}, topic, readings, 0.0, payload")
"""The spool's table before it was a local queue: ``messages (id, topic, payload, readings)``."""


@dataclass(frozen=True, slots=True)
class SpoolDepth:
    messages: int
    readings: int
    bytes: int


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    id: int
    topic: str
    payload: bytes
    readings: int


@contextmanager
def _spool_errors() -> Iterator[None]:
    """The local queue's errors as the spool's (the publisher handles those)."""
    try:
        yield
    except LocalQueueFull as exc:
        raise SpoolFull(str(exc)) from exc
    except LocalQueueError as exc:
        raise SpoolError(str(exc)) from exc


class Spool:
    """A FIFO of MQTT messages in one SQLite file, bounded by ``max_bytes`` of payload."""

    def __init__(self, path: str | Path, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.path = Path(path)
        with _spool_errors():
            self._queue = LocalQueue(
                self.path,
                max_bytes,
                entry_format=_MESSAGE_FORMAT,
                legacy=_TODAYS_TABLE,
                name="spool",
            )

    @property
    def max_bytes(self) -> int:
        return self._queue.max_bytes

    @property
    def depth(self) -> SpoolDepth:
        depth = self._queue.depth
        return SpoolDepth(depth.entries, depth.items, depth.bytes)

    @property
    def empty(self) -> bool:
        return self._queue.empty

    def append(self, topic: str, payload: bytes, readings: int) -> int:
        """Append one message; on return it is on disk. Returns its spool id.

        Raises :class:`SpoolFull` (nothing written, nothing dropped) when it does not fit.
        """
        with _spool_errors():
            return self._queue.append(payload, key=topic, items=readings)

    def after(self, spool_id: int, limit: int) -> list[SpooledMessage]:
        """Up to ``limit`` messages with an id above ``spool_id``, oldest first."""
        with _spool_errors():
            entries = self._queue.after(spool_id, limit)
        return [SpooledMessage(e.id, e.key, e.body, e.items) for e in entries]

    def remove(self, spool_ids: list[int]) -> None:
        """Delete delivered messages (the broker acknowledged them), in one transaction."""
        with _spool_errors():
            self._queue.remove(*spool_ids)

    def close(self) -> None:
        self._queue.close()
