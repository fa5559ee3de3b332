"""The fleet simulator: readings of every instrument, batched per gateway, in simulated-time order.

Simulated time advances in chunks of about a day; inside a chunk every instrument's readings are
computed at once with numpy from its precomputed :class:`~edge_sim.scenario.InstrumentPlan`, then
merged per gateway in time order and numbered (``seq`` counts 1, 2, ... per gateway).

A gateway publishes at the end of every publish interval (``publish_interval_s``, simulated) what
it collected, in messages of at most ``batch_size`` readings; a message that fills up goes out at
once. Batches come out ordered by the simulated time at which they are published, so
:meth:`FleetSimulator.batches_until` (alias ``run_until``) can be called repeatedly with a growing
simulated time (a demo pacing simulated time against the wall clock) and yields exactly what was
published by then.

The readings, their order and their ``seq`` depend only on the fleet, the seed, the window and the
publish interval, never on how :meth:`~FleetSimulator.batches_until` is called.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from itertools import pairwise, repeat
from typing import NamedTuple

import numpy as np

from edge_sim.behaviour import FloatArray
from edge_sim.scenario import InstrumentPlan, Scenario, build_scenario
from edge_sim.truth import GroundTruth
from metrology.fleet import Fleet
from metrology.instrument import ReferenceKind
from metrology.reading import Reading
from metrology.timebase import SECONDS_PER_DAY

DEFAULT_BATCH_SIZE = 100
DEFAULT_PUBLISH_INTERVAL_S = 3600.0


class GatewayBatch(NamedTuple):
    """One message's worth of readings from one gateway (unpacks as a 4-tuple)."""

    tenant: str
    site: str
    gateway: str
    readings: list[Reading]


class _Chunk(NamedTuple):
    """Readings of one gateway in one chunk, as arrays, in time order."""

    ts: FloatArray
    values: FloatArray
    references: FloatArray
    u_references: FloatArray
    instruments: np.ndarray


class _Gateway:
    """A gateway of the simulated fleet: its instruments and its sequence counter."""

    __slots__ = ("gateway", "key", "last_seq", "plans", "site", "tenant")

    def __init__(self, tenant: str, site: str, gateway: str) -> None:
        self.tenant = tenant
        self.site = site
        self.gateway = gateway
        self.key = (tenant, site, gateway)
        self.plans: list[InstrumentPlan] = []
        self.last_seq = 0


def _sample(plan: InstrumentPlan, rng: np.random.Generator, c0: float, c1: float) -> _Chunk | None:
    """The readings of one instrument with timestamps in ``[c0, c1)``."""
    period = plan.period_s
    k = np.arange(math.ceil(c0 / period), math.ceil(c1 / period), dtype=np.int64)
    n = len(k)
    if n == 0:
        return None
    ts: FloatArray = k.astype(np.float64) * period
    true = plan.process.value_at(ts)
    error = plan.error.at(ts) + rng.normal(0.0, plan.noise_sigma, n)
    kind = plan.reference_kind
    references: FloatArray
    if kind is ReferenceKind.REFERENCE_INSTRUMENT:
        references = true + rng.normal(0.0, plan.u_reference, n)
        measured = true + error
    elif kind is ReferenceKind.CHECK_STANDARD:
        # The standard's realised value scatters around its nominal with u_r; the nominal travels.
        realised = plan.check_nominal + rng.normal(0.0, plan.u_reference, n)
        is_check = (k % plan.check_every) == plan.check_phase
        measured = np.where(is_check, realised, true) + error
        references = np.where(is_check, plan.check_nominal, np.nan)
    else:
        measured = true + error
        references = np.full(n, np.nan)
    values = plan.to_reported(plan.indication_of(measured, ts))
    if ts[-1] >= plan.stuck_at:
        values[ts >= plan.stuck_at] = plan.stuck_indication
    keep: np.ndarray | None = None
    if len(plan.dropout_starts):
        i = np.searchsorted(plan.dropout_starts, ts, side="right") - 1
        silent = (i >= 0) & (ts < plan.dropout_ends[np.maximum(i, 0)])
        if silent.any():
            keep = ~silent
    if kind in (ReferenceKind.REFERENCE_INSTRUMENT, ReferenceKind.CHECK_STANDARD):
        references = plan.to_reported(references)
    u_reported = plan.u_reference * abs(plan.unit_scale)
    u_references = np.where(np.isnan(references), np.nan, u_reported)
    instruments = np.full(n, plan.index, dtype=np.int64)
    if keep is not None:
        if not keep.any():
            return None  # silent for the whole chunk (a dropout covering it)
        return _Chunk(
            ts[keep], values[keep], references[keep], u_references[keep], instruments[keep]
        )
    return _Chunk(ts, values, references, u_references, instruments)


_new_tuple = tuple.__new__


def _optional(values: list[float]) -> list[float | None]:
    return [None if v != v else v for v in values]


class FleetSimulator:
    """Simulates a fleet over ``[start, end)`` (epoch seconds), deterministically for ``seed``.

    Iterating yields every :class:`GatewayBatch` of the window; :meth:`batches_until` yields those
    published up to a simulated time, and can be called again to continue.
    ``truth`` is the :class:`~edge_sim.truth.GroundTruth` of the run.
    """

    def __init__(
        self,
        fleet: Fleet,
        seed: int,
        start: float,
        end: float,
        batch_size: int = DEFAULT_BATCH_SIZE,
        publish_interval_s: float = DEFAULT_PUBLISH_INTERVAL_S,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not publish_interval_s > 0:
            raise ValueError(f"publish_interval_s must be > 0, got {publish_interval_s}")
        self.fleet = fleet
        self.seed = seed
        self.start = float(start)
        self.end = float(end)
        self.batch_size = batch_size
        self.publish_interval_s = float(publish_interval_s)
        self.scenario: Scenario = build_scenario(fleet, seed, self.start, self.end)
        self._chunk_s = publish_interval_s * max(1, round(SECONDS_PER_DAY / publish_interval_s))
        self._rngs = [np.random.default_rng([seed, 1, p.index]) for p in self.scenario.plans]
        gateways: dict[tuple[str, str, str], _Gateway] = {}
        for plan in self.scenario.plans:
            key = (plan.spec.tenant, plan.spec.site, plan.spec.gateway)
            gateways.setdefault(key, _Gateway(*key)).plans.append(plan)
        self._gateways = list(gateways.values())
        self._ids = [p.spec.instrument_id for p in self.scenario.plans]
        self._units = [p.reported_unit for p in self.scenario.plans]
        self._next_chunk = self.start
        self._pending: deque[tuple[float, GatewayBatch]] = deque()
        self.readings_generated = 0
        self.simulated_until = self.start

    @property
    def truth(self) -> GroundTruth:
        return self.scenario.truth

    @property
    def finished(self) -> bool:
        """True once every batch of the window has been yielded."""
        return self._next_chunk >= self.end and not self._pending

    def __iter__(self) -> Iterator[GatewayBatch]:
        return self.batches_until(self.end)

    def batches_until(self, until: float) -> Iterator[GatewayBatch]:
        """Batches published at simulated times up to ``until``, in order; call again to go on."""
        until = min(float(until), self.end)
        while True:
            while self._pending and self._pending[0][0] <= until:
                yield self._pending.popleft()[1]
            if self._next_chunk >= self.end or self._next_chunk > until:
                break
            self._simulate_chunk()
        self.simulated_until = max(self.simulated_until, until)

    run_until = batches_until

    def readings(self, until: float | None = None) -> Iterator[Reading]:
        """Every reading up to ``until`` (default: the window end), in publish order."""
        for batch in self.batches_until(self.end if until is None else until):
            yield from batch.readings

    # --- truth helpers for tests and scoring ---

    def true_value(self, instrument_id: str, ts: FloatArray) -> FloatArray:
        """The true value of the measurand at the instrument's point (registered unit)."""
        return self.scenario.plan(instrument_id).process.value_at(np.asarray(ts, dtype=np.float64))

    def injected_error(self, instrument_id: str, ts: FloatArray) -> FloatArray:
        """The injected (noise-free) error of indication at ``ts`` (registered unit)."""
        return self.scenario.plan(instrument_id).error.at(np.asarray(ts, dtype=np.float64))

    # --- the hot path ---

    def _simulate_chunk(self) -> None:
        c0 = self._next_chunk
        c1 = min(c0 + self._chunk_s, self.end)
        self._next_chunk = c1
        scheduled: list[tuple[float, int, int, GatewayBatch]] = []
        for g, gateway in enumerate(self._gateways):
            parts = [
                chunk
                for plan in gateway.plans
                if (chunk := _sample(plan, self._rngs[plan.index], c0, c1)) is not None
            ]
            if not parts:
                continue
            for order, (published_at, batch) in enumerate(self._batches(gateway, parts, c1)):
                scheduled.append((published_at, g, order, batch))
        scheduled.sort(key=lambda s: (s[0], s[1], s[2]))
        self._pending.extend((s[0], s[3]) for s in scheduled)

    def _batches(
        self, gateway: _Gateway, parts: list[_Chunk], chunk_end: float
    ) -> Iterator[tuple[float, GatewayBatch]]:
        if len(parts) == 1:
            ts, values, refs, urefs, instruments = parts[0]
        else:
            ts = np.concatenate([p.ts for p in parts])
            instruments = np.concatenate([p.instruments for p in parts])
            order = np.lexsort((instruments, ts))
            ts = ts[order]
            instruments = instruments[order]
            values = np.concatenate([p.values for p in parts])[order]
            refs = np.concatenate([p.references for p in parts])[order]
            urefs = np.concatenate([p.u_references for p in parts])[order]
        n = len(ts)
        first_seq = gateway.last_seq + 1
        gateway.last_seq += n
        self.readings_generated += n
        ids = self._ids
        units = self._units
        index = instruments.tolist()
        # tuple.__new__ on the rows builds each Reading about twice as fast as calling the class.
        rows = zip(
            repeat(gateway.tenant, n),
            repeat(gateway.site, n),
            repeat(gateway.gateway, n),
            [ids[i] for i in index],
            ts.tolist(),
            values.tolist(),
            [units[i] for i in index],
            range(first_seq, first_seq + n),
            _optional(refs.tolist()),
            _optional(urefs.tolist()),
            strict=True,
        )
        readings: list[Reading] = [_new_tuple(Reading, row) for row in rows]
        # Cut at publish-interval boundaries, then at batch_size within an interval.
        interval = np.floor((ts - self.start) / self.publish_interval_s).astype(np.int64)
        edges = [0, *(np.flatnonzero(np.diff(interval)) + 1).tolist(), n]
        for a, b in pairwise(edges):
            interval_end = min(
                self.start + (int(interval[a]) + 1) * self.publish_interval_s, chunk_end
            )
            for lo in range(a, b, self.batch_size):
                hi = min(lo + self.batch_size, b)
                published_at = float(ts[hi - 1]) if hi - lo == self.batch_size else interval_end
                yield (
                    published_at,
                    GatewayBatch(gateway.tenant, gateway.site, gateway.gateway, readings[lo:hi]),
                )
