"""A fleet file's amendments and policies reach the registry (SQLite through SQLAlchemy)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from metrology.fleet import load_fleet
from storage.registry import SqlRegistry

# The document of the fleet-file tests: one instrument, a certificate amended twice.
from tests.metrology.test_fleet_file import DOCUMENT, ID


def test_amended_revisions_and_the_interval_policy_are_registered(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    registry = SqlRegistry(f"sqlite:///{path}")
    try:
        fleet = load_fleet(DOCUMENT)
        registry.register_fleet(fleet)
        registry.register_fleet(fleet)  # again: nothing changes, nothing is refused
        trail = registry.calibration_history(ID).audit_trail("CAL-1")
    finally:
        registry.close()
    assert [(r.revision, r.correction.offset, r.expanded_uncertainty) for r in trail] == [
        (0, 0.02, 0.05),
        (1, -0.02, 0.05),
        (2, -0.02, 0.06),
    ]
    assert [r.amendment.amended_by for r in trail[1:]] == ["j.doe", "a.smith"]
    with sqlite3.connect(path) as conn:
        (policy,) = conn.execute(
            "SELECT interval_policy FROM instruments WHERE instrument_id = ?", (ID,)
        ).fetchone()
    assert json.loads(policy)["shorten_factor"] == 0.25
