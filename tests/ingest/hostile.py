"""Hostile input over every field of the wire contract: hypothesis strategies, reusable.

What a broken or hostile gateway can publish, field by field (``docs/wire-contract.md``):

- units: arbitrary text, and the strings that trip pint (powers that never finish computing,
  parse errors of every kind, offset and logarithmic units, prefixes whose factor overflows);
- identifiers and timestamps: arbitrary text, control characters, wildcards, other tenants'
  instruments, ISO 8601 variants, far past and far future, numbers;
- numbers: +-1e308, the largest float, subnormals, -0.0, values whose conversion overflows,
  NaN and infinities as JSON tokens, integers beyond 64 bits, ``1.0`` for integers;
- wrong JSON types: booleans, strings, null, arrays, objects in place of every field;
- JSON itself: repeated keys, deep nesting, invalid UTF-8, UTF-16, UTF-32, a byte order mark,
  Latin-1, truncated text, payloads over the size limit;
- topics: other tenants, other sites and gateways, malformed levels, other roots.

A drawn :class:`HostileMessage` is a topic and the payload bytes, with the number of readings
it counts when the generator knows it. ``hostile_messages(fleet, publishable=True)`` keeps to
topics a broker accepts in a PUBLISH (valid UTF-8, no wildcards, no NUL), so the same strategies
can drive a real broker into the running service; import them from another test folder as
``from tests.ingest.hostile import hostile_messages``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from metrology.fleet import Fleet
from metrology.timebase import SECONDS_PER_DAY, iso
from metrology.wire import MAX_PAYLOAD_BYTES, TOPIC_ROOT, readings_topic

__all__ = [
    "UNIT_TRAPS",
    "VALID_UNITS",
    "HostileMessage",
    "Obj",
    "Raw",
    "extreme_numbers",
    "hostile_identifiers",
    "hostile_integers",
    "hostile_messages",
    "hostile_timestamps",
    "hostile_units",
    "reading_entries",
    "to_json",
    "wrong_types",
]

# --- JSON text with what json.dumps cannot write -------------------------------------------------


@dataclass(frozen=True)
class Obj:
    """A JSON object as its key-value pairs, in order: a key may appear more than once."""

    pairs: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, mapping: dict[str, Any]) -> Obj:
        return cls(tuple(mapping.items()))

    def get(self, key: str, default: Any = None) -> Any:
        """The value JSON parsers keep (the last one), as the decoders see it."""
        found = default
        for k, v in self.pairs:
            if k == key:
                found = v
        return found


@dataclass(frozen=True)
class Raw:
    """A JSON token written verbatim: ``NaN``, ``Infinity``, ``1e400``, ``1.0``, ``-0``."""

    token: str


def to_json(value: Any) -> str:
    """JSON text of ``value``; :class:`Obj` keeps repeated keys, :class:`Raw` its token."""
    if isinstance(value, Raw):
        return value.token
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, dict):
        return to_json(Obj.of(value))
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(value)


# --- fields ---------------------------------------------------------------------------------------

UNIT_TRAPS = (
    "9**9**9",  # pint computes powers of integers exactly: hours of arithmetic
    "m**10**10**10",
    "9⁹⁹⁹⁹⁹⁹⁹⁹⁹",  # superscripts become a power
    "(((9**999)**999)**999)**999",
    "2**1000",
    "1/0",  # ZeroDivisionError
    "0**-1",
    "m/0",
    "()",  # AssertionError
    "{}",
    "@",
    "\x00",
    ")",  # tokenize.TokenError
    "(",
    "m(",
    "m**0",  # KeyError
    "m**m",  # TypeError
    "m+s",
    "m**nan",
    "1+/-2",  # DefinitionSyntaxError
    "2*m",  # ValueError: a unit with a scaling factor
    "nan",
    "inf",
    "__class__",
    "m.real",
    "",
    " ",
    "delta_degC",  # offset units against deltas
    "degC**2",
    "1/degC",
    "degC*K",
    "dB",  # logarithmic: not a linear map
    "dBm",
    "octave",
    "decade",
    "neper",
    "Ym**15/ym**15",  # the factor overflows
    "ym**15/Ym**15",  # the factor underflows to zero
    "Ym**2/ym**2",  # finite factor of 1e98: values overflow
    "m**1000",
    "m**1e1",
    "m**(1/3)",
    "m squared squared",
    "% RH",
    "x" * 33,
)

VALID_UNITS = (
    "degC",
    "degF",
    "K",
    "kelvin",
    "°C",
    "bar",
    "mbar",
    "kPa",
    "Pa",
    "psi",
    "L/min",
    "m**3/h",
    "m³/h",
    "N",
    "kN",
    "lbf",
    "V",
    "mV",
    "mA",
    "A",
    "ohm",
    "Ω",
    "kohm",
    "kg",
    "g",
    "lb",
    "µm",
    "mm",
    "m",
    "s",
    "%",
    "%RH",
    "percent",
)


def hostile_units() -> st.SearchStrategy[Any]:
    """Unit strings: arbitrary text, pint's traps, real units of every dimension."""
    return st.one_of(
        st.text(max_size=40),
        st.text(alphabet="m9()*/^.-+ %°²³⁹µΩdegCKPa", max_size=16),
        st.sampled_from(UNIT_TRAPS),
        st.sampled_from(VALID_UNITS),
    )


def hostile_identifiers(fleet: Fleet) -> st.SearchStrategy[Any]:
    """Instrument identifiers: arbitrary text, forbidden characters, every tenant's instruments."""
    return st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            ["bad\x00id\x07", "a/b", "+", "#", "x" * 65, "x" * 5_000, "no-such-instrument", ""]
        ),
        st.sampled_from(sorted(fleet.instruments)),
    )


def hostile_timestamps(end: float) -> st.SearchStrategy[Any]:
    """Timestamps: valid ones near ``end``, ISO 8601 variants, far past and future, non-strings."""
    return st.one_of(
        st.floats(min_value=end - 30 * SECONDS_PER_DAY, max_value=end).map(iso),
        st.sampled_from(
            [
                iso(end + 365 * SECONDS_PER_DAY),
                "1970-01-01T00:00:00Z",
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999999Z",
                "2026-03-01T10:00:00+05:30",
                "2026-03-01T10:00:00",
                "2026-03-01",
                "2026-03-01T23:59:60Z",
                "2026-02-30T00:00:00Z",
                "2026-03-01 10:00:00Z",
                "2026-03-01t10:00:00z",
                "yesterday",
                "",
            ]
        ),
        st.text(max_size=40),
        st.integers(),
        st.floats(),
    )


EXTREME_FLOATS = (
    1e308,
    -1e308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    -0.0,
    0.0,
    1e154,
    -1e154,
)


def extreme_numbers() -> st.SearchStrategy[Any]:
    """Numbers at and beyond the float limits, including tokens json.dumps refuses to write."""
    return st.one_of(
        st.sampled_from(EXTREME_FLOATS),
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True, max_value=1e-300),
        st.sampled_from(
            [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e400")]
        ),
        st.sampled_from([Raw("1e-400"), Raw("-0"), Raw("0e0"), Raw("1E308"), Raw("-0.0")]),
        st.integers(min_value=-(2**80), max_value=2**80),
    )


def wrong_types() -> st.SearchStrategy[Any]:
    """Values of every JSON type but a number: booleans, strings (numeric ones too), null, ..."""
    return st.one_of(
        st.booleans(),
        st.none(),
        st.text(max_size=10),
        st.sampled_from(["1.5", "21", "1e3", "NaN", "true"]),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    )


def hostile_integers() -> st.SearchStrategy[Any]:
    """For integer fields (``v``, ``seq``): floats with no fraction, booleans, strings, big ones."""
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64, -1]),
        st.sampled_from([Raw("1.0"), Raw("1e3"), Raw("-0"), Raw("1.5"), True, False]),
        wrong_types(),
    )


def _repeat_a_key(draw: st.DrawFn, pairs: list[tuple[str, Any]], value: Any) -> None:
    key = draw(st.sampled_from([k for k, _ in pairs])) if pairs else "v"
    pairs.insert(draw(st.integers(0, len(pairs))), (key, value))


def _nested(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


# --- readings and messages -----------------------------------------------------------------------


@st.composite
def reading_entries(
    draw: st.DrawFn, fleet: Fleet, tenant: str, site: str, gateway: str, end: float
) -> Any:
    """One entry of ``readings``: mostly a valid reading of the source, with one field hostile."""
    local = sorted(
        i
        for i, s in fleet.instruments.items()
        if (s.tenant, s.site, s.gateway) == (tenant, site, gateway)
    )
    instrument = draw(st.sampled_from(local or sorted(fleet.instruments)))
    spec = fleet.instruments[instrument]
    measuring_range = fleet.ranges[instrument]
    inside = st.floats(min_value=measuring_range.low, max_value=measuring_range.high)
    fields: dict[str, Any] = {
        "instrument": instrument,
        "ts": iso(end - draw(st.floats(0, 9e5))),
        "value": draw(inside),
        "unit": spec.unit,
        "seq": draw(st.integers(min_value=0, max_value=400)),
    }
    if draw(st.booleans()):
        fields["reference"] = {"value": draw(inside), "u": measuring_range.span / 1000}
    kind = draw(st.integers(min_value=0, max_value=17))
    if kind == 1:
        fields["unit"] = draw(hostile_units())
    elif kind == 2:
        fields["instrument"] = draw(hostile_identifiers(fleet))
    elif kind == 3:
        fields["ts"] = draw(hostile_timestamps(end))
    elif kind == 4:
        fields["value"] = draw(extreme_numbers())
    elif kind == 5:
        fields[draw(st.sampled_from(sorted(fields)))] = draw(wrong_types())
    elif kind == 6:
        fields["seq"] = draw(hostile_integers())
    elif kind == 7:
        fields["reference"] = {
            "value": draw(st.one_of(extreme_numbers(), wrong_types())),
            "u": draw(st.one_of(extreme_numbers(), wrong_types())),
        }
    elif kind == 8:
        fields["reference"] = draw(st.one_of(wrong_types(), st.just(None)))
    elif kind == 9:
        del fields[draw(st.sampled_from(sorted(fields)))]
    elif kind == 10:
        fields[draw(st.text(max_size=8))] = draw(st.integers())
    elif kind == 11:  # a reading of another instrument: another gateway, site or tenant
        other = fleet.instruments[draw(st.sampled_from(sorted(fleet.instruments)))]
        fields["instrument"], fields["unit"] = other.instrument_id, other.unit
    elif kind == 12:  # a real unit, converted: overflow, another dimension, or fine
        fields["unit"] = draw(st.sampled_from(VALID_UNITS))
        fields["value"] = draw(st.one_of(inside, extreme_numbers()))
    elif kind == 13:
        pairs = list(fields.items())
        _repeat_a_key(draw, pairs, draw(st.one_of(extreme_numbers(), wrong_types())))
        return Obj(tuple(pairs))
    elif kind == 14 and "reference" in fields:
        reference = list(fields["reference"].items())
        _repeat_a_key(draw, reference, draw(extreme_numbers()))
        fields["reference"] = Obj(tuple(reference))
    elif kind == 15:  # deep, but within the parser's limit: the message stays readable
        fields[draw(st.sampled_from(sorted(fields)))] = _nested(draw(st.integers(1, 150)))
    elif kind == 16:
        return draw(st.one_of(wrong_types(), extreme_numbers()))
    return fields


@dataclass(frozen=True)
class HostileMessage:
    """A topic and payload as a gateway may publish them."""

    topic: str
    payload: bytes
    readings: int | None = None
    """Readings the message counts, when known: the entries of a readable ``readings`` list
    (at least one) on a well-formed topic within the size limit."""

    def __repr__(self) -> str:
        return (
            f"HostileMessage({self.topic!r}, {self.payload[:160]!r}"
            f"{'...' if len(self.payload) > 160 else ''}, readings={self.readings})"
        )


def _sources(fleet: Fleet) -> list[tuple[str, str, str]]:
    return sorted({(s.tenant, s.site, s.gateway) for s in fleet.instruments.values()})


@st.composite
def _topics(draw: st.DrawFn, fleet: Fleet, publishable: bool) -> tuple[str, bool]:
    """A topic, and whether it is a well-formed readings topic."""
    tenant, site, gateway = draw(st.sampled_from(_sources(fleet)))
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind <= 5:
        return readings_topic(tenant, site, gateway), True
    if kind == 6:  # another tenant's, site's or gateway's namespace, well formed
        other = draw(st.sampled_from(_sources(fleet)))
        return readings_topic(*other), True
    bad_levels = ["gate way", "x" * 65, "bad!id", "ümlaut", "", "-lead"]
    if not publishable:
        bad_levels += ["+", "#", "a\x00b"]
    if kind == 7:
        bad = draw(st.sampled_from(bad_levels))
        return f"{TOPIC_ROOT}/{tenant}/{site}/{bad}/readings", False
    if kind == 8:
        return draw(
            st.sampled_from(
                [
                    f"{TOPIC_ROOT}/{tenant}/{site}/readings",
                    f"{TOPIC_ROOT}/{tenant}/{site}/{gateway}/alerts",
                    f"calstream/v2/{tenant}/{site}/{gateway}/readings",
                    f"spBv1.0/{tenant}/DDATA/{gateway}/{site}",
                    f"{TOPIC_ROOT}/{tenant}/{site}/{gateway}/readings/extra",
                ]
            )
        ), False
    if publishable:
        return readings_topic(tenant, site, gateway), True
    return draw(st.text(max_size=60)), False


@st.composite
def _envelope_message(draw: st.DrawFn, fleet: Fleet, end: float, publishable: bool) -> Any:
    topic, well_formed = draw(_topics(fleet, publishable))
    tenant, site, gateway = (
        topic.split("/")[2:5] if well_formed else draw(st.sampled_from(_sources(fleet)))
    )
    entries = draw(
        st.lists(reading_entries(fleet, tenant, site, gateway, end), min_size=0, max_size=8)
    )
    pairs: list[tuple[str, Any]] = [
        ("v", 1),
        ("tenant", tenant),
        ("site", site),
        ("gateway", gateway),
        ("readings", entries),
    ]
    kind = draw(st.integers(min_value=0, max_value=19))  # 1..6: the envelope is hostile
    if kind == 1:
        pairs[0] = ("v", draw(hostile_integers()))
    elif kind == 2:
        index = draw(st.integers(1, 3))
        pairs[index] = (pairs[index][0], draw(st.one_of(hostile_identifiers(fleet), wrong_types())))
    elif kind == 3:
        extra = draw(st.text(max_size=8).filter(lambda key: key != "readings"))
        pairs.append((extra, draw(st.integers())))
    elif kind == 4:
        del pairs[draw(st.integers(0, 3))]
    elif kind == 5:  # a repeated envelope key (never "readings": the count would be ambiguous)
        index = draw(st.integers(0, 3))
        pairs.insert(draw(st.integers(0, 5)), (pairs[index][0], draw(hostile_identifiers(fleet))))
    elif kind == 6:  # readings that are no list of readings, or nested past the parser's limit
        not_readings = draw(st.one_of(wrong_types(), _nested_strategy()))
        pairs = [(k, v) for k, v in pairs if k != "readings"] + [("readings", not_readings)]
        entries = not_readings if isinstance(not_readings, list) else []
    text = to_json(Obj(tuple(pairs)))
    counts = max(1, len(entries)) if well_formed else None
    return text, topic, counts


def _nested_strategy() -> st.SearchStrategy[Raw]:
    return st.integers(min_value=1, max_value=5_000).map(_nested)


@st.composite
def _encoded(draw: st.DrawFn, fleet: Fleet, end: float, publishable: bool) -> HostileMessage:
    """An envelope, as UTF-8 or not, cut short, padded past the size limit, or as it is."""
    text, topic, counts = draw(_envelope_message(fleet, end, publishable))
    kind = draw(st.integers(min_value=0, max_value=20))
    if kind <= 6 or kind > 12:
        return HostileMessage(topic, text.encode(), counts)
    counted_once = 1 if counts is not None else None
    if kind == 7:
        encoding = draw(st.sampled_from(["utf-16", "utf-32", "utf-16-le", "utf-8-sig"]))
        return HostileMessage(topic, text.encode(encoding), counted_once)
    if kind == 8:
        return HostileMessage(topic, text.encode("latin-1", "replace") + b"\xff", counted_once)
    if kind == 9:
        raw = text.encode()
        cut = draw(st.integers(0, max(0, len(raw) - 1)))
        return HostileMessage(topic, raw[:cut], counted_once)
    if kind == 10:
        raw = bytearray(text.encode())
        raw.insert(draw(st.integers(0, len(raw))), draw(st.sampled_from([0x80, 0xC0, 0xFE, 0xFF])))
        return HostileMessage(topic, bytes(raw), counted_once)
    if kind == 11:
        padding = b" " * (MAX_PAYLOAD_BYTES + 1 - len(text.encode()))
        return HostileMessage(topic, text.encode() + padding, counted_once)
    return HostileMessage(topic, draw(st.binary(max_size=400)), None)


def hostile_messages(
    fleet: Fleet, end: float | None = None, *, publishable: bool = False
) -> st.SearchStrategy[HostileMessage]:
    """Messages with hostile topics, envelopes, readings and encodings, for ``fleet``.

    ``end`` is the receiver's clock (default: the fleet's ``as_of``); timestamps are drawn
    before it. ``publishable`` keeps to topics a broker accepts in a PUBLISH.
    """
    clock = end if end is not None else (fleet.as_of or 0.0)
    return _encoded(fleet, clock, publishable)
