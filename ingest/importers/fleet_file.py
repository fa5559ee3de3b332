"""The fleet file: YAML in, a validated :class:`metrology.fleet.Fleet` out."""

from __future__ import annotations

from pathlib import Path

import yaml

from metrology.errors import FleetError
from metrology.fleet import Fleet, load_fleet

__all__ = ["read_fleet"]


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
