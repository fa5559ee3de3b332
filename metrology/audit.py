"""Amendments of calibration certificates and re-deriving corrected values from raw ones.

ISO/IEC 17025:2017 §7.8.8 (amendments to reports): a certificate once issued is never changed;
an amendment is a new, identified revision that says what it replaces, and the original stays
on record. §7.5.2 (technical records): when a record is amended, the original, the date, who
made the change and why stay retrievable: an audit trail, never an overwrite (METROLOGY.md,
"Calibration state is time-versioned").

Here a revision is a :class:`~metrology.calibration.CalibrationRecord` with the same
``certificate_id`` carrying an :class:`Amendment` (revision 1, 2, ...; the original issue is
revision 0 and carries none). :meth:`CalibrationHistory.amend` adds one;
:meth:`CalibrationHistory.audit_trail` returns all of them in order.

Raw indications are always kept, so an amended (or newly imported) certificate is applied to
history by re-deriving the corrected values (:func:`recorrect`); raw values are never changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from metrology.errors import CalibrationError

if TYPE_CHECKING:  # only for annotations: calibration imports this module
    from metrology.calibration import CalibrationHistory

__all__ = ["Amendment", "recorrect"]


@dataclass(frozen=True, slots=True)
class Amendment:
    """Who amended certificate ``certificate_id`` into ``revision``, when, and why.

    ISO/IEC 17025:2017 §7.5.2 and §7.8.8: ``revision`` >= 1 (0 is the original issue),
    ``amended_at`` in epoch seconds, ``amended_by`` and ``reason`` not blank.
    """

    certificate_id: str
    revision: int
    amended_at: float
    amended_by: str
    reason: str

    def __post_init__(self) -> None:
        if not self.certificate_id:
            raise CalibrationError("amendment: certificate id must not be empty")
        if isinstance(self.revision, bool) or not isinstance(self.revision, int):
            raise CalibrationError(
                f"{self.certificate_id}: revision must be an int, got {self.revision!r}"
            )
        if self.revision < 1:
            raise CalibrationError(
                f"{self.certificate_id}: an amendment's revision must be >= 1 "
                f"(0 is the original), got {self.revision}"
            )
        if not math.isfinite(self.amended_at):
            raise CalibrationError(
                f"{self.certificate_id} rev {self.revision}: amended_at not finite"
            )
        if not self.amended_by.strip():
            raise CalibrationError(
                f"{self.certificate_id} rev {self.revision}: who amended it is required"
            )
        if not self.reason.strip():
            raise CalibrationError(
                f"{self.certificate_id} rev {self.revision}: the reason for the amendment "
                "is required"
            )


def recorrect(
    readings_raw: Sequence[tuple[float, float]], history: CalibrationHistory
) -> list[tuple[float, float, str | None]]:
    """``(ts, corrected, certificate id used)`` for each raw ``(ts, indication)``, in order.

    Each reading is corrected with the record in force at its own timestamp in ``history``
    (the newest revision of that certificate), exactly as the stream processor would;
    ``None`` (and the raw value) where no calibration was in force. The inputs are not
    modified: corrected values are always re-derived from raw ones (ISO/IEC 17025 §7.5.2).
    """
    out: list[tuple[float, float, str | None]] = []
    for ts, indication in readings_raw:
        corrected, record = history.correct(ts, indication)
        out.append((ts, corrected, None if record is None else record.certificate_id))
    return out
