"""Amendments with an audit trail, lookups by time over revisions, and re-correction.

ISO/IEC 17025:2017 §7.8.8: an amendment is a new revision that supersedes the earlier one,
the original stays; §7.5.2: who amended, when and why remain retrievable.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrology.audit import Amendment, recorrect
from metrology.calibration import CalibrationHistory, CalibrationRecord, Correction
from metrology.errors import CalibrationError
from metrology.timebase import SECONDS_PER_DAY

DAY = SECONDS_PER_DAY
T0 = 1_700_000_000.0


def record(
    certificate: str, at: float, offset: float = 0.0, gain: float = 1.0, instrument: str = "PT-1"
) -> CalibrationRecord:
    correction = Correction(offset, gain)
    return CalibrationRecord(instrument, certificate, at, correction, 0.02, 2.0, 365.0)


def amendment(certificate: str, revision: int, at: float, reason: str = "typo") -> Amendment:
    return Amendment(certificate, revision, at, "j.doe", reason)


def two_certificates() -> CalibrationHistory:
    return CalibrationHistory([record("CAL-1", T0, 0.10), record("CAL-2", T0 + 100 * DAY, 0.20)])


def test_amendment_supersedes_for_lookups_and_keeps_the_original() -> None:
    history = two_certificates()
    fixed = record("CAL-1", T0, offset=-0.10)  # the certificate had the sign wrong
    amended = history.amend(fixed, amendment("CAL-1", 1, T0 + 30 * DAY, "offset sign"))

    in_force = amended.valid_at(T0 + DAY)
    assert in_force is not None
    assert (in_force.certificate_id, in_force.revision) == ("CAL-1", 1)
    assert in_force.correction == Correction(-0.10)
    corrected, used = amended.correct(T0 + DAY, 10.0)
    assert corrected == pytest.approx(9.9)
    assert used is in_force

    trail = amended.audit_trail("CAL-1")
    assert [r.revision for r in trail] == [0, 1]
    assert trail[0].amendment is None and trail[0].correction == Correction(0.10)
    assert trail[1].amendment == Amendment("CAL-1", 1, T0 + 30 * DAY, "j.doe", "offset sign")
    # Certificates count once; the other certificate and the original history are untouched.
    assert len(amended) == 2
    assert [r.certificate_id for r in amended.records] == ["CAL-1", "CAL-2"]
    assert len(amended.all_revisions) == 3
    assert history.valid_at(T0 + DAY) == record("CAL-1", T0, 0.10)
    assert history.audit_trail("CAL-1") == (record("CAL-1", T0, 0.10),)


def test_amendment_can_move_the_calibration_date() -> None:
    """A wrong date on the certificate: the amended date decides which record is in force."""
    history = two_certificates()
    amended = history.amend(
        record("CAL-2", T0 + 50 * DAY, 0.20), amendment("CAL-2", 1, T0 + 120 * DAY, "date")
    )
    found = amended.valid_at(T0 + 60 * DAY)
    assert found is not None and found.certificate_id == "CAL-2"
    found_before = history.valid_at(T0 + 60 * DAY)
    assert found_before is not None and found_before.certificate_id == "CAL-1"


@pytest.mark.parametrize(
    ("new", "change", "why"),
    [
        (record("CAL-9", T0), amendment("CAL-9", 1, T0), "unknown"),
        (record("CAL-1", T0), amendment("CAL-2", 1, T0), "another certificate"),
        (record("CAL-1", T0, instrument="PT-2"), amendment("CAL-1", 1, T0), "other instrument"),
    ],
)
def test_amend_refuses_inconsistent_amendments(
    new: CalibrationRecord, change: Amendment, why: str
) -> None:
    with pytest.raises(CalibrationError):
        two_certificates().amend(new, change)


def test_revision_must_increase_and_amendments_keep_their_order() -> None:
    history = two_certificates().amend(record("CAL-1", T0, 0.3), amendment("CAL-1", 2, T0 + DAY))
    with pytest.raises(CalibrationError, match="revisions must increase"):
        history.amend(record("CAL-1", T0, 0.4), amendment("CAL-1", 2, T0 + 2 * DAY))
    with pytest.raises(CalibrationError, match="revisions must increase"):
        history.amend(record("CAL-1", T0, 0.4), amendment("CAL-1", 1, T0 + 2 * DAY))
    with pytest.raises(CalibrationError, match="dated before"):
        history.amend(record("CAL-1", T0, 0.4), amendment("CAL-1", 3, T0))
    with pytest.raises(CalibrationError, match="unknown certificate"):
        history.audit_trail("CAL-404")


def test_amendment_needs_author_reason_and_positive_revision() -> None:
    for bad in (
        dict(revision=0),
        dict(amended_by=" "),
        dict(reason=""),
        dict(certificate_id=""),
        dict(amended_at=float("nan")),
    ):
        fields = dict(certificate_id="CAL-1", revision=1, amended_at=T0, amended_by="a", reason="r")
        fields.update(bad)
        with pytest.raises(CalibrationError):
            Amendment(**fields)  # type: ignore[arg-type]


def test_with_record_refuses_to_overwrite_a_certificate() -> None:
    with pytest.raises(CalibrationError):
        two_certificates().with_record(record("CAL-1", T0 + 5 * DAY, 9.9))


def test_history_round_trips_through_all_revisions() -> None:
    """A history rebuilt from ``all_revisions`` (as storage would) answers the same."""
    history = two_certificates().amend(record("CAL-1", T0, 0.3), amendment("CAL-1", 1, T0 + DAY))
    rebuilt = CalibrationHistory(reversed(history.all_revisions))
    assert rebuilt.records == history.records
    assert rebuilt.audit_trail("CAL-1") == history.audit_trail("CAL-1")


def test_recorrect_rederives_history_without_touching_raw_values() -> None:
    """Raw (ts, indication) pairs re-corrected after an amendment: only the amended span moves."""
    history = two_certificates()
    raw = [(T0 - DAY, 10.0), (T0 + DAY, 10.0), (T0 + 101 * DAY, 10.0)]
    frozen_raw = list(raw)
    before = recorrect(raw, history)
    assert before == [
        (T0 - DAY, 10.0, None),
        (T0 + DAY, 10.1, "CAL-1"),
        (T0 + 101 * DAY, 10.2, "CAL-2"),
    ]
    amended = history.amend(record("CAL-1", T0, -0.1), amendment("CAL-1", 1, T0 + 200 * DAY))
    after = recorrect(raw, amended)
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1][0::2] == (T0 + DAY, "CAL-1")
    assert after[1][1] == pytest.approx(9.9)
    assert raw == frozen_raw


# --- properties ------------------------------------------------------------------------------

# (certificate index, offset) amendments applied in order to three certificates.
amendment_plans = st.lists(st.tuples(st.integers(0, 2), st.floats(-1.0, 1.0)), max_size=15)


def apply_plan(plan: list[tuple[int, float]]) -> CalibrationHistory:
    history = CalibrationHistory(
        [record(f"CAL-{i}", T0 + i * 100 * DAY, offset=float(i)) for i in range(3)]
    )
    for step, (i, offset) in enumerate(plan):
        certificate = f"CAL-{i}"
        newest = history.audit_trail(certificate)[-1]
        change = amendment(certificate, newest.revision + 1, T0 + step * DAY, f"step {step}")
        history = history.amend(dataclasses.replace(newest, correction=Correction(offset)), change)
    return history


@settings(max_examples=100, deadline=None)
@given(amendment_plans)
def test_amendments_never_lose_a_revision(plan: list[tuple[int, float]]) -> None:
    history = apply_plan(plan)
    assert len(history.all_revisions) == 3 + len(plan)
    for i in range(3):
        trail = history.audit_trail(f"CAL-{i}")
        assert [r.revision for r in trail] == list(range(len(trail)))
        assert trail[0].correction == Correction(float(i))  # the original is still there
        steps = [(s, offset) for s, (j, offset) in enumerate(plan) if j == i]
        assert [r.correction for r in trail[1:]] == [Correction(o) for _, o in steps]
        assert [r.amendment.reason for r in trail[1:] if r.amendment] == [
            f"step {s}" for s, _ in steps
        ]


@settings(max_examples=100, deadline=None)
@given(amendment_plans, st.floats(T0 - 50 * DAY, T0 + 400 * DAY))
def test_valid_at_picks_newest_revision_of_certificate_in_force(
    plan: list[tuple[int, float]], ts: float
) -> None:
    history = apply_plan(plan)
    found = history.valid_at(ts)
    # Certificate in force by date alone (dates never change in this plan).
    starts = [T0 + i * 100 * DAY for i in range(3)]
    in_force = [i for i, start in enumerate(starts) if start <= ts]
    if not in_force:
        assert found is None
        return
    certificate = f"CAL-{in_force[-1]}"
    assert found is not None and found.certificate_id == certificate
    assert found == history.audit_trail(certificate)[-1]
    assert found.revision == sum(1 for i, _ in plan if f"CAL-{i}" == certificate)
