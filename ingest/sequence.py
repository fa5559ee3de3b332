"""De-duplication by gateway sequence number, tolerant of out-of-order delivery."""

from __future__ import annotations


class SequenceWindow:
    """Remembers the sequence numbers seen from one gateway within a sliding window.

    Re-delivery (QoS 1, store-and-forward) repeats sequence numbers; reordering is allowed.
    Numbers further behind the newest than ``width`` are not remembered: those are admitted and
    left to the store, whose writes are idempotent on (instrument, timestamp, sequence).
    Memory is bounded: at most ``2 * width`` numbers per gateway.
    """

    __slots__ = ("_newest", "_seen", "width")

    def __init__(self, width: int = 65_536) -> None:
        self.width = width
        self._newest = -1
        self._seen: set[int] = set()

    def first_time(self, seq: int) -> bool:
        """True the first time ``seq`` is offered, False for a repeat within the window."""
        if seq > self._newest:
            self._newest = seq
            if len(self._seen) >= 2 * self.width:
                floor = seq - self.width
                self._seen = {s for s in self._seen if s > floor}
        elif seq <= self._newest - self.width:
            return True
        if seq in self._seen:
            return False
        self._seen.add(seq)
        return True
