"""Line protocol: the same bytes as influxdb-client's Point, NaN never sent, exact timestamps,
and nasty tags and strings read back unchanged from a real influxd."""

from __future__ import annotations

import math
import re
from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st
from influxdb_client import Point

from calstream.servers.influxdb import LocalInfluxDB
from metrology.assessment import Assessment, HealthSnapshot
from metrology.batch import OutputBatch
from metrology.health import Status
from metrology.reading import Reading
from storage.influx import InfluxSink
from storage.influx.lineprotocol import line, nanoseconds, quote_string
from storage.influx.points import ReadingSerialiser, health_line, health_lines
from storage.influx.schema import HEALTH_NUMBER_FIELDS, HEALTH_TEXT_FIELDS, READING_DRIFT_FIELDS

# Text that exercises every escape: separators, quotes, backslashes, newlines, unicode.
nasty_text = st.text(
    alphabet=st.sampled_from(list('ab ,="\\\n\t\r=xé∆😀.0')) | st.characters(), max_size=20
)
identifier = nasty_text.filter(lambda s: s.strip() != "" and not s.startswith("#"))
number = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**62), 2**62)
field_value = number | nasty_text | st.none()
timestamp = st.integers(0, 2**62)


def point_line(measurement: str, tags: dict, fields: dict, ns: int) -> str:
    point = Point(measurement)
    for key, value in tags.items():
        point.tag(key, value)
    for key, value in fields.items():
        point.field(key, value)
    return point.time(ns).to_line_protocol()


@settings(max_examples=400, deadline=None)
@given(
    measurement=identifier,
    tags=st.dictionaries(identifier, nasty_text | st.none(), max_size=4),
    fields=st.dictionaries(identifier, field_value, max_size=6),
    ns=timestamp,
)
@example(measurement="m", tags={"t": "ends\\"}, fields={"f": float("nan"), "g": 1.0}, ns=1)
def test_line_is_byte_for_byte_what_influxdb_client_writes(
    measurement: str, tags: dict, fields: dict, ns: int
) -> None:
    expected = point_line(measurement, tags, fields, ns)
    assert (line(measurement, tags, fields, ns) or "") == expected


def parse(text: str) -> tuple[str, dict[str, object], int]:
    """A line's head (measurement and tags, as written), its fields (floats parsed, integers,
    strings as written) and its timestamp."""
    i = 0
    while text[i] != " ":
        i += 2 if text[i] == "\\" else 1
    head, rest = text[:i], text[i + 1 :]
    body, ts = rest.rsplit(" ", 1)
    fields: dict[str, object] = {}
    for match in re.finditer(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)', body):
        key, value = match.groups()
        if value.startswith('"'):
            fields[key] = value
        elif value.endswith("i"):
            fields[key] = int(value[:-1])
        else:
            fields[key] = float(value)
    return head, fields, int(ts)


reading_numbers = st.floats(allow_nan=True, allow_infinity=True, width=64)
optional_number = st.none() | reading_numbers


@settings(max_examples=400, deadline=None)
@given(
    instrument=identifier,
    tenant=identifier,
    site=identifier,
    measurand=st.none() | identifier,
    ts=st.floats(0, 4e9, allow_nan=False),
    value=reading_numbers,
    corrected=reading_numbers,
    seq=st.integers(0, 2**40),
    certificate=st.none() | nasty_text,
    numbers=st.tuples(*[optional_number] * 7) | st.tuples(*[reading_numbers] * 7),
    status=st.sampled_from(list(Status)),
)
def test_reading_fast_path_matches_the_generic_serialiser_and_point(
    instrument: str,
    tenant: str,
    site: str,
    measurand: str | None,
    ts: float,
    value: float,
    corrected: float,
    seq: int,
    certificate: str | None,
    numbers: tuple[float | None, ...],
    status: Status,
) -> None:
    reading = Reading(tenant, site, "gw", instrument, ts, value, "degC", seq)
    assessment = Assessment(instrument, ts, seq, corrected, certificate, *numbers, status)
    serialiser = ReadingSerialiser({instrument: measurand}.get)
    fields = dict(zip(READING_DRIFT_FIELDS, numbers, strict=True))
    fields |= {
        "value": value,
        "corrected": corrected,
        "seq": seq,
        "status": status.value,
        "certificate": certificate,
    }
    tags = {"tenant": tenant, "site": site, "instrument": instrument, "measurand": measurand}
    expected = point_line("reading", tags, fields, nanoseconds(ts))
    # The general path writes Point's bytes; the fast path the same point (some floats are
    # spelt differently by orjson: 0.00003 for 3e-05, the same float).
    assert serialiser.line(reading, assessment) == expected
    [fast] = serialiser.lines([(reading, assessment)])
    assert parse(fast) == parse(expected)
    sent = parse(fast)[1]
    for name, number in fields.items():
        if isinstance(number, float) and not math.isfinite(number):
            assert name not in sent
        elif number is not None:
            assert name in sent


health_number = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(2**53), 2**53)
    | st.booleans()
    | st.none()
    | nasty_text
)


@settings(max_examples=300, deadline=None)
@given(
    instrument=identifier,
    status=st.sampled_from(list(Status)),
    conditions=st.lists(st.sampled_from(list(Status)), max_size=3),
    reasons=st.lists(nasty_text, max_size=3),
    evaluated_at=st.floats(0, 4e9, allow_nan=False),
    last_reading_at=st.none() | st.floats(0, 4e9, allow_nan=False),
    numbers=st.dictionaries(
        st.sampled_from([*HEALTH_NUMBER_FIELDS, *HEALTH_TEXT_FIELDS, "unknown"]), health_number
    ),
)
def test_health_lines_are_the_points_of_the_generic_health_line(
    instrument: str,
    status: Status,
    conditions: list[Status],
    reasons: list[str],
    evaluated_at: float,
    last_reading_at: float | None,
    numbers: dict,
) -> None:
    snapshot = HealthSnapshot(
        instrument, "acme", "north", status, tuple(conditions), tuple(reasons), evaluated_at,
        last_reading_at, numbers,
    )  # fmt: skip
    expected = health_line(snapshot)
    assert expected is not None
    [fast] = health_lines([snapshot])
    assert parse(fast) == parse(expected)
    fields = parse(fast)[1]
    assert "unknown" not in fields
    for key, value in numbers.items():
        if key in HEALTH_NUMBER_FIELDS and type(value) in (int, float) and math.isfinite(value):
            assert fields[key] == float(value)
        elif key in HEALTH_TEXT_FIELDS and type(value) is str:
            assert fields[key] == quote_string(value)
        else:
            assert key not in fields


@given(st.floats(0, 2**40, allow_nan=False))
def test_nanoseconds_are_exact(ts: float) -> None:
    # The exact rational value of the float, rounded to the nanosecond (half to even).
    assert nanoseconds(ts) == round(Fraction(ts) * 10**9)


@given(st.floats(1.0e9, 2.5e9, allow_nan=False))
def test_adjacent_reading_times_stay_distinct(ts: float) -> None:
    after = math.nextafter(ts, math.inf)
    assert nanoseconds(after) > nanoseconds(ts)


def test_nasty_tags_and_strings_come_back_unchanged_from_influxd(influxdb: LocalInfluxDB) -> None:
    # (A tag value cannot end in a backslash: line protocol has no escape for it.)
    tenant, site = "ten ant,=x", 'si"te\\x'
    instrument = 'TT 1,=\\"é∆'
    certificate = 'CAL "7",\\ 1=2\nnext line'
    reading = Reading(tenant, site, "gw", instrument, 1_780_000_000.25, 21.5, "degC", 7)
    assessment = Assessment(
        instrument, reading.ts, 7, float("nan"), certificate, None, None, None, None, None,
        None, None, Status.OK,
    )  # fmt: skip
    with InfluxSink.from_url(influxdb.store_url) as sink:
        assert sink.write_series(OutputBatch(readings=[(reading, assessment)])) == 1
        series = sink.query('SELECT * FROM "reading"')
    assert len(series) == 1
    row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
    assert row == {
        "time": 1_780_000_000_250_000_000,
        "certificate": certificate,  # (no "corrected": NaN, not sent)
        "instrument": instrument,
        "seq": 7,
        "site": site,
        "status": "OK",
        "tenant": tenant,
        "value": 21.5,
    }
