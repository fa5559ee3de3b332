"""Admission of decoded readings: registry checks, unit conversion and de-duplication.

What :func:`metrology.wire.decode` accepted is well formed; admission checks it against what
the platform knows: the instrument exists and belongs to the topic's tenant and site, its unit
converts to the registered unit (with pint, cached as a linear map), its timestamp is plausible
against the clock, and its gateway sequence number has not been seen before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ingest.sequence import SequenceWindow
from metrology.errors import UnitError
from metrology.instrument import InstrumentSpec
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY, iso
from metrology.units import linear_conversion
from metrology.wire import DecodedMessage, Rejection, RejectReason


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """Plausibility limits for timestamps, relative to the clock given to `Admission.admit`."""

    max_future_s: float = 300.0
    """Clock skew tolerated for readings stamped ahead of the receiver's clock."""
    max_age_days: float = 3650.0
    """Readings older than this are refused (store-and-forward backlogs are far younger)."""


class Admission:
    """Checks decoded readings against the registry; keeps the de-duplication windows."""

    def __init__(
        self, instruments: Mapping[str, InstrumentSpec], policy: AdmissionPolicy | None = None
    ) -> None:
        self._instruments = instruments
        self._policy = policy or AdmissionPolicy()
        self._sequences: dict[tuple[str, str, str], SequenceWindow] = {}

    def admit(self, message: DecodedMessage, now: float) -> tuple[list[Reading], list[Rejection]]:
        """Readings admitted (converted to their registered unit) and the rejections."""
        rejections = list(message.rejections)
        admitted: list[Reading] = []
        earliest = now - self._policy.max_age_days * SECONDS_PER_DAY
        latest = now + self._policy.max_future_s
        instruments = self._instruments
        for reading in message.readings:
            spec = instruments.get(reading.instrument_id)
            if spec is None:
                rejections.append(
                    self._reject(
                        reading,
                        RejectReason.UNKNOWN_INSTRUMENT,
                        f"instrument {reading.instrument_id!r} is not registered",
                    )
                )
                continue
            if spec.tenant != reading.tenant or spec.site != reading.site:
                rejections.append(
                    self._reject(
                        reading,
                        RejectReason.INSTRUMENT_ELSEWHERE,
                        f"instrument {reading.instrument_id!r} is registered to "
                        f"{spec.tenant}/{spec.site}, "
                        f"not {reading.tenant}/{reading.site}",
                    )
                )
                continue
            if not earliest <= reading.ts <= latest:
                rejections.append(
                    self._reject(
                        reading,
                        RejectReason.TIMESTAMP_OUT_OF_RANGE,
                        f"timestamp {iso(reading.ts)} is outside the accepted range "
                        f"{iso(earliest)} .. {iso(latest)}",
                    )
                )
                continue
            if reading.unit != spec.unit:
                converted = self._convert(reading, spec)
                if isinstance(converted, Rejection):
                    rejections.append(converted)
                    continue
                reading = converted
            window = self._window(reading)
            if not window.first_time(reading.seq):
                rejections.append(
                    self._reject(
                        reading,
                        RejectReason.DUPLICATE_SEQUENCE,
                        f"sequence {reading.seq} of gateway {reading.gateway} was already received",
                    )
                )
                continue
            admitted.append(reading)
        return admitted, rejections

    def _window(self, reading: Reading) -> SequenceWindow:
        key = (reading.tenant, reading.site, reading.gateway)
        window = self._sequences.get(key)
        if window is None:
            window = self._sequences[key] = SequenceWindow()
        return window

    @staticmethod
    def _convert(reading: Reading, spec: InstrumentSpec) -> Reading | Rejection:
        try:
            conversion = linear_conversion(reading.unit, spec.unit)
        except UnitError as exc:
            reason = (
                RejectReason.UNKNOWN_UNIT
                if str(exc).startswith("unknown unit")
                else RejectReason.UNIT_NOT_CONVERTIBLE
            )
            return Admission._reject(
                reading, reason, f"{reading.instrument_id} is registered in {spec.unit!r}: {exc}"
            )
        return reading._replace(
            value=conversion(reading.value),
            unit=spec.unit,
            reference=None if reading.reference is None else conversion(reading.reference),
            u_reference=(
                None if reading.u_reference is None else abs(conversion.scale) * reading.u_reference
            ),
        )

    @staticmethod
    def _reject(reading: Reading, reason: RejectReason, detail: str) -> Rejection:
        return Rejection(reason, detail, reading.instrument_id, reading.seq)
