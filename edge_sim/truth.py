"""Ground truth of a simulation: what each instrument really did, to score the platform against.

The simulator decides every instrument's behaviour before it produces a reading; this module
holds those decisions as values (:class:`GroundTruth`, :class:`InstrumentTruth`) and writes them
as JSON so an end-to-end test or a benchmark can compare detections with the truth:

- ``true_oot_at``: the first reading time at which the injected error (drift or shift, without
  noise) leaves the instrument's tolerance limits (``Tolerance.limits_at`` the true value);
  ``None`` when it never does inside the window. A stuck or silent instrument is a data-quality
  fault, not a metrological drift, so its ``true_oot_at`` is ``None``.
- ``drift_rate_per_day``: the deterministic drift rate in the registered unit per day
  (0 for every behaviour but ``linear_drift`` and ``random_walk_drift``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_sim.behaviour import Behaviour

TRUTH_FORMAT = 1


@dataclass(frozen=True, slots=True)
class InstrumentTruth:
    """What one instrument really did (times: UTC epoch seconds; values: registered unit)."""

    instrument_id: str
    tenant: str
    site: str
    gateway: str
    behaviour: Behaviour
    reference_kind: str
    unit: str
    reported_unit: str
    """The unit the gateway reports in (a convertible alternative for a few instruments)."""
    noise_sigma: float
    """Standard deviation of the indication noise (about 0.5-0.8 x the calibration's u)."""
    drift_rate_per_day: float = 0.0
    onset_at: float | None = None
    """When the injected drift or shift starts (``None``: no injected error)."""
    step_size: float | None = None
    restarts_at: tuple[float, ...] = ()
    """Calibrations inside the window after the onset: the instrument is adjusted there and the
    drift restarts from zero (a step shift does not come back)."""
    true_oot_at: float | None = None
    stuck_at: float | None = None
    stuck_value: float | None = None
    """The frozen indication (reported unit) from ``stuck_at`` on."""
    dropout_windows: tuple[tuple[float, float], ...] = ()
    """Silent stretches ``[start, end)``: no reading has a timestamp inside them."""
    check_nominal: float | None = None
    """Nominal value of the check standard (``check_standard`` instruments), registered unit."""
    check_every: int | None = None
    """One reading in ``check_every`` is a measurement of the check standard."""

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["behaviour"] = self.behaviour.value
        document["restarts_at"] = list(self.restarts_at)
        document["dropout_windows"] = [list(w) for w in self.dropout_windows]
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> InstrumentTruth:
        values = dict(document)
        values["behaviour"] = Behaviour(values["behaviour"])
        values["restarts_at"] = tuple(values.get("restarts_at", ()))
        values["dropout_windows"] = tuple(
            (float(a), float(b)) for a, b in values.get("dropout_windows", ())
        )
        return cls(**values)


@dataclass(frozen=True)
class GroundTruth:
    """The truth of one simulation run: window, seed, and every instrument's behaviour."""

    seed: int
    start: float
    end: float
    instruments: dict[str, InstrumentTruth] = field(default_factory=dict)

    def __getitem__(self, instrument_id: str) -> InstrumentTruth:
        return self.instruments[instrument_id]

    def with_behaviour(self, behaviour: Behaviour) -> list[InstrumentTruth]:
        """Instruments showing ``behaviour``, in registry order."""
        return [t for t in self.instruments.values() if t.behaviour is behaviour]

    def drifting(self) -> list[InstrumentTruth]:
        """Instruments with an injected drift or shift."""
        return [t for t in self.instruments.values() if t.behaviour.drifts]

    def out_of_tolerance(self) -> list[InstrumentTruth]:
        """Instruments whose true error leaves tolerance inside the window."""
        return [t for t in self.instruments.values() if t.true_oot_at is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TRUTH_FORMAT,
            "seed": self.seed,
            "start": self.start,
            "end": self.end,
            "instruments": [t.to_json() for t in self.instruments.values()],
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> GroundTruth:
        if document.get("format") != TRUTH_FORMAT:
            found = document.get("format")
            raise ValueError(f"ground truth format {found!r} is not {TRUTH_FORMAT}")
        instruments = [InstrumentTruth.from_json(d) for d in document["instruments"]]
        return cls(
            seed=int(document["seed"]),
            start=float(document["start"]),
            end=float(document["end"]),
            instruments={t.instrument_id: t for t in instruments},
        )


def write_truth(path: str | Path, truth: GroundTruth) -> None:
    """Write ``truth`` as JSON (UTF-8, indented)."""
    Path(path).write_text(json.dumps(truth.to_json(), indent=1) + "\n", encoding="utf-8")


def read_truth(path: str | Path) -> GroundTruth:
    """Read ground truth written by :func:`write_truth`."""
    return GroundTruth.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
