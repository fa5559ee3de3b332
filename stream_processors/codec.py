"""Per-instrument state and what a worker needs beside it, to and from JSON-compatible dicts.

A Faust table keeps its values as bytes (RocksDB, and the changelog topic it is rebuilt from on
another worker), and Kafka records carry readings and calibrations between processes: every
value here is turned into a dict of str, int, float, bool, None, lists and dicts, and back into
*equal* domain values, so `step` continues from a decoded state exactly as from the original.

- Floats are written as Python floats: JSON numbers printed with ``repr`` round-trip exactly.
  Non-finite floats (which strict JSON has no number for) are written as the strings ``"nan"``,
  ``"inf"`` and ``"-inf"`` and read back as floats.
- Each named tuple (and frozen dataclass inside one) is a dict of its fields, read back by the
  field's type hint: a field added to the state later is encoded with no change here, and a
  document written before it existed still reads (the missing key takes the field's default).
- Every document carries ``"v"`` (:data:`CODEC_VERSION`); an unknown version is refused with
  :class:`StateCodecError` rather than misread.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from metrology.audit import Amendment
from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
from metrology.curves import CurveCorrection
from metrology.reading import Reading
from stream_processors.errors import StateCodecError
from stream_processors.peers import PeerBoard
from stream_processors.state import InstrumentState

__all__ = [
    "CODEC_VERSION",
    "StateCodecError",
    "decode_calibrations",
    "decode_peer_group",
    "decode_reading",
    "decode_record",
    "decode_state",
    "encode_calibrations",
    "encode_peer_group",
    "encode_reading",
    "encode_record",
    "encode_state",
]

CODEC_VERSION = 1

Document = dict[str, Any]


# --- numbers ---------------------------------------------------------------------------------


def _num(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _float(x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, str):
        if x not in ("nan", "inf", "-inf"):
            raise StateCodecError(f"expected a number, got the string {x!r}")
        return float(x)
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise StateCodecError(f"expected a number, got {x!r}")
    return float(x)


def _check_version(document: Mapping[str, Any], what: str) -> None:
    if not isinstance(document, Mapping):
        raise StateCodecError(f"{what}: expected a JSON object, got {type(document).__name__}")
    version = document.get("v")
    if version != CODEC_VERSION:
        raise StateCodecError(f"{what}: codec version {version!r} is not {CODEC_VERSION}")


# --- values described by their type hints (the state's named tuples) ------------------------
#
# A state is decoded on every record a worker processes, so the decoder of each type is built
# once from its hints (closures, cached per type) rather than interpreting the hints each time.

Decoder = typing.Callable[[Any], Any]
"""Raises :class:`StateCodecError` saying what is wrong; records prefix the field's path."""


def _encode(value: Any) -> Any:
    """A value of the state as JSON-compatible data, by what it is."""
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {k: _encode(v) for k, v in zip(value._fields, value, strict=True)}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in _init_fields(type(value))}
    raise StateCodecError(f"no encoding for {type(value).__name__} value {value!r:.80}")


@functools.cache
def _init_fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(cls) if f.init)


def _decode_float(raw: Any) -> float:
    if type(raw) is float:
        return raw
    value = _float(raw)
    if value is None:
        raise StateCodecError("must not be null")
    return value


@functools.cache
def _decoder(hint: Any) -> Decoder:
    """The function that turns what :func:`_encode` made of a ``hint`` value back into one."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        arguments = typing.get_args(hint)
        options = [a for a in arguments if a is not type(None)]
        if len(options) != 1:
            raise StateCodecError(f"cannot decode the union {hint}")
        inner = _decoder(options[0])
        if len(options) == len(arguments):
            return inner

        def optional(raw: Any) -> Any:
            if raw is None or type(raw) is float:
                return raw
            return inner(raw)

        return optional
    if origin is tuple:
        item_hint, *rest = typing.get_args(hint)
        if rest != [Ellipsis]:
            raise StateCodecError(f"cannot decode the fixed-length tuple {hint}")
        item = _decoder(item_hint)

        def sequence(raw: Any) -> Any:
            if not isinstance(raw, list):
                raise StateCodecError(f"expected a list, got {raw!r:.80}")
            return tuple(map(item, raw))

        return sequence
    if hint is float:
        return _decode_float
    if hint in (int, bool, str):

        def exact(raw: Any) -> Any:
            if type(raw) is not hint:
                raise StateCodecError(f"expected {hint.__name__}, got {raw!r:.80}")
            return raw

        return exact
    if isinstance(hint, type) and issubclass(hint, Enum):

        def member(raw: Any) -> Any:
            try:
                return hint(raw)
            except ValueError:
                raise StateCodecError(f"{raw!r:.40} is not a {hint.__name__}") from None

        return member
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return _record_decoder(hint, hint._fields)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record_decoder(hint, tuple(f.name for f in _init_fields(hint)))
    raise StateCodecError(f"no decoding for {hint!r}")


def _record_decoder(cls: type, names: tuple[str, ...]) -> Decoder:
    """Decoder of a named tuple or dataclass from a dict of its fields (absent: the default)."""
    hints = typing.get_type_hints(cls)
    fields = [(name, _decoder(hints[name])) for name in names]
    defaults: tuple[Any, ...] | None = None
    if issubclass(cls, tuple):
        try:
            defaults = tuple(cls._field_defaults[name] for name in names)  # type: ignore[attr-defined]
        except KeyError:
            defaults = None  # a field without a default: build by keyword
    new = tuple.__new__

    def record(raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            raise StateCodecError(f"expected an object, got {raw!r:.80}")
        name = ""
        try:
            if defaults is not None:
                # Every field has a default: positional construction, the fast path.
                values = []
                for (name, decode), default in zip(fields, defaults, strict=True):
                    values.append(decode(raw[name]) if name in raw else default)
                return new(cls, values)
            given = {}
            for name, decode in fields:
                if name in raw:
                    given[name] = decode(raw[name])
            name = ""
            return cls(**given)
        except StateCodecError as exc:
            glue = "" if str(exc).startswith(".") else ": "
            raise StateCodecError(f".{name}{glue}{exc}") from None
        except (TypeError, ValueError) as exc:
            where = f".{name}" if name else ""
            raise StateCodecError(f"{where}: {cls.__name__}: {exc}") from exc

    return record


# --- instrument state ------------------------------------------------------------------------


def encode_state(state: InstrumentState) -> Document:
    """``state`` as a JSON-compatible dict (see the module docstring for the rules)."""
    document: Document = {"v": CODEC_VERSION, **_encode(state)}
    return document


def decode_state(document: Mapping[str, Any]) -> InstrumentState:
    """The :class:`InstrumentState` :func:`encode_state` wrote (equal to the original)."""
    _check_version(document, "instrument state")
    fields = {k: v for k, v in document.items() if k != "v"}
    try:
        state: InstrumentState = _decoder(InstrumentState)(fields)
    except StateCodecError as exc:
        raise StateCodecError(f"instrument state{exc}") from None
    return state


# --- readings --------------------------------------------------------------------------------


def encode_reading(reading: Reading) -> Document:
    """A validated reading (registered unit) as a dict: what ingest forwards to Kafka."""
    return {
        "tenant": reading.tenant,
        "site": reading.site,
        "gateway": reading.gateway,
        "instrument": reading.instrument_id,
        "ts": _num(reading.ts),
        "value": _num(reading.value),
        "unit": reading.unit,
        "seq": reading.seq,
        "reference": _num(reading.reference),
        "u_reference": _num(reading.u_reference),
    }


def decode_reading(document: Mapping[str, Any]) -> Reading:
    try:
        return Reading(
            document["tenant"],
            document["site"],
            document["gateway"],
            document["instrument"],
            _float(document["ts"]),  # type: ignore[arg-type]
            _float(document["value"]),  # type: ignore[arg-type]
            document["unit"],
            int(document["seq"]),
            _float(document.get("reference")),
            _float(document.get("u_reference")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StateCodecError):
            raise
        raise StateCodecError(f"reading: {type(exc).__name__}: {exc}") from exc


# --- calibrations ----------------------------------------------------------------------------


def encode_record(record: CalibrationRecord) -> Document:
    """One calibration record (any revision) as a dict."""
    correction = record.correction
    if isinstance(correction, Correction):
        correction_doc: Document = {
            "kind": "linear",
            "offset": _num(correction.offset),
            "gain": _num(correction.gain),
        }
    elif isinstance(correction, CurveCorrection):
        correction_doc = {"kind": "curve", "points": [[x, c] for x, c in correction.points]}
    else:
        raise StateCodecError(
            f"{record.certificate_id}: correction {type(correction).__name__} has no encoding"
        )
    amendment = record.amendment
    return {
        "instrument": record.instrument_id,
        "certificate": record.certificate_id,
        "calibrated_at": record.calibrated_at,
        "correction": correction_doc,
        "expanded_uncertainty": record.expanded_uncertainty,
        "k": record.coverage_factor,
        "interval_days": record.interval_days,
        "amendment": None
        if amendment is None
        else {
            "revision": amendment.revision,
            "amended_at": amendment.amended_at,
            "amended_by": amendment.amended_by,
            "reason": amendment.reason,
        },
    }


def decode_record(document: Mapping[str, Any]) -> CalibrationRecord:
    try:
        spec = document["correction"]
        if spec["kind"] == "linear":
            correction: Correction | CurveCorrection = Correction(
                _float(spec["offset"]),  # type: ignore[arg-type]
                _float(spec["gain"]),  # type: ignore[arg-type]
            )
        elif spec["kind"] == "curve":
            correction = CurveCorrection(tuple((float(x), float(c)) for x, c in spec["points"]))
        else:
            raise StateCodecError(f"unknown correction kind {spec['kind']!r}")
        amended = document.get("amendment")
        amendment = (
            None
            if amended is None
            else Amendment(
                document["certificate"],
                int(amended["revision"]),
                float(amended["amended_at"]),
                amended["amended_by"],
                amended["reason"],
            )
        )
        return CalibrationRecord(
            document["instrument"],
            document["certificate"],
            float(document["calibrated_at"]),
            correction,
            float(document["expanded_uncertainty"]),
            float(document["k"]),
            float(document["interval_days"]),
            amendment,
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StateCodecError):
            raise
        raise StateCodecError(f"calibration record: {type(exc).__name__}: {exc}") from exc


def encode_calibrations(history: CalibrationHistory) -> Document:
    """Every revision of every certificate of one instrument (the audit trail included)."""
    return {"v": CODEC_VERSION, "records": [encode_record(r) for r in history.all_revisions]}


def decode_calibrations(document: Mapping[str, Any]) -> CalibrationHistory:
    _check_version(document, "calibration history")
    return CalibrationHistory(decode_record(r) for r in document.get("records", ()))


# --- peer groups -----------------------------------------------------------------------------


def encode_peer_group(board: PeerBoard, group: str) -> Document:
    """The recent corrected values of one peer group's members, oldest first."""
    members = board.members(group)
    return {
        "v": CODEC_VERSION,
        "members": {
            member: [[ts, value, u] for ts, value, u in history]
            for member, history in members.items()
        },
    }


def decode_peer_group(
    document: Mapping[str, Any] | None, group: str, board: PeerBoard | None = None
) -> PeerBoard:
    """A board holding ``group`` as :func:`encode_peer_group` saw it (posted back in order)."""
    board = board if board is not None else PeerBoard()
    if document is None:
        return board
    _check_version(document, "peer group")
    members: Mapping[str, Iterable[list[float]]] = document.get("members", {})
    for member, history in members.items():
        for ts, value, u in history:
            board.post(group, member, float(ts), float(value), float(u))
    return board
