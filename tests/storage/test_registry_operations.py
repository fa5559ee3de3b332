"""Registry operations on SQLite (the embedded store's file, a SQL registry) and PostgreSQL.

Every operation's success with its audit row (before and after) and change-log entry, each
refusal with its reason, the isolation of what is outside the caller's scope, idempotent fleet
loading, and transactions that leave nothing half-written (row counts of every table).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import func, select

from metrology.audit import Amendment
from metrology.curves import CurveCorrection
from metrology.fleet import Fleet, load_fleet
from metrology.tenancy import Principal, Role
from storage.errors import (
    ConflictError,
    InvalidDocumentError,
    NotFoundError,
    PermissionDeniedError,
    StorageError,
)
from storage.registry.records import AuditEntry, InstrumentRecord
from storage.registry.tables import metadata
from tests.storage.conftest import T0, Clock, Registry, fleet_document

LOCAL = Principal.local()


def who(tenant: str, role: str) -> Principal:
    return Principal(f"{tenant}-{role}", tenant, Role(role), f"tok-{tenant}-{role}")


ACME_ADMIN = who("acme", "admin")
ACME_VIEWER = who("acme", "viewer")
ACME_OPERATOR = who("acme", "operator")
ACME_LAB = who("acme", "calibration")
GLOBEX_ADMIN = who("globex", "admin")
CALPROV_LAB = who("calprov", "calibration")
CALPROV_ADMIN = who("calprov", "admin")


def table_counts(registry: Registry) -> dict[str, int]:
    """Rows of every registry table (the audit trail and the change log included)."""

    def count(connection: Any) -> dict[str, int]:
        return {
            name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in metadata.tables.items()
        }

    return registry.transact("count", count, write=False)


def last_audit(registry: Registry, n: int = 1) -> list[AuditEntry]:
    scope = registry.operations.scope(LOCAL)
    return list(registry.operations.audit_trail(scope, limit=n).items)


def instrument(instrument_id: str = "acme-n-PT-010", **overrides: Any) -> dict[str, Any]:
    return {
        "tenant": "acme", "site": "north", "id": instrument_id, "measurand": "pressure",
        "unit": "bar", "range": {"low": 0, "high": 10}, "tolerance": {"mpe": 0.01},
        "period_s": 60, "gateway": "gw-01", "reference": {"kind": "none"}, **overrides,
    }  # fmt: skip


def certificate(certificate_id: str, date: str, **overrides: Any) -> dict[str, Any]:
    return {
        "instrument_id": "acme-n-TT-001", "certificate": certificate_id, "date": date,
        "correction": {"offset": 0.01}, "expanded_uncertainty": 0.04, "interval_days": 365,
        **overrides,
    }  # fmt: skip


@pytest.fixture
def loaded(registry: Registry, fleet: Fleet) -> Registry:
    """The storage test fleet registered (calprov reads acme and globex, no end)."""
    registry.register_fleet(fleet)
    return registry


# --- a fleet file through the operations ---


def test_registering_a_fleet_is_audited_once_and_idempotent(
    registry: Registry, fleet: Fleet
) -> None:
    assert registry.register_fleet(fleet) == 24
    changes = registry.operations.changes_since(0)
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert len({c.seq for c in changes}) == 24
    kinds = [c.kind for c in changes]
    # In the order of their references: tenants, sites, gateways, instruments, certificates.
    assert (
        kinds
        == ["tenant"] * 3
        + ["site"] * 3
        + ["gateway"] * 3
        + ["instrument"] * 6
        + ["calibration"] * 7
        + ["contract"] * 2
    )
    entries = registry.operations.audit_trail(registry.operations.scope(LOCAL), limit=100).items
    assert len(entries) == 24
    assert {(e.principal, e.token_id, e.role, e.reason) for e in entries} == {
        ("local", "local", "admin", "fleet file 'storage test fleet'")
    }
    assert all(e.before is None and e.after is not None for e in entries)
    before = table_counts(registry)
    # The same file again (every start of `calstream run`): nothing changes, nothing audited.
    assert registry.register_fleet(load_fleet(fleet_document())) == 0
    assert table_counts(registry) == before
    assert registry.operations.changes_since(changes[-1].seq) == []


def test_a_changed_fleet_file_changes_and_audits_only_what_differs(
    loaded: Registry, fleet: Fleet
) -> None:
    document = fleet_document()
    acme = document["tenants"][0]
    acme["sites"][0]["instruments"][0]["description"] = "moved to the annealing line"
    acme["sites"][0]["instruments"][0]["tolerance"] = {"mpe": 0.3}
    acme["sites"][0]["gateways"] = [{"id": "gw-01", "description": "hall 3"}]
    start = loaded.operations.changes_since(0)[-1].seq
    assert loaded.register_fleet(load_fleet(document)) == 2
    changed, gateway = last_audit(loaded, 2)
    assert (changed.operation, changed.entity_key) == ("change_instrument", "acme-n-TT-001")
    assert changed.before is not None and changed.after is not None
    assert {k for k in changed.after if changed.after[k] != changed.before[k]} == {
        "description", "tolerance_lower", "tolerance_upper"
    }  # fmt: skip
    assert (changed.before["tolerance_upper"], changed.after["tolerance_upper"]) == (0.5, 0.3)
    assert (gateway.operation, gateway.entity_key) == ("update_gateway", "acme/north/gw-01")
    assert [c.kind for c in loaded.operations.changes_since(start)] == ["gateway", "instrument"]


def test_a_refused_fleet_leaves_nothing_half_written(loaded: Registry, fleet: Fleet) -> None:
    document = fleet_document()
    document["tenants"].append(
        {"id": "initech", "sites": [{"id": "lab", "instruments": [
            {**fleet_document()["tenants"][1]["sites"][0]["instruments"][0],
             "id": "initech-TT-001"}]}]}
    )  # fmt: skip
    # ... and the stored revision 0 of a certificate with another interval: refused, last.
    acme_cal = document["tenants"][0]["sites"][0]["instruments"][0]["calibrations"][0]
    acme_cal["interval_days"] = 180
    before = table_counts(loaded)
    with pytest.raises(ConflictError, match=r"CAL-acme-n-TT-001-1 revision 0 .* interval_days"):
        loaded.register_fleet(load_fleet(document))
    assert table_counts(loaded) == before  # the new tenant, site, gateway, instrument: gone
    assert loaded.registered_instruments() == 6


# --- tenants, sites, gateways ---


def test_tenants_are_created_by_the_local_principal_only(loaded: Registry) -> None:
    ops = loaded.operations
    record = ops.create_tenant(LOCAL, {"id": "initech", "name": "Initech", "kind": "manufacturer",
                                       "decision_rule": "risk:0.01"})  # fmt: skip
    assert (record.tenant_id, record.decision_rule, record.shared_gateways) == (
        "initech", "risk:0.01", False
    )  # fmt: skip
    (entry,) = last_audit(loaded)
    assert (entry.operation, entry.entity, entry.entity_key, entry.tenant) == (
        "create_tenant", "tenant", "initech", "initech"
    )  # fmt: skip
    assert entry.before is None and entry.after == {
        "tenant_id": "initech", "name": "Initech", "kind": "manufacturer",
        "decision_rule": "risk:0.01", "interval_policy": None, "shared_gateways": False,
    }  # fmt: skip
    with pytest.raises(ConflictError, match="tenant 'initech' already exists"):
        ops.create_tenant(LOCAL, {"id": "initech"})
    with pytest.raises(PermissionDeniedError, match="server's own command line"):
        ops.create_tenant(ACME_ADMIN, {"id": "umbrella"})
    with pytest.raises(InvalidDocumentError) as raised:
        ops.create_tenant(LOCAL, {"id": "bad id!", "kind": "cartel"})
    assert [field for field, _ in raised.value.errors] == ["id", "kind"]


def test_sites_and_gateways(loaded: Registry) -> None:
    ops = loaded.operations
    site = ops.create_site(ACME_ADMIN, {"tenant": "acme", "id": "west", "name": "West plant"})
    assert (site.tenant, site.site_id, site.name) == ("acme", "west", "West plant")
    gateway = ops.register_gateway(
        ACME_ADMIN, {"tenant": "acme", "site": "west", "id": "gw-07", "description": "roof"}
    )
    assert (gateway.created_at, gateway.retired_at, gateway.description) == (T0, None, "roof")
    entries = last_audit(loaded, 2)
    assert [(e.operation, e.entity_key, e.principal, e.token_id) for e in entries] == [
        ("register_gateway", "acme/west/gw-07", "acme-admin", "tok-acme-admin"),
        ("create_site", "acme/west", "acme-admin", "tok-acme-admin"),
    ]
    with pytest.raises(ConflictError, match="site 'acme/west' already exists"):
        ops.create_site(ACME_ADMIN, {"tenant": "acme", "id": "west"})
    with pytest.raises(ConflictError, match="gateway 'acme/west/gw-07' already exists"):
        ops.register_gateway(ACME_ADMIN, {"tenant": "acme", "site": "west", "id": "gw-07"})
    with pytest.raises(NotFoundError, match=r"site: acme/east is not registered"):
        ops.register_gateway(ACME_ADMIN, {"tenant": "acme", "site": "east", "id": "gw-08"})
    with pytest.raises(PermissionDeniedError, match=r"'acme-viewer' \(viewer of acme\) may not"):
        ops.create_site(ACME_VIEWER, {"tenant": "acme", "id": "east"})
    with pytest.raises(PermissionDeniedError, match="tenant 'acme' is not in the scope"):
        ops.create_site(GLOBEX_ADMIN, {"tenant": "acme", "id": "east"})
    # A provider reads its clients but administers nothing there.
    with pytest.raises(PermissionDeniedError, match=r"\(admin of calprov\) may not .* 'acme'"):
        ops.register_gateway(CALPROV_ADMIN, {"tenant": "acme", "site": "west", "id": "gw-09"})
    with pytest.raises(NotFoundError, match="tenant 'umbrella' is not registered"):
        ops.create_site(LOCAL, {"tenant": "umbrella", "id": "hq"})
    assert [g.gateway_id for g in ops.gateways(ops.scope(ACME_VIEWER), "acme")] == [
        "gw-01", "gw-01", "gw-07"
    ]  # fmt: skip


# --- instruments ---


def test_register_change_and_retire_an_instrument(loaded: Registry, clock: Clock) -> None:
    ops = loaded.operations
    ops.register_gateway(ACME_ADMIN, {"tenant": "acme", "site": "north", "id": "gw-02"})
    registered = ops.register_instrument(ACME_ADMIN, instrument(reason="new line"))
    assert (registered.tolerance_lower, registered.decision_rule, registered.retired_at) == (
        -0.01, None, None
    )  # fmt: skip
    assert loaded.registered_instruments() == 7
    (entry,) = last_audit(loaded)
    assert (entry.operation, entry.reason, entry.before) == (
        "register_instrument",
        "new line",
        None,
    )
    assert entry.after is not None and entry.after["unit"] == "bar"

    clock.advance(60)
    changed = ops.change_instrument(
        ACME_ADMIN,
        {"instrument_id": "acme-n-PT-010", "tolerance": {"lower": -0.02, "upper": 0.01},
         "gateway": "gw-02", "decision_rule": "guard_band_u", "period_s": 30,
         "interval_policy": {"max_days": 400}, "reason": "new transmitter head"},
    )  # fmt: skip
    assert (changed.gateway, changed.tolerance_lower, changed.reporting_period_s) == (
        "gw-02", -0.02, 30.0
    )  # fmt: skip
    assert changed.decision_rule == "guard_band_u"
    assert changed.interval_policy is not None and changed.interval_policy["max_days"] == 400.0
    (entry,) = last_audit(loaded)
    assert entry.at == T0 + 60 and entry.reason == "new transmitter head"
    assert entry.before is not None and entry.after is not None
    assert {k for k in entry.after if entry.after[k] != entry.before[k]} == {
        "gateway", "tolerance_lower", "decision_rule", "reporting_period_s", "interval_policy",
    }  # fmt: skip
    # null returns to the tenant's default (acme has none).
    reset = ops.change_instrument(ACME_ADMIN, {"instrument_id": "acme-n-PT-010",
                                               "decision_rule": None})  # fmt: skip
    assert reset.decision_rule is None
    # A change that changes nothing writes nothing.
    before = table_counts(loaded)
    assert ops.change_instrument(ACME_ADMIN, {"instrument_id": "acme-n-PT-010", "period_s": 30})
    assert table_counts(loaded) == before

    with pytest.raises(InvalidDocumentError, match="reason"):
        ops.retire_instrument(ACME_ADMIN, {"instrument_id": "acme-n-PT-010"})
    clock.advance(60)
    retired = ops.retire_instrument(
        ACME_ADMIN, {"instrument_id": "acme-n-PT-010", "reason": "replaced by PT-011"}
    )
    assert retired.retired_at == T0 + 120
    (entry,) = last_audit(loaded)
    assert (entry.operation, entry.reason) == ("retire_instrument", "replaced by PT-011")
    assert entry.before is not None and entry.before["retired_at"] is None
    assert entry.after is not None and entry.after["retired_at"] == T0 + 120
    # Retired: kept for history, out of the fleet's counts, refused further changes.
    assert loaded.registered_instruments() == 6
    scope = ops.scope(ACME_VIEWER)
    assert [i.instrument_id for i in loaded.instruments(scope) if i.site == "north"] == [
        "acme-n-TT-001", "acme-n-TT-002", "acme-n-TT-003"
    ]  # fmt: skip
    everything = loaded.instruments(scope, include_retired=True)
    assert [i.retired_at for i in everything if i.instrument_id == "acme-n-PT-010"] == [T0 + 120]
    assert sum(loaded.fleet_health(scope).counts.values()) == 4
    with pytest.raises(ConflictError, match=r"was retired at .* takes no changes"):
        ops.retire_instrument(ACME_ADMIN, {"instrument_id": "acme-n-PT-010", "reason": "again"})
    with pytest.raises(ConflictError, match="was retired"):
        ops.change_instrument(ACME_ADMIN, {"instrument_id": "acme-n-PT-010", "period_s": 10})


def test_instrument_refusals_with_their_reasons(loaded: Registry) -> None:
    ops = loaded.operations
    with pytest.raises(NotFoundError, match=r"gateway: acme/north/gw-99 is not registered"):
        ops.register_instrument(ACME_ADMIN, instrument(gateway="gw-99"))
    with pytest.raises(NotFoundError, match=r"site: acme/east is not registered"):
        ops.register_instrument(ACME_ADMIN, instrument(site="east"))
    with pytest.raises(ConflictError, match="instrument id 'acme-n-TT-001' is already registered"):
        ops.register_instrument(ACME_ADMIN, instrument("acme-n-TT-001"))
    # Ids are global: another tenant's id is taken too (and the refusal does not say whose).
    with pytest.raises(ConflictError, match="instrument id 'globex-TT-001' is already registered"):
        ops.register_instrument(ACME_ADMIN, instrument("globex-TT-001"))
    with pytest.raises(InvalidDocumentError) as raised:
        ops.register_instrument(
            ACME_ADMIN, instrument(unit="blorps", tolerance={"lower": 1, "upper": -1}, colour=1)
        )
    assert sorted(field for field, _ in raised.value.errors) == ["colour", "tolerance", "unit"]
    with pytest.raises(PermissionDeniedError, match=r"\(operator of acme\) may not"):
        ops.register_instrument(ACME_OPERATOR, instrument())
    with pytest.raises(PermissionDeniedError, match=r"\(calibration of acme\) may not"):
        ops.change_instrument(ACME_LAB, {"instrument_id": "acme-n-TT-001", "period_s": 10})
    with pytest.raises(InvalidDocumentError, match="names at least one of"):
        ops.change_instrument(ACME_ADMIN, {"instrument_id": "acme-n-TT-001"})
    with pytest.raises(NotFoundError, match="gateway: acme/south/gw-03 is not registered"):
        ops.change_instrument(ACME_ADMIN, {"instrument_id": "acme-n-TT-001", "site": "south",
                                           "gateway": "gw-03"})  # fmt: skip
    assert [e.operation for e in last_audit(loaded)] == ["create_contract"]  # nothing new


def test_outside_the_scope_not_found_and_not_allowed_read_the_same(loaded: Registry) -> None:
    ops = loaded.operations

    def refusal(key: str, call: Any) -> tuple[type[BaseException], str]:
        with pytest.raises(StorageError) as raised:
            call(key)
        return type(raised.value), str(raised.value).replace(key, "<id>")

    for call in (
        lambda key: ops.retire_instrument(GLOBEX_ADMIN, {"instrument_id": key, "reason": "x"}),
        lambda key: ops.change_instrument(GLOBEX_ADMIN, {"instrument_id": key, "period_s": 1}),
        lambda key: ops.record_calibration(
            GLOBEX_ADMIN, certificate("C-X", "2026-05-01T00:00:00Z", instrument_id=key)
        ),
        lambda key: loaded.instrument_health(ops.scope(GLOBEX_ADMIN), key),
        lambda key: loaded.calibrations(ops.scope(GLOBEX_ADMIN), key),
    ):
        exists_elsewhere = refusal("acme-n-TT-001", call)
        does_not_exist = refusal("acme-n-TT-404", call)
        assert exists_elsewhere == does_not_exist
        assert exists_elsewhere == (
            PermissionDeniedError,
            "instrument '<id>' is not in the scope of 'globex-admin'",
        )
    # The local principal sees everything, so it is told what is missing.
    with pytest.raises(NotFoundError, match="instrument 'acme-n-TT-404' is not registered"):
        ops.retire_instrument(LOCAL, {"instrument_id": "acme-n-TT-404", "reason": "x"})


# --- calibrations ---


def test_record_and_amend_certificates(loaded: Registry, clock: Clock) -> None:
    ops = loaded.operations
    points = [{"indication": 0, "correction": 0.05}, {"indication": 100, "correction": -0.01},
              {"indication": 200, "correction": -0.08}]  # fmt: skip
    recorded = ops.record_calibration(
        ACME_LAB, certificate("CAL-3", "2026-05-20T00:00:00Z", correction=None, points=points)
    )
    assert recorded.correction == CurveCorrection(((0.0, 0.05), (100.0, -0.01), (200.0, -0.08)))
    (entry,) = last_audit(loaded)
    assert (entry.operation, entry.entity, entry.entity_key, entry.principal) == (
        "record_calibration", "calibration", "acme-n-TT-001/CAL-3", "acme-calibration"
    )  # fmt: skip
    assert entry.after is not None and entry.after["points"] == [[0.0, 0.05], [100.0, -0.01],
                                                                  [200.0, -0.08]]  # fmt: skip
    clock.advance(3600)
    amended = ops.amend_calibration(
        ACME_LAB,
        {"instrument_id": "acme-n-TT-001", "certificate": "CAL-3",
         "reason": "U transcribed from the wrong line", "expanded_uncertainty": 0.06},
    )  # fmt: skip
    assert amended.amendment == Amendment(
        "CAL-3", 1, T0 + 3600, "acme-calibration", "U transcribed from the wrong line"
    )
    assert (amended.expanded_uncertainty, amended.correction) == (0.06, recorded.correction)
    (entry,) = last_audit(loaded)
    assert entry.operation == "amend_calibration"
    assert entry.before is not None and entry.after is not None
    assert (entry.before["revision"], entry.after["revision"]) == (0, 1)
    assert (entry.before["expanded_uncertainty"], entry.after["expanded_uncertainty"]) == (
        0.04, 0.06
    )  # fmt: skip
    history = loaded.calibrations(ops.scope(ACME_VIEWER), "acme-n-TT-001")
    assert [(r.certificate_id, r.revision) for r in history.all_revisions] == [
        ("CAL-acme-n-TT-001-1", 0), ("CAL-3", 0), ("CAL-3", 1)
    ]  # fmt: skip
    assert history.records[-1] == amended  # the newest revision is in force
    # A certificate in degF for a degC instrument: stored in degC.
    in_f = ops.record_calibration(
        ACME_LAB,
        certificate("CAL-4", "2026-05-27T00:00:00Z", unit="degF", correction={"offset": 0.18},
                    expanded_uncertainty=0.09, as_found_error=0.36),
    )  # fmt: skip
    assert in_f.correction.apply(20.0) == pytest.approx(20.1)
    assert (in_f.expanded_uncertainty, in_f.as_found_error) == (
        pytest.approx(0.05), pytest.approx(0.2)
    )  # fmt: skip


def test_certificate_refusals_with_their_reasons(loaded: Registry) -> None:
    ops = loaded.operations
    ops.record_calibration(ACME_LAB, certificate("CAL-3", "2026-05-20T00:00:00Z"))
    with pytest.raises(
        ConflictError,
        match=r"'CAL-4' .* dated 2026-05-20T00:00:00.000Z overlaps "
        r"certificate 'CAL-3' .* strictly increasing",
    ):
        ops.record_calibration(ACME_LAB, certificate("CAL-4", "2026-05-20T00:00:00Z"))
    with pytest.raises(ConflictError, match="overlaps certificate 'CAL-3'"):
        ops.record_calibration(ACME_LAB, certificate("CAL-4", "2026-03-01T00:00:00Z"))
    with pytest.raises(ConflictError, match="'CAL-3' of 'acme-n-TT-001' is already recorded"):
        ops.record_calibration(ACME_LAB, certificate("CAL-3", "2026-05-21T00:00:00Z"))
    with pytest.raises(InvalidDocumentError, match=r"unit: .* cannot be converted to 'degC'"):
        ops.record_calibration(ACME_LAB, certificate("CAL-4", "2026-05-21T00:00:00Z", unit="bar"))
    with pytest.raises(InvalidDocumentError) as raised:
        ops.record_calibration(
            ACME_LAB,
            certificate("CAL-4", "2026-05-21T00:00:00Z", correction=None, points=[
                {"indication": 0, "correction": 0}, {"indication": 50, "correction": 0},
                {"indication": 50, "correction": 0.1}]),
        )  # fmt: skip
    assert [field for field, _ in raised.value.errors] == ["points"]
    assert "strictly monotonic" in raised.value.errors[0][1]
    # Amendments: a reason, a change, a date that keeps the certificate in its place.
    with pytest.raises(InvalidDocumentError, match="reason"):
        ops.amend_calibration(ACME_LAB, {"instrument_id": "acme-n-TT-001", "certificate": "CAL-3",
                                         "k": 2.1})  # fmt: skip
    with pytest.raises(InvalidDocumentError, match="changes at least one"):
        ops.amend_calibration(ACME_LAB, {"instrument_id": "acme-n-TT-001", "certificate": "CAL-3",
                                         "reason": "nothing"})  # fmt: skip
    with pytest.raises(ConflictError, match=r"amended date 2026-01-15T00:00:00\.000Z overlaps"):
        ops.amend_calibration(
            ACME_LAB,
            {"instrument_id": "acme-n-TT-001", "certificate": "CAL-3", "reason": "date",
             "date": "2026-01-15T00:00:00Z"},
        )  # fmt: skip
    moved = ops.amend_calibration(
        ACME_LAB, {"instrument_id": "acme-n-TT-001", "certificate": "CAL-3", "reason": "typo",
                   "date": "2026-05-19T00:00:00Z"},
    )  # fmt: skip
    assert moved.revision == 1 and moved.calibrated_at == 1_779_148_800.0
    with pytest.raises(NotFoundError, match="certificate: acme-n-TT-001/CAL-9 is not recorded"):
        ops.amend_calibration(ACME_LAB, {"instrument_id": "acme-n-TT-001", "certificate": "CAL-9",
                                         "reason": "x", "k": 3})  # fmt: skip
    # Admins administer; the calibration role records certificates.
    with pytest.raises(PermissionDeniedError, match=r"\(admin of acme\) may not"):
        ops.record_calibration(ACME_ADMIN, certificate("CAL-5", "2026-05-25T00:00:00Z"))


def test_a_provider_calibrates_its_clients_under_a_calibration_contract_only(
    loaded: Registry, clock: Clock
) -> None:
    ops = loaded.operations
    cert = certificate("LAB-1", "2026-05-20T00:00:00Z")
    # The fleet's contract lets calprov read acme, not calibrate there.
    with pytest.raises(
        PermissionDeniedError, match=r"\(calibration of calprov\) may not .* 'acme'"
    ):
        ops.record_calibration(CALPROV_LAB, cert)
    (read_contract,) = [c for c in ops.contracts(ops.scope(ACME_ADMIN)) if c.client == "acme"]
    # The client's admin ends it and grants a calibration contract from now on.
    ops.end_contract(ACME_ADMIN, {"contract_id": read_contract.contract_id,
                                  "reason": "calprov now calibrates for us"})  # fmt: skip
    ops.create_contract(ACME_ADMIN, {"provider": "calprov", "client": "acme",
                                     "scope": "calibration", "valid_from": "2026-05-28T20:26:40Z",
                                     "valid_until": "2026-06-28T00:00:00Z"})  # fmt: skip
    recorded = ops.record_calibration(CALPROV_LAB, cert)
    assert recorded.certificate_id == "LAB-1"
    (entry,) = last_audit(loaded)
    assert (entry.principal, entry.principal_tenant, entry.tenant) == (
        "calprov-calibration", "calprov", "acme"
    )  # fmt: skip
    # ... and nothing else there.
    with pytest.raises(PermissionDeniedError, match=r"\(calibration of calprov\) may not"):
        ops.change_instrument(CALPROV_LAB, {"instrument_id": "acme-n-TT-001", "period_s": 10})
    # After the contract's end, acme is outside calprov's scope altogether.
    clock.now = 1_782_604_800.0  # 2026-06-28T00:00:00Z
    with pytest.raises(PermissionDeniedError, match="instrument 'acme-n-TT-001' is not in the"):
        ops.amend_calibration(
            CALPROV_LAB,
            {"instrument_id": "acme-n-TT-001", "certificate": "LAB-1", "reason": "x", "k": 3},
        )


# --- contracts ---


def test_contracts_are_created_by_the_client_and_ended_with_a_reason(
    loaded: Registry, clock: Clock
) -> None:
    ops = loaded.operations
    ops.create_tenant(LOCAL, {"id": "metlab", "kind": "calibration_provider"})
    created = ops.create_contract(
        GLOBEX_ADMIN,
        {"provider": "metlab", "client": "globex", "scope": "read",
         "valid_from": "2026-06-01T00:00:00Z", "reason": "second opinion"},
    )  # fmt: skip
    assert (created.valid_from, created.valid_until, created.ended_at) == (
        1_780_272_000.0, None, None
    )  # fmt: skip
    (entry,) = last_audit(loaded)
    assert (entry.operation, entry.entity_key, entry.tenant, entry.reason) == (
        "create_contract", str(created.contract_id), "globex", "second opinion"
    )  # fmt: skip
    metlab = who("metlab", "viewer")
    assert ops.scope(metlab).reads == {"metlab"}  # not begun yet
    assert ops.scope(metlab, at=1_780_272_000.0).reads == {"metlab", "globex"}
    with pytest.raises(
        ConflictError,
        match=rf"contract {created.contract_id} between 'metlab' "
        r"and 'globex' .* overlaps .* end it first",
    ):
        ops.create_contract(GLOBEX_ADMIN, {"provider": "metlab", "client": "globex",
                                           "valid_from": "2026-07-01T00:00:00Z"})  # fmt: skip
    with pytest.raises(NotFoundError, match="provider: 'acme' is not a registered calibration"):
        ops.create_contract(GLOBEX_ADMIN, {"provider": "acme", "client": "globex"})
    with pytest.raises(PermissionDeniedError, match=r"\(admin of calprov\) may not .* 'acme'"):
        ops.create_contract(CALPROV_ADMIN, {"provider": "calprov", "client": "acme"})
    with pytest.raises(PermissionDeniedError, match="tenant 'globex' is not in the scope"):
        ops.create_contract(who("metlab", "admin"), {"provider": "metlab", "client": "globex"})
    with pytest.raises(InvalidDocumentError, match="reason"):
        ops.end_contract(GLOBEX_ADMIN, {"contract_id": created.contract_id})
    with pytest.raises(InvalidDocumentError, match="at: a contract ends now or later"):
        ops.end_contract(GLOBEX_ADMIN, {"contract_id": created.contract_id, "reason": "x",
                                        "at": "2026-01-01T00:00:00Z"})  # fmt: skip
    with pytest.raises(PermissionDeniedError, match=f"contract '{created.contract_id}' is not in"):
        ops.end_contract(ACME_ADMIN, {"contract_id": created.contract_id, "reason": "x"})
    clock.advance(10)
    # The provider's admin may end it too; before it began, it then never grants anything.
    ended = ops.end_contract(
        who("metlab", "admin"), {"contract_id": created.contract_id, "reason": "not needed"}
    )
    assert (ended.valid_until, ended.ended_at, ended.end_reason) == (
        1_780_272_000.0, T0 + 10, "not needed"
    )  # fmt: skip
    (entry,) = last_audit(loaded)
    assert entry.before is not None and entry.after is not None
    assert (entry.before["ended_at"], entry.after["ended_at"]) == (None, T0 + 10)
    assert ops.scope(metlab, at=1_780_272_000.0).reads == {"metlab"}
    with pytest.raises(ConflictError, match="was ended at"):
        ops.end_contract(GLOBEX_ADMIN, {"contract_id": created.contract_id, "reason": "again"})
    with pytest.raises(NotFoundError, match="contract '999' is not registered"):
        ops.end_contract(LOCAL, {"contract_id": 999, "reason": "x"})


def test_a_fleet_file_does_not_revive_what_operations_ended_or_retired(
    loaded: Registry, fleet: Fleet
) -> None:
    ops = loaded.operations
    contract = next(c for c in ops.contracts(ops.scope(LOCAL)) if c.client == "globex")
    ops.end_contract(LOCAL, {"contract_id": contract.contract_id, "reason": "lapsed"})
    ops.retire_instrument(LOCAL, {"instrument_id": "globex-TT-002", "reason": "scrapped"})
    changes = ops.changes_since(0)[-1].seq
    # The file still lists the client and the instrument (with a new certificate, even).
    document = fleet_document()
    document["tenants"][1]["sites"][0]["instruments"][1]["calibrations"].append(
        {"certificate": "CAL-late", "date": "2026-05-01T00:00:00Z", "expanded_uncertainty": 0.05,
         "interval_days": 365}
    )  # fmt: skip
    assert loaded.register_fleet(load_fleet(document)) == 0
    assert ops.changes_since(changes) == []
    assert ops.scope(who("calprov", "viewer")).reads == {"calprov", "acme"}
    assert loaded.registered_instruments() == 5


def test_a_fleet_amendment_and_a_curve_reach_the_registry_as_revisions(
    loaded: Registry, fleet: Fleet
) -> None:
    history = fleet.calibrations["globex-TT-001"]
    newest = history.records[0]
    curve = CurveCorrection(((0.0, 0.05), (100.0, -0.01)))
    amended = history.amend(
        replace(newest, correction=curve),
        Amendment(newest.certificate_id, 1, T0 - 10, "j.doe", "a table, not an offset"),
    )
    assert loaded.register_fleet(replace(
        fleet, calibrations={**fleet.calibrations, "globex-TT-001": amended})) == 1  # fmt: skip
    (entry,) = last_audit(loaded)
    assert (entry.operation, entry.principal, entry.reason) == (
        "amend_calibration", "local", "a table, not an offset"
    )  # fmt: skip
    stored = loaded.calibration_history("globex-TT-001").audit_trail(newest.certificate_id)
    assert stored == amended.audit_trail(newest.certificate_id)


# --- the change log ---


def test_the_change_log_is_in_order_and_read_after_a_sequence_number(loaded: Registry) -> None:
    ops = loaded.operations
    start = ops.changes_since(0)[-1].seq
    ops.create_site(ACME_ADMIN, {"tenant": "acme", "id": "west"})
    ops.register_gateway(ACME_ADMIN, {"tenant": "acme", "site": "west", "id": "gw-07"})
    ops.register_instrument(ACME_ADMIN, instrument(site="west", gateway="gw-07"))
    ops.record_calibration(
        ACME_LAB,
        certificate("CAL-3", "2026-05-20T00:00:00Z", instrument_id="acme-n-PT-010", unit="bar"),
    )
    with pytest.raises(ConflictError):  # refused: no entry
        ops.create_site(ACME_ADMIN, {"tenant": "acme", "id": "west"})
    changes = ops.changes_since(start)
    assert [(c.seq - start, c.kind, c.operation, c.tenant, c.key) for c in changes] == [
        (1, "site", "create_site", "acme", "acme/west"),
        (2, "gateway", "register_gateway", "acme", "acme/west/gw-07"),
        (3, "instrument", "register_instrument", "acme", "acme-n-PT-010"),
        (4, "calibration", "record_calibration", "acme", "acme-n-PT-010/CAL-3"),
    ]
    assert [c.kind for c in ops.changes_since(start + 2)] == ["instrument", "calibration"]
    assert [c.seq - start for c in ops.changes_since(start, limit=2)] == [1, 2]
    assert all(c.at == T0 for c in changes)


# --- the audit trail, scoped ---


def test_the_audit_trail_is_read_within_the_scope(loaded: Registry) -> None:
    ops = loaded.operations
    ops.create_token(ACME_ADMIN, {"tenant": "acme", "role": "viewer", "name": "wallboard"})
    ops.create_site(GLOBEX_ADMIN, {"tenant": "globex", "id": "annex"})

    def trail(principal: Principal, **kwargs: Any) -> list[tuple[str, str]]:
        entries: list[AuditEntry] = []
        page = ops.audit_trail(ops.scope(principal), limit=3, **kwargs)
        entries.extend(page.items)
        while page.next is not None:
            page = ops.audit_trail(ops.scope(principal), limit=3, after=page.next, **kwargs)
            entries.extend(page.items)
        assert len({e.id for e in entries}) == len(entries)
        return [(e.operation, e.entity_key) for e in entries]

    acme_admin = trail(ACME_ADMIN)
    assert len(acme_admin) == 1 + 2 + 2 + 4 + 5 + 1 + 1  # token, sites, gw, instr., certs, contract
    assert acme_admin[0][0] == "create_token"
    assert not any(key.startswith("globex") for _, key in acme_admin)
    # Others read the entries, not the tokens.
    assert trail(ACME_VIEWER) == acme_admin[1:]
    # acme's 15 entries, globex's 9 (tenant, site, gateway, 2 instruments, 2 certificates, its
    # contract, the new site) and calprov's own tenant.
    assert len(trail(who("calprov", "viewer"))) == 15 + 9 + 1
    assert trail(GLOBEX_ADMIN)[0] == ("create_site", "globex/annex")
    assert len(trail(LOCAL)) == 24 + 2
    assert trail(who("calprov", "viewer"), tenant="globex")[0] == ("create_site", "globex/annex")
    with pytest.raises(PermissionDeniedError, match="tenant 'acme' is not in the scope"):
        ops.audit_trail(ops.scope(GLOBEX_ADMIN), tenant="acme")
    with pytest.raises(InvalidDocumentError, match="limit"):
        ops.audit_trail(ops.scope(LOCAL), limit=0)


def test_instrument_records_round_trip_to_the_domain(loaded: Registry, fleet: Fleet) -> None:
    scope = loaded.operations.scope(LOCAL)
    for record in loaded.instruments(scope):
        assert record == InstrumentRecord.from_spec(fleet.instruments[record.instrument_id])
        spec = record.spec()
        assert spec == replace(fleet.instruments[record.instrument_id], shared_gateways=False)
