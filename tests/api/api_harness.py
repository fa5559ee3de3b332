"""The API tests' world: four tenants in every relation a caller can have, data in each, the API
served by uvicorn on a free port, tokens of every role.

- ``acme``: a manufacturer, client of ``calprov`` under a ``calibration`` contract in force;
- ``initech``: a manufacturer whose contract with ``calprov`` has ended (a client without one);
- ``globex``: a manufacturer ``calprov`` has nothing to do with (served by ``metrolab``);
- ``calprov``, ``metrolab``: calibration providers (``calprov`` has a lab instrument of its own).

Each manufacturer has a site, a gateway, two instruments with a certificate each; the data of
a run of the pipeline (readings, latest states, status changes, dead letters) is written for
every instrument through the store's ``write``, as the pipeline writes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from calstream.api import create_app
from calstream.api.server import ApiServer
from metrology.assessment import Assessment, HealthSnapshot, StatusChange
from metrology.batch import OutputBatch
from metrology.fleet import load_fleet
from metrology.health import Status
from metrology.reading import Reading
from metrology.tenancy import Principal
from metrology.wire import DeadLetter, RejectReason
from storage.contract import Store

ROLES = ("viewer", "operator", "calibration", "admin")
MANUFACTURERS = ("acme", "initech", "globex")
READINGS_PER_INSTRUMENT = 40
T0 = 1_780_000_000.0
"""2026-05-28T20:26:40Z: when the data written starts."""


class Clock:
    """The registry operations' clock (contracts in force, token expiry): moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def instruments_of(tenant: str) -> list[str]:
    return [f"{tenant}-TT-001", f"{tenant}-TT-002"]


def _instrument(instrument_id: str) -> dict[str, Any]:
    return {
        "id": instrument_id,
        "measurand": "temperature",
        "unit": "degC",
        "range": {"low": 0, "high": 200},
        "tolerance": {"lower": -0.5, "upper": 0.5},
        "period_s": 60,
        "gateway": "gw-01",
        "reference": {"kind": "check_standard"},
        "calibrations": [
            {
                "certificate": f"CAL-{instrument_id}-1",
                "date": "2026-01-15T00:00:00Z",
                "correction": {"offset": 0.02, "gain": 1.0},
                "expanded_uncertainty": 0.06,
                "interval_days": 365,
            }
        ],
    }


def fleet_document() -> dict[str, Any]:
    manufacturers = [
        {
            "id": tenant,
            "name": tenant.title(),
            "sites": [
                {
                    "id": "plant",
                    "name": f"{tenant.title()} plant",
                    "gateways": [{"id": "gw-01"}],
                    "instruments": [_instrument(i) for i in instruments_of(tenant)],
                }
            ],
        }
        for tenant in MANUFACTURERS
    ]
    providers = [
        {
            "id": "calprov",
            "name": "Cal Provider",
            "kind": "calibration_provider",
            "clients": [
                {"client": "acme", "scope": "calibration"},
                {
                    "client": "initech",
                    "scope": "calibration",
                    "valid_from": "2020-01-01T00:00:00Z",
                    "valid_until": "2024-01-01T00:00:00Z",
                },
            ],
            "sites": [
                {
                    "id": "plant",
                    "name": "Calibration lab",
                    "gateways": [{"id": "gw-01"}],
                    "instruments": [_instrument(i) for i in instruments_of("calprov")],
                }
            ],
        },
        {
            "id": "metrolab",
            "name": "Metrolab",
            "kind": "calibration_provider",
            "clients": ["globex"],
        },
    ]
    return {"fleet": "API test fleet", "tenants": [*manufacturers, *providers]}


def pipeline_output(tenant: str) -> OutputBatch:
    """What a run of the pipeline stores for ``tenant``'s instruments: readings with residuals,
    a latest state (the second instrument drifting), two status changes each, two dead letters."""
    batch = OutputBatch()
    for number, instrument_id in enumerate(instruments_of(tenant)):
        status = Status.OK if number == 0 else Status.DRIFTING
        for seq in range(READINGS_PER_INSTRUMENT):
            ts = T0 + 60.0 * seq
            value = 21.5 + 0.001 * seq
            reading = Reading(
                tenant, "plant", "gw-01", instrument_id, ts, value, "degC", seq, 21.48, 0.01
            )
            assessment = Assessment(
                instrument_id, ts, seq, value + 0.02, f"CAL-{instrument_id}-1", 21.48,
                value + 0.02 - 21.48, 0.032, 0.01, 0.0, 0.0, 0.001, status,
            )  # fmt: skip
            batch.readings.append((reading, assessment))
        last = T0 + 60.0 * (READINGS_PER_INSTRUMENT - 1)
        batch.snapshots.append(
            HealthSnapshot(
                instrument_id,
                tenant,
                "plant",
                status,
                (status,),
                (f"{status.value} in test",),
                last,
                last,
                {"residual": 0.04, "u_residual": 0.032, "decision_rule": "simple"},
            )  # fmt: skip
        )
        for k, (previous, now) in enumerate(((None, Status.OK), (Status.OK, status))):
            batch.changes.append(
                StatusChange(
                    instrument_id,
                    tenant,
                    "plant",
                    T0 + 600.0 * (k + 1) + number,
                    previous,
                    now,
                    (f"{now.value} at step {k}",),
                    {"residual": 0.04},
                )  # fmt: skip
            )
    for k in range(2):
        batch.dead_letters.append(
            DeadLetter(
                T0 + 30.0 * k,
                f"calstream/v1/{tenant}/plant/gw-01/readings",
                RejectReason.MALFORMED_JSON,
                f"bad JSON {k}",
                '{"v": 1,',
                1,
                tenant,
            )  # fmt: skip
        )
    return batch


def seed(store: Store) -> None:
    """The fleet registered, and every manufacturer's and calprov's pipeline output."""
    store.register_fleet(load_fleet(fleet_document()))
    for tenant in (*MANUFACTURERS, "calprov"):
        store.write(pipeline_output(tenant))


@dataclass
class LiveApi:
    """The API served on a free port over ``store``; tokens made through the registry."""

    store: Store
    clock: Clock
    server: ApiServer
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, tenant: str, role: str, *, expires_in_s: float | None = None) -> str:
        """A new token of ``role`` for ``tenant`` (made by the local principal)."""
        document: dict[str, Any] = {"tenant": tenant, "role": role, "name": f"{role}@{tenant}"}
        if expires_in_s is not None:
            from datetime import UTC, datetime

            at = datetime.fromtimestamp(self.clock.now + expires_in_s, tz=UTC)
            document["expires_at"] = at.isoformat()
        return self.store.operations.create_token(Principal.local("test"), document).token

    def client(self, token: str | None) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)
        self._clients.append(client)
        return client

    def as_role(self, tenant: str, role: str) -> httpx.Client:
        return self.client(self.token(tenant, role))

    def close(self) -> None:
        for client in self._clients:
            client.close()


@contextmanager
def served(store: Store, clock: Clock) -> Iterator[LiveApi]:
    """The API on ``store``, listening on a free port of 127.0.0.1, until the block ends."""
    server = ApiServer(create_app(store), "127.0.0.1", 0)
    server.start()
    live = LiveApi(store, clock, server)
    try:
        yield live
    finally:
        live.close()
        server.stop()


def problem(response: httpx.Response) -> dict[str, Any]:
    """The problem details of an error response (checked to be one)."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    assert body["type"].startswith("urn:calstream:problem:")
    return body
