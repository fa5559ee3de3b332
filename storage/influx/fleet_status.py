"""The latest status of every instrument, counted per (tenant, site) for ``fleet_status`` points.

InfluxQL cannot count "latest status per instrument" per site (docs/influxdb.md), so the sink
counts: it remembers the latest status of each instrument from the snapshots it wrote and, for
each batch, plans one ``fleet_status`` point per (tenant, site) whose counts the batch changes.
A plan is applied (:meth:`FleetStatusCounts.commit`) only once its batch was accepted, so a
batch that failed and is written again plans the same points again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from metrology.assessment import HealthSnapshot
from metrology.health import Status
from storage.influx.lineprotocol import nanoseconds
from storage.influx.points import fleet_status_line

Place = tuple[str, str]


@dataclass(slots=True)
class _Latest:
    tenant: str
    site: str
    status: Status
    evaluated_at: float


@dataclass(slots=True)
class FleetStatusPlan:
    """The latest states a batch brings, and the ``fleet_status`` lines they call for, each
    with its tenant (the sink writes a tenant's points to that tenant's database)."""

    latest: dict[str, _Latest] = field(default_factory=dict)
    lines: list[tuple[str, str]] = field(default_factory=list)


class FleetStatusCounts:
    """Latest status per instrument; counts per (tenant, site). Not thread-safe (the sink locks)."""

    def __init__(self) -> None:
        self._latest: dict[str, _Latest] = {}
        self.seeded = False

    def seed(self, snapshots: Iterable[HealthSnapshot]) -> None:
        """Start from known latest states (the registry's)."""
        self.seed_statuses(
            (s.instrument_id, s.tenant, s.site, Status(s.status), s.evaluated_at) for s in snapshots
        )

    def seed_statuses(self, statuses: Iterable[tuple[str, str, str, Status, float]]) -> None:
        """Start from (instrument, tenant, site, status, evaluated_at) read back from a server."""
        for instrument, tenant, site, status, at in statuses:
            known = self._latest.get(instrument)
            if known is None or at >= known.evaluated_at:
                self._latest[instrument] = _Latest(tenant, site, status, at)
        self.seeded = True

    def counts(self, tenant: str, site: str) -> Counter[Status]:
        return self._counts(self._latest, {(tenant, site)})[(tenant, site)]

    @staticmethod
    def _counts(latest: dict[str, _Latest], places: set[Place]) -> dict[Place, Counter[Status]]:
        counts: dict[Place, Counter[Status]] = {place: Counter() for place in places}
        for state in latest.values():
            place = (state.tenant, state.site)
            if place in counts:
                counts[place][state.status] += 1
        return counts

    def plan(self, snapshots: Iterable[HealthSnapshot]) -> FleetStatusPlan:
        """The points of the (tenant, site) pairs whose counts ``snapshots`` change, each at the
        newest ``evaluated_at`` among the batch's snapshots of that site."""
        plan = FleetStatusPlan()
        newest: dict[Place, float] = {}
        changed: set[Place] = set()
        for s in snapshots:
            before = plan.latest.get(s.instrument_id) or self._latest.get(s.instrument_id)
            if before is not None and s.evaluated_at < before.evaluated_at:
                continue  # an older snapshot (replay, late batch) does not roll the state back
            status = Status(s.status)
            plan.latest[s.instrument_id] = _Latest(s.tenant, s.site, status, s.evaluated_at)
            place = (s.tenant, s.site)
            newest[place] = max(newest.get(place, s.evaluated_at), s.evaluated_at)
            if before is None or before.status != status:
                changed.add(place)
            if before is not None and (before.tenant, before.site) != place:
                # the instrument moved: both sites' counts change
                old = (before.tenant, before.site)
                changed |= {place, old}
                newest[old] = max(newest.get(old, s.evaluated_at), s.evaluated_at)
        if changed:
            counts = self._counts({**self._latest, **plan.latest}, changed)
            for tenant, site in sorted(changed):
                at = nanoseconds(newest[(tenant, site)])
                line = fleet_status_line(tenant, site, counts[(tenant, site)], at)
                plan.lines.append((tenant, line))
        return plan

    def commit(self, plan: FleetStatusPlan) -> None:
        """Apply a plan whose lines the server accepted."""
        self._latest.update(plan.latest)

    def __len__(self) -> int:
        return len(self._latest)
