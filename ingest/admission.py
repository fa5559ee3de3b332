"""Admission of decoded readings: registry checks, unit conversion, plausibility, de-duplication.

What a decoder (:mod:`ingest.decoders`) accepted is well formed; admission checks it against
what the platform knows, in this order, each refusal with its own reason:

1. the instrument is registered for the topic's tenant (``unknown_instrument``). An instrument
   of another tenant gets exactly the refusal of one that does not exist, so that no tenant
   learns another's instruments or sites;
2. it is registered at the topic's site (``instrument_elsewhere``) and, unless the tenant's
   gateways share instruments (``shared_gateways`` in the fleet file), with the topic's gateway
   (``gateway_mismatch``);
3. its timestamp is plausible against the clock (``timestamp_out_of_range``);
4. its unit converts to the registered unit by a finite linear map (``unknown_unit``,
   ``unit_not_convertible``; :func:`metrology.units.find_conversion`, cached);
5. the converted value and reference are finite (``not_finite``: a conversion can overflow) and
   inside the instrument's plausible range (``implausible_value``:
   :attr:`metrology.instrument.MeasuringRange.plausible`); the reference's uncertainty is finite
   and at most one span;
6. its gateway sequence number has not been seen before (``duplicate_sequence``).

Admission never raises on a reading: whatever a check raises for one reading becomes an
``intake_error`` rejection of that reading (with the exception's type and message, its
traceback logged once per type), and the other readings of the message go on.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from ingest.sequence import SequenceWindow
from ingest.unforeseen import unforeseen
from metrology.instrument import InstrumentSpec
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY, iso
from metrology.units import LinearConversion, UnitProblem, find_conversion
from metrology.wire import DecodedMessage, Rejection, RejectReason

_UNIT_REASONS = {
    UnitProblem.UNKNOWN: RejectReason.UNKNOWN_UNIT,
    UnitProblem.NOT_CONVERTIBLE: RejectReason.UNIT_NOT_CONVERTIBLE,
}
_LARGEST = sys.float_info.max


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """Plausibility limits for timestamps, relative to the clock given to `Admission.admit`."""

    max_future_s: float = 300.0
    """Clock skew tolerated for readings stamped ahead of the receiver's clock."""
    max_age_days: float = 3650.0
    """Readings older than this are refused (store-and-forward backlogs are far younger)."""


_Entry = tuple[InstrumentSpec, str, str, str, bool, str, float, float, float]
"""What a reading of one instrument is checked against: its spec, tenant, site, gateway, whether
gateways are shared, unit, the plausible range and the largest reference uncertainty (a tuple:
one unpacking per reading on the hot path)."""


def _entry_of(spec: InstrumentSpec) -> _Entry:
    """The checks of one instrument (finite numbers only, when no range is registered)."""
    low, high, max_u = -_LARGEST, _LARGEST, _LARGEST
    measuring_range = spec.measuring_range
    if measuring_range is not None:
        plausible_low, plausible_high = measuring_range.plausible
        span = measuring_range.span
        low, high = max(plausible_low, -_LARGEST), min(plausible_high, _LARGEST)
        max_u = min(span, _LARGEST) if span > 0 else _LARGEST
    return (
        spec,
        spec.tenant,
        spec.site,
        spec.gateway,
        spec.shared_gateways,
        spec.unit,
        low,
        high,
        max_u,
    )


def _moment(ts: float) -> str:
    """``ts`` in ISO 8601, or in epoch seconds when it has no calendar date (beyond year 9999)."""
    try:
        return iso(ts)
    except (ValueError, OverflowError, OSError):
        return f"{ts!r} s after 1970-01-01T00:00:00Z"


class Admission:
    """Checks decoded readings against the registry; keeps the de-duplication windows."""

    def __init__(
        self, instruments: Mapping[str, InstrumentSpec], policy: AdmissionPolicy | None = None
    ) -> None:
        self._instruments = dict(instruments)
        self._retired: dict[str, tuple[str, float]] = {}
        """Retired instruments: their tenant and when they were retired."""
        self._policy = policy or AdmissionPolicy()
        self._sequences: dict[tuple[str, str, str], SequenceWindow] = {}
        self._entries: dict[str, _Entry] = {}
        """Checks per registered instrument, rebuilt when its spec object changes."""

    def admit(self, message: DecodedMessage, now: float) -> tuple[list[Reading], list[Rejection]]:
        """Readings admitted (converted to their registered unit) and the rejections."""
        rejections = list(message.rejections)
        admitted: list[Reading] = []
        earliest = now - self._policy.max_age_days * SECONDS_PER_DAY
        latest = now + self._policy.max_future_s
        instruments = self._instruments
        entries = self._entries
        sequences = self._sequences
        window: SequenceWindow | None = None
        last_tenant = last_site = last_gateway = None
        for reading in message.readings:
            try:
                tenant, site, gateway, instrument_id, ts, value, unit, seq, reference, u = reading
                spec = instruments.get(instrument_id)
                entry = entries.get(instrument_id)
                if entry is None or entry[0] is not spec:
                    if spec is None:
                        rejections.append(self._not_registered(reading))
                        continue
                    entry = entries[instrument_id] = _entry_of(spec)
                _, own_tenant, own_site, own_gateway, shared, own_unit, low, high, max_u = entry
                if own_tenant != tenant:
                    rejections.append(self._not_registered(reading))
                    continue
                if own_site != site or (own_gateway != gateway and not shared):
                    rejections.append(self._elsewhere(reading, entry[0]))
                    continue
                if not earliest <= ts <= latest:
                    rejections.append(self._out_of_time(reading, earliest, latest))
                    continue
                if unit != own_unit:
                    conversion = find_conversion(unit, own_unit)
                    if not isinstance(conversion, LinearConversion):
                        rejections.append(
                            self._reject(
                                reading,
                                _UNIT_REASONS[conversion.problem],
                                f"{instrument_id} is registered in {own_unit!r}: "
                                f"{conversion.detail}",
                            )
                        )
                        continue
                    reading = self._converted(reading, conversion, own_unit)
                    _, _, _, _, _, value, _, _, reference, u = reading
                if not (
                    low <= value <= high
                    and (
                        reference is None
                        or (low <= reference <= high and (u is None or 0.0 <= u <= max_u))
                    )
                ):
                    rejections.append(self._implausible(reading, entry))
                    continue
                # The readings of a message share their source (the very same strings): its
                # window is looked up once per message.
                if (
                    window is None
                    or gateway is not last_gateway
                    or site is not last_site
                    or tenant is not last_tenant
                ):
                    window = sequences.get((tenant, site, gateway))
                    if window is None:
                        window = sequences[(tenant, site, gateway)] = SequenceWindow()
                    last_tenant, last_site, last_gateway = tenant, site, gateway
                if not window.first_time(seq):
                    rejections.append(
                        self._reject(
                            reading,
                            RejectReason.DUPLICATE_SEQUENCE,
                            f"sequence {seq} of gateway {gateway} was already received",
                        )
                    )
                    continue
            except Exception as exc:  # the boundary: one reading's defect refuses that reading
                rejections.append(
                    self._reject(reading, RejectReason.INTAKE_ERROR, unforeseen(exc, "admission"))
                )
                continue
            admitted.append(reading)
        return admitted, rejections

    def register(self, spec: InstrumentSpec) -> None:
        """Admit the readings of ``spec`` from now on (a new instrument, or a changed one)."""
        self._retired.pop(spec.instrument_id, None)
        self._instruments[spec.instrument_id] = spec

    def retire(self, instrument_id: str, tenant: str, at: float) -> None:
        """Refuse the readings of a retired instrument from now on, saying so to its tenant."""
        self._instruments.pop(instrument_id, None)
        self._entries.pop(instrument_id, None)
        self._retired[instrument_id] = (tenant, at)

    def _not_registered(self, reading: Reading) -> Rejection:
        retired = self._retired.get(reading.instrument_id)
        if retired is not None and retired[0] == reading.tenant:
            return Admission._reject(
                reading,
                RejectReason.INSTRUMENT_RETIRED,
                f"instrument {reading.instrument_id!r} was retired on {_moment(retired[1])}: "
                "its readings are refused",
            )
        # The same reason and detail whether the instrument does not exist or belongs to
        # another tenant: nothing here may tell one tenant what another has.
        return Admission._reject(
            reading,
            RejectReason.UNKNOWN_INSTRUMENT,
            f"instrument {reading.instrument_id!r} is not registered for this tenant",
        )

    @staticmethod
    def _elsewhere(reading: Reading, spec: InstrumentSpec) -> Rejection:
        # Same tenant: naming its own site and gateway tells it nothing it may not know.
        if spec.site != reading.site:
            return Admission._reject(
                reading,
                RejectReason.INSTRUMENT_ELSEWHERE,
                f"instrument {reading.instrument_id!r} is registered at site {spec.site!r}, "
                f"not {reading.site!r}",
            )
        return Admission._reject(
            reading,
            RejectReason.GATEWAY_MISMATCH,
            f"instrument {reading.instrument_id!r} is registered with gateway "
            f"{spec.gateway!r}, not {reading.gateway!r}",
        )

    @staticmethod
    def _out_of_time(reading: Reading, earliest: float, latest: float) -> Rejection:
        return Admission._reject(
            reading,
            RejectReason.TIMESTAMP_OUT_OF_RANGE,
            f"timestamp {_moment(reading.ts)} is outside the accepted range "
            f"{_moment(earliest)} .. {_moment(latest)}",
        )

    @staticmethod
    def _converted(reading: Reading, conversion: LinearConversion, unit: str) -> Reading:
        return reading._replace(
            value=conversion(reading.value),
            unit=unit,
            reference=None if reading.reference is None else conversion(reading.reference),
            u_reference=(
                None if reading.u_reference is None else abs(conversion.scale) * reading.u_reference
            ),
        )

    @staticmethod
    def _implausible(reading: Reading, entry: _Entry) -> Rejection:
        """The refusal of a reading whose value, reference or uncertainty failed the checks."""
        unit, low, high, max_u = entry[5:]
        checks = (
            ("value", reading.value, low, high),
            ("reference value", reading.reference, low, high),
            ("reference uncertainty", reading.u_reference, 0.0, max_u),
        )
        for name, number, lowest, highest in checks:
            if number is None:
                continue
            if not math.isfinite(number):
                return Admission._reject(
                    reading,
                    RejectReason.NOT_FINITE,
                    f"{name} is {number!r} {unit} after conversion to the registered unit",
                )
            if not lowest <= number <= highest:
                return Admission._reject(
                    reading,
                    RejectReason.IMPLAUSIBLE_VALUE,
                    f"{name} {number!r} {unit} is outside the plausible range "
                    f"{lowest!r} .. {highest!r} {unit} of {reading.instrument_id}",
                )
        raise AssertionError(f"{reading.instrument_id}: no check failed")  # not reached

    @staticmethod
    def _reject(reading: Reading, reason: RejectReason, detail: str) -> Rejection:
        return Rejection(reason, detail, reading.instrument_id, reading.seq)
