"""What a store reports back for one committed batch (the batch itself is
:class:`metrology.batch.OutputBatch`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Exact counts of one committed batch.

    ``readings_duplicate`` counts readings already stored under the same
    ``(instrument_id, ts, seq)`` (re-delivery): ignored, so writing a batch twice is harmless.
    ``changes`` counts status changes stored; a change already stored (same instrument, time and
    status) is not stored again.
    """

    readings_inserted: int
    readings_duplicate: int
    changes: int
    dead_letters: int
