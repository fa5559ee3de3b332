"""The detail of an ``intake_error``: what intake did not foresee, described for a dead letter.

Intake never lets an exception out for one message or one reading: what decoding, admission or a
unit conversion raises unexpectedly becomes a dead letter with the reason ``intake_error``, whose
detail names the stage, the exception's type and its message. The traceback is logged at ERROR
the first time each exception type is seen: an unforeseen error is a defect to fix, and a
hostile gateway must not be able to flood the log with it.
"""

from __future__ import annotations

import logging

from metrology.wire import excerpt_text

log = logging.getLogger("ingest.intake")

_logged: set[str] = set()
"""Exception types whose traceback was logged (bounded by the number of exception types)."""


def unforeseen(exc: BaseException, stage: str) -> str:
    """``"<stage> failed: <type>: <message>"``, the traceback logged once per type."""
    kind = type(exc).__name__
    if kind not in _logged:
        _logged.add(kind)
        log.error("%s raised %s (traceback logged once per type)", stage, kind, exc_info=exc)
    try:
        message = excerpt_text(str(exc), 160)
    except Exception:  # an exception whose message cannot be built: its type says enough
        message = ""
    return f"{stage} failed: {kind}: {message}" if message else f"{stage} failed: {kind}"
