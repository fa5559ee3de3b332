"""Dead letters of readings the processing step failed on, as both engines keep them.

A reading `step` raised on was valid input (it was decoded and admitted), so the failure is a
defect: it is logged with its traceback and the reading becomes a dead letter with reason
``processing_error`` (docs/wire-contract.md), never dropped in silence (DESIGN.md, "Contracts to
get right"). The embedded pipeline and the Faust worker both turn
:attr:`~stream_processors.keyed.ProcessorOutput.failed` into dead letters with
:func:`dead_letters_of_failed`, so a failed reading leaves the same record whichever engine ran it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from metrology.reading import Reading
from metrology.wire import DeadLetter, RejectReason, readings_topic

__all__ = ["EXCERPT_CHARS", "dead_letters_of_failed"]

log = logging.getLogger(__name__)

EXCERPT_CHARS = 200
"""Characters of a failed reading's ``repr`` kept as its excerpt (every field, as admitted)."""


def dead_letters_of_failed(
    failed: Iterable[tuple[Reading, Exception]], received_at: float
) -> list[DeadLetter]:
    """One dead letter per reading `step` raised on, each failure logged with its traceback.

    ``failed`` pairs each reading with the exception it raised (``ProcessorOutput.failed``);
    ``received_at`` is the engine's clock when it processed them. The letter names the readings
    topic the reading arrived on, its tenant, instrument and sequence number, and the error as
    ``TypeName: message``.
    """
    letters = []
    for reading, error in failed:
        log.error("step failed on %s seq %s", reading.instrument_id, reading.seq, exc_info=error)
        letters.append(
            DeadLetter(
                received_at=received_at,
                topic=readings_topic(reading.tenant, reading.site, reading.gateway),
                reason=RejectReason.PROCESSING_ERROR,
                detail=f"{type(error).__name__}: {error}",
                excerpt=repr(reading)[:EXCERPT_CHARS],
                tenant=reading.tenant,
                instrument_id=reading.instrument_id,
                seq=reading.seq,
            )
        )
    return letters
