"""Building the platform's parts from settings: the composition root's small factories."""

from __future__ import annotations

from pathlib import Path

import yaml

from calstream.settings import Settings
from ingest.admission import Admission, AdmissionPolicy
from metrology.conformity import DecisionRule
from metrology.errors import FleetError
from metrology.fleet import Fleet, load_fleet
from stream_processors.policy import ProcessingPolicy


def policy_for(settings: Settings) -> ProcessingPolicy:
    """The processing policy the settings describe (one for the whole fleet for now)."""
    return ProcessingPolicy(
        decision_rule=DecisionRule.parse(settings.decision_rule),
        due_soon_days=settings.due_soon_days,
        offline_after_periods=settings.offline_after_periods,
    )


def admission_for(fleet: Fleet, settings: Settings) -> Admission:
    return Admission(
        fleet.instruments,
        AdmissionPolicy(max_future_s=settings.max_future_s, max_age_days=settings.max_age_days),
    )


def read_fleet(path: Path) -> Fleet:
    """Load and validate a fleet file; errors name the file and every bad field."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FleetError(f"cannot read fleet file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise FleetError(f"fleet file {path} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise FleetError(f"fleet file {path} must hold a mapping at the top level")
    try:
        return load_fleet(document)
    except FleetError as exc:
        raise FleetError(f"{path}: {exc}") from exc
