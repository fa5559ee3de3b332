"""The state codec: every state, reading and calibration history survives JSON unchanged."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from step_factories import MPE, make_record, make_spec, readings_with_error

from metrology.audit import Amendment
from metrology.calibration import CalibrationHistory
from metrology.curves import CurveCorrection
from metrology.detectors import (
    Baseline,
    CusumChart,
    CusumState,
    EwmaState,
    PageHinkleyChart,
    PageHinkleyState,
    WarmUp,
)
from metrology.drift import DriftFit
from metrology.health import Status
from metrology.in_use import InUseLimits
from metrology.onset import DriftRecord
from metrology.reading import Reading
from stream_processors.codec import (
    StateCodecError,
    decode_calibrations,
    decode_peer_group,
    decode_reading,
    decode_state,
    encode_calibrations,
    encode_peer_group,
    encode_reading,
    encode_state,
)
from stream_processors.context import InstrumentContext
from stream_processors.peers import PeerBoard
from stream_processors.policy import ProcessingPolicy
from stream_processors.state import DriftTracking, InstrumentState, Judgement
from stream_processors.step import step


def through_json(document: dict) -> dict:
    """What a Faust table or a Kafka record gives back: strict JSON text, parsed again."""
    return json.loads(json.dumps(document, allow_nan=False))


floats = st.floats(allow_nan=True, allow_infinity=True)
finite = st.floats(allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-9, max_value=1e9)
maybe = st.one_of(st.none(), floats)
ints = st.integers(min_value=0, max_value=2**53)
fits = st.builds(DriftFit, ints, floats, floats, floats, floats, floats)
statuses = st.sampled_from(list(Status))


@st.composite
def drift_records(draw: st.DrawFn) -> DriftRecord:
    """Records built by adding points, so bins, merges and the open bin all occur."""
    steps = draw(st.lists(st.floats(0.0, 9.0), max_size=120))
    errors = draw(st.lists(finite, min_size=len(steps), max_size=len(steps)))
    record, t = DriftRecord(), 0.0
    for dt, e in zip(steps, errors, strict=True):
        t += dt
        record = record.add(t, e)
    return record


in_use = st.builds(
    InUseLimits, maybe, maybe, maybe, maybe, maybe, maybe, maybe, ints, floats, floats, floats,
    floats,
)  # fmt: skip
hinkley_charts = st.one_of(
    st.none(),
    st.builds(
        PageHinkleyChart,
        st.floats(min_value=0, max_value=10),
        positive,
        st.integers(min_value=1, max_value=100),
    ),
)

trackings = st.builds(
    DriftTracking,
    certificate_id=st.one_of(st.none(), st.text(max_size=20)),
    origin=maybe,
    warm_up=st.builds(WarmUp, ints, floats, floats),
    baseline=st.one_of(st.none(), st.builds(Baseline, finite, positive)),
    cusum_chart=st.one_of(
        st.none(),
        st.builds(
            CusumChart,
            st.floats(min_value=0, max_value=10),
            positive,
            st.floats(min_value=0, max_value=0.99),
        ),
    ),
    shift_to_detect=maybe,
    ewma=st.builds(EwmaState, ints, maybe),
    cusum=st.builds(CusumState, ints, floats, floats),
    fit=fits,
    drift_since=maybe,
    drift_detector=st.one_of(st.none(), st.sampled_from(["CUSUM", "EWMA", "PAGE_HINKLEY"])),
    out_of_tolerance_since=maybe,
    predicted_oot_at=maybe,
    prediction_note=st.one_of(st.none(), st.text(max_size=40)),
    estimated_oot_at=maybe,
    rise_fit=fits,
    fall_fit=fits,
    drift_side=st.sampled_from([-1, 0, 1]),
    in_use=in_use,
    record=drift_records(),
    estimate_note=st.one_of(st.none(), st.text(max_size=40)),
    estimate_u_days=maybe,
    drift_onset_at=maybe,
    page_hinkley_chart=hinkley_charts,
    page_hinkley=st.builds(PageHinkleyState, ints, floats, floats, floats),
)
states = st.builds(
    InstrumentState,
    tracking=trackings,
    judgement=st.builds(Judgement, maybe, maybe, maybe, maybe, maybe),
    readings=ints,
    last_reading_at=maybe,
    status=st.one_of(st.none(), statuses),
    conditions=st.lists(statuses, max_size=4).map(tuple),
    status_since=maybe,
    first_drift_at=maybe,
)


def same(a: object, b: object) -> bool:
    """Equality where NaN equals NaN (a NaN field must come back NaN, not become equal)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(states)
def test_any_state_survives_strict_json(state: InstrumentState) -> None:
    decoded = decode_state(through_json(encode_state(state)))
    assert same(decoded, state)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        Reading,
        st.just("acme"),
        st.just("north"),
        st.just("gw-01"),
        st.just("acme-north-TT-001"),
        finite,
        finite,
        st.just("degC"),
        st.integers(min_value=0, max_value=2**63 - 1),
        st.one_of(st.none(), finite),
        st.one_of(st.none(), positive),
    )
)
def test_any_reading_survives_strict_json(reading: Reading) -> None:
    assert decode_reading(through_json(encode_reading(reading))) == reading


def test_real_states_round_trip_and_the_step_goes_on_identically() -> None:
    """States from a drifting run: decoded mid-way, the rest of the run is the same to the bit."""
    record = make_record()
    context = InstrumentContext(make_spec(), CalibrationHistory([record]), ProcessingPolicy())
    rng = np.random.default_rng(5)
    errors = rng.normal(0.0, 0.015, 600) + np.linspace(0.0, 1.5 * MPE, 600)
    readings = readings_with_error(errors, record)
    state = InstrumentState()
    straight: list[tuple] = []
    for reading in readings:
        state, assessment, change = step(state, reading, context)
        straight.append((assessment, change))
    assert state.tracking.drift_since is not None and state.status is not Status.OK

    resumed = InstrumentState()
    replayed: list[tuple] = []
    for reading in readings:
        resumed = decode_state(through_json(encode_state(resumed)))  # as if from a table
        resumed, assessment, change = step(resumed, reading, context)
        replayed.append((assessment, change))
    assert replayed == straight
    assert resumed == state


def test_calibration_history_with_amendments_and_curves_round_trips() -> None:
    first = make_record("CAL-1")
    curve = make_record("CAL-2", at=first.calibrated_at + 86_400 * 200)
    curve = type(curve)(
        curve.instrument_id, "CAL-2", curve.calibrated_at,
        CurveCorrection(((0.0, 0.01), (50.0, -0.02), (100.0, 0.03))), 0.04, 2.0, 180.0,
    )  # fmt: skip
    history = CalibrationHistory([first, curve]).amend(
        make_record("CAL-1", offset=0.31),
        Amendment("CAL-1", 1, first.calibrated_at + 86_400, "lab", "typo in offset"),
    )
    decoded = decode_calibrations(through_json(encode_calibrations(history)))
    assert decoded.all_revisions == history.all_revisions
    assert decoded.records == history.records
    assert decoded.valid_at(first.calibrated_at + 10).correction.offset == 0.31


def test_peer_group_board_round_trips_in_member_order() -> None:
    board = PeerBoard()
    for i in range(12):
        for member in ("b", "a", "c"):
            board.post("g", member, 100.0 * i, 20.0 + i / 7, 0.01)
    restored = decode_peer_group(through_json(encode_peer_group(board, "g")), "g")
    assert encode_peer_group(restored, "g") == encode_peer_group(board, "g")
    assert list(restored._groups["g"]) == ["b", "a", "c"]
    assert restored.reference_for("g", "a", 1100.0) == board.reference_for("g", "a", 1100.0)


@pytest.mark.parametrize(
    "document",
    [{"v": 99}, {"v": 1, "tracking": {"origin": "soon"}}, {"v": 1, "status": "FINE"}, []],
)
def test_unreadable_documents_are_refused_with_a_reason(document: object) -> None:
    with pytest.raises(StateCodecError):
        decode_state(document)  # type: ignore[arg-type]
