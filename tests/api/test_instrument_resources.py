"""Instruments, calibrations and the fleet's health over HTTP: success and refusals."""

from __future__ import annotations

from typing import Any

import pytest
from api_harness import READINGS_PER_INSTRUMENT, T0, LiveApi, problem

NEW = {
    "tenant": "acme", "site": "plant", "id": "acme-PT-100", "gateway": "gw-01",
    "measurand": "pressure", "unit": "bar", "range": {"low": 0, "high": 16},
    "tolerance": {"mpe": 0.016}, "period_s": 3600, "reference": {"kind": "none"},
}  # fmt: skip
CERTIFICATE = {
    "certificate": "CLB-100", "date": "2026-03-01T00:00:00Z", "correction": {"offset": 0.001},
    "expanded_uncertainty": 0.004, "interval_days": 365,
}  # fmt: skip


def _registered(live: LiveApi) -> Any:
    admin = live.as_role("acme", "admin")
    response = admin.post("/v1/instruments", json=NEW)
    assert response.status_code == 201, response.text
    return admin


def test_register_show_list_change_retire(live: LiveApi) -> None:
    admin = _registered(live)
    shown = admin.get("/v1/instruments/acme-PT-100")
    assert shown.status_code == 200
    record = shown.json()
    assert (record["tolerance_lower"], record["tolerance_upper"]) == (-0.016, 0.016)
    assert (record["range_low"], record["range_high"], record["unit"]) == (0.0, 16.0, "bar")
    listed = admin.get("/v1/instruments", params={"tenant": "acme"}).json()["items"]
    assert [i["instrument_id"] for i in listed] == ["acme-PT-100", "acme-TT-001", "acme-TT-002"]

    changed = admin.patch(
        "/v1/instruments/acme-PT-100",
        json={"tolerance": {"mpe": 0.02}, "description": "spare", "reason": "class 0.125"},
    )
    assert changed.status_code == 200
    assert changed.json()["tolerance_upper"] == 0.02 and changed.json()["description"] == "spare"
    audit = admin.get("/v1/audit", params={"limit": 1}).json()["items"][0]
    assert (audit["operation"], audit["reason"]) == ("change_instrument", "class 0.125")
    assert audit["before"]["tolerance_upper"] == 0.016 and audit["after"]["tolerance_upper"] == 0.02

    retired = admin.post("/v1/instruments/acme-PT-100/retire", json={"reason": "scrapped"})
    assert retired.status_code == 200 and retired.json()["retired_at"] == live.clock.now
    assert "acme-PT-100" not in admin.get("/v1/instruments").text
    every = admin.get("/v1/instruments", params={"retired": "true"}).json()["items"]
    assert len(every) == 3
    again = admin.patch("/v1/instruments/acme-PT-100", json={"description": "x"})
    assert again.status_code == 409
    assert "retired" in problem(again)["detail"]


def test_register_refusals(live: LiveApi) -> None:
    admin = _registered(live)
    duplicate = admin.post("/v1/instruments", json=NEW)
    assert duplicate.status_code == 409
    unknown_field = admin.post("/v1/instruments", json={**NEW, "id": "x-1", "colour": "red"})
    assert unknown_field.status_code == 422
    assert [e["pointer"] for e in problem(unknown_field)["errors"]] == ["#/colour"]
    nested = admin.post("/v1/instruments", json={**NEW, "id": "x-2", "tolerance": {"mpe": "wide"}})
    assert [e["pointer"] for e in problem(nested)["errors"]] == ["#/tolerance/mpe"]
    both = admin.post(
        "/v1/instruments", json={**NEW, "id": "x-3", "tolerance": {"mpe": 1, "lower": -1}}
    )
    assert both.status_code == 422
    assert [e["pointer"] for e in problem(both)["errors"]] == ["#/tolerance"]
    no_gateway = admin.post("/v1/instruments", json={**NEW, "id": "x-4", "gateway": "gw-09"})
    assert no_gateway.status_code == 404
    assert "register the gateway first" in problem(no_gateway)["detail"]
    nothing = admin.patch("/v1/instruments/acme-PT-100", json={})
    assert nothing.status_code == 422
    assert [e["pointer"] for e in problem(nothing)["errors"]] == ["#"]
    bad_id = admin.get("/v1/instruments/bad%20id")
    assert bad_id.status_code == 422
    assert [(e["location"], e["field"]) for e in problem(bad_id)["errors"]] == [
        ("path", "instrument_id")
    ]
    no_reason = admin.post("/v1/instruments/acme-PT-100/retire", json={"reason": "  "})
    assert no_reason.status_code == 422
    assert [e["pointer"] for e in problem(no_reason)["errors"]] == ["#/reason"]


def test_certificates_recorded_amended_and_listed_with_revisions(live: LiveApi) -> None:
    _registered(live)
    calibration = live.as_role("acme", "calibration")
    recorded = calibration.post("/v1/instruments/acme-PT-100/calibrations", json=CERTIFICATE)
    assert recorded.status_code == 201
    revision = recorded.json()
    assert revision["revision"] == 0 and revision["in_force"] is True
    assert revision["correction"] == {"kind": "gain_offset", "offset": 0.001, "gain": 1.0}
    assert revision["standard_uncertainty"] == pytest.approx(0.002)
    assert revision["due_at"] == pytest.approx(revision["calibrated_at"] + 365 * 86400)

    amended = calibration.post(
        "/v1/instruments/acme-PT-100/calibrations/CLB-100/amendments",
        json={"reason": "offset transposed", "correction": {"offset": 0.0015}},
    )
    assert amended.status_code == 201
    assert amended.json()["revision"] == 1
    assert amended.json()["amendment"] == {
        "revision": 1, "amended_at": live.clock.now, "amended_by": "calibration@acme",
        "reason": "offset transposed",
    }  # fmt: skip
    listed = calibration.get("/v1/instruments/acme-PT-100/calibrations").json()
    assert [c["certificate_id"] for c in listed["items"]] == ["CLB-100"]
    revisions = listed["items"][0]["revisions"]
    assert [(r["revision"], r["in_force"], r["correction"]["offset"]) for r in revisions] == [
        (0, False, 0.001),
        (1, True, 0.0015),
    ]


def test_certificate_refusals(live: LiveApi) -> None:
    admin = _registered(live)
    calibration = live.as_role("acme", "calibration")
    path = "/v1/instruments/acme-PT-100/calibrations"
    assert admin.post(path, json=CERTIFICATE).status_code == 403  # admins do not calibrate
    assert calibration.post(path, json=CERTIFICATE).status_code == 201
    earlier = calibration.post(
        path, json={**CERTIFICATE, "certificate": "CLB-099", "date": "2026-02-01T00:00:00Z"}
    )
    assert earlier.status_code == 409
    assert "strictly increasing" in problem(earlier)["detail"]
    wrong_unit = calibration.post(
        path, json={**CERTIFICATE, "certificate": "CLB-101", "date": "2026-04-01T00:00:00Z",
                    "unit": "degC"},
    )  # fmt: skip
    assert wrong_unit.status_code == 422
    assert [e["pointer"] for e in problem(wrong_unit)["errors"]] == ["#/unit"]
    missing = calibration.post(
        f"{path}/CLB-404/amendments", json={"reason": "x", "interval_days": 180}
    )
    assert missing.status_code == 404
    nothing = calibration.post(f"{path}/CLB-100/amendments", json={"reason": "x"})
    assert nothing.status_code == 422
    no_reason = calibration.post(f"{path}/CLB-100/amendments", json={"interval_days": 180})
    assert [e["pointer"] for e in problem(no_reason)["errors"]] == ["#/reason"]


def test_a_provider_calibrates_its_clients_instruments_under_a_calibration_contract(
    live: LiveApi,
) -> None:
    provider = live.as_role("calprov", "calibration")
    path = "/v1/instruments/acme-TT-001/calibrations"
    made = provider.post(path, json={**CERTIFICATE, "certificate": "CP-1"})
    assert made.status_code == 201
    trail = provider.get(path).json()["items"]
    assert [c["certificate_id"] for c in trail] == ["CAL-acme-TT-001-1", "CP-1"]
    # ...and changes nothing else of the client
    change = provider.patch("/v1/instruments/acme-TT-001", json={"description": "x"})
    assert change.status_code == 403


def test_health_with_the_numbers_behind_it(live: LiveApi) -> None:
    viewer = live.as_role("acme", "viewer")
    drifting = viewer.get("/v1/instruments/acme-TT-002/health")
    assert drifting.status_code == 200
    body = drifting.json()
    assert (body["status"], body["conditions"]) == ("DRIFTING", ["DRIFTING"])
    assert body["numbers"] == {"residual": 0.04, "u_residual": 0.032, "decision_rule": "simple"}
    assert body["last_reading_at"] == T0 + 60.0 * (READINGS_PER_INSTRUMENT - 1)
    _registered(live)
    fresh = viewer.get("/v1/instruments/acme-PT-100/health").json()
    assert (fresh["status"], fresh["evaluated_at"], fresh["numbers"]) == ("NO_DATA", None, {})

    fleet = viewer.get("/v1/fleet/health", params={"worst": 1}).json()
    assert fleet["counts"]["DRIFTING"] == 1 and fleet["counts"]["OK"] == 1
    assert fleet["counts"]["NO_DATA"] == 1 and sum(fleet["counts"].values()) == 3
    assert [w["instrument_id"] for w in fleet["worst"]] == ["acme-TT-002"]


@pytest.mark.parametrize("points", [1, 7, 40, 500])
def test_series_downsampled_to_points(live: LiveApi, points: int) -> None:
    viewer = live.as_role("acme", "viewer")
    # exactly the minutes of the readings: T0 .. T0 + 40 min
    window = {"from": "2026-05-28T20:26:40Z", "until": "2026-05-28T21:06:40Z"}
    response = viewer.get("/v1/instruments/acme-TT-001/series", params={**window, "points": points})
    assert response.status_code == 200
    series = response.json()
    buckets = series["buckets"]
    assert len(buckets) == min(points, READINGS_PER_INSTRUMENT)
    assert sum(b["readings"] for b in buckets) == READINGS_PER_INSTRUMENT
    assert min(b["value_min"] for b in buckets) == pytest.approx(21.5)
    assert max(b["value_max"] for b in buckets) == pytest.approx(21.5 + 0.039)
    assert all(b["residuals"] == b["readings"] for b in buckets)
    assert (series["start"], series["end"]) == (T0, T0 + 60.0 * READINGS_PER_INSTRUMENT)


def test_series_refusals_name_the_query_parameter(live: LiveApi) -> None:
    viewer = live.as_role("acme", "viewer")
    path = "/v1/instruments/acme-TT-001/series"
    for params, name in (
        ({"points": 0}, "points"),
        ({"points": 10_001}, "points"),
        ({"from": "2026-05-29T00:00:00Z", "until": "2026-05-28T00:00:00Z"}, "until"),
        ({"from": "2999-01-01T00:00:00Z"}, "from"),
        ({"until": "yesterday"}, "until"),
    ):
        response = viewer.get(path, params=params)
        assert response.status_code == 422, response.text
        assert [(e["location"], e["field"]) for e in problem(response)["errors"]] == [
            ("query", name)
        ]


def test_status_history_pages_through_every_change(live: LiveApi) -> None:
    viewer = live.as_role("acme", "viewer")
    seen: list[tuple[str, float]] = []
    url: str | None = "/v1/status-history?limit=3"
    pages = 0
    while url is not None:
        page = viewer.get(url).json()
        seen += [(c["instrument_id"], c["ts"]) for c in page["items"]]
        url = page["next"]
        pages += 1
    assert pages == 2 and len(seen) == 4 and len(set(seen)) == 4
    assert [ts for _, ts in seen] == sorted((ts for _, ts in seen), reverse=True)
    one = viewer.get("/v1/instruments/acme-TT-002/status-history").json()["items"]
    assert [(c["previous"], c["status"]) for c in one] == [("OK", "DRIFTING"), (None, "OK")]
    ranged = viewer.get(
        "/v1/status-history",
        params={"from": "2026-05-28T20:36:40Z", "until": "2026-05-28T20:46:40Z"},
    ).json()["items"]
    assert len(ranged) == 2  # the first change of each instrument, at T0 + 600 s (+1 s)


def test_dead_letters_and_the_due_list(live: LiveApi) -> None:
    viewer = live.as_role("acme", "viewer")
    letters = viewer.get("/v1/dead-letters", params={"limit": 1}).json()
    assert [d["detail"] for d in letters["items"]] == ["bad JSON 1"]
    following = viewer.get(letters["next"]).json()
    assert [d["detail"] for d in following["items"]] == ["bad JSON 0"]
    assert following["next"] is None
    _registered(live)
    due = viewer.get("/v1/due").json()["items"]
    assert [d["instrument_id"] for d in due] == ["acme-PT-100", "acme-TT-001", "acme-TT-002"]
    assert due[0]["due_at"] is None and due[1]["certificate_id"] == "CAL-acme-TT-001-1"
    before = viewer.get("/v1/due", params={"before": "2026-06-01T00:00:00Z"}).json()["items"]
    assert [d["instrument_id"] for d in before] == ["acme-PT-100"]


def test_probes_need_no_token(live: LiveApi) -> None:
    anonymous = live.client(None)
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    assert anonymous.get("/readyz").json() == {"status": "ok"}


def test_unknown_routes_and_methods_answer_problems(live: LiveApi) -> None:
    admin = live.as_role("acme", "admin")
    nowhere = admin.get("/v1/nowhere")
    assert nowhere.status_code == 404 and problem(nowhere)["title"] == "Not found"
    wrong = admin.delete("/v1/instruments/acme-TT-001")
    assert wrong.status_code == 405
    assert problem(wrong)["type"] == "urn:calstream:problem:method-not-allowed"
    assert "GET" in wrong.headers["allow"]
