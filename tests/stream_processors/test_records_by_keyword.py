"""Records of processing state are built by field name in `stream_processors`, never by position.

The state and assessment records are named tuples: built by position, a reordered or inserted
field would put every later value into the wrong field without any error. A walk over the
package's source finds every construction of these records (``Record(...)``,
``Record.__new__(Record, ...)``, ``Record._make(...)``, ``tuple.__new__(Record, ...)``) and
fails on any that passes a field positionally.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stream_processors
from metrology.assessment import Assessment
from stream_processors.state import DriftTracking, InstrumentState, Judgement

PACKAGE = Path(stream_processors.__file__).parent
SHARED_RECORDS = frozenset(
    cls.__name__ for cls in (Assessment, DriftTracking, InstrumentState, Judgement)
)
"""Records the stream processors build (Assessment is metrology's, the others are the state)."""


def named_tuples_defined(tree: ast.Module) -> set[str]:
    """Names of the ``NamedTuple`` classes a module defines."""
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id == "NamedTuple" for base in node.bases)
    }


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def constructions(tree: ast.Module, records: frozenset[str]) -> list[tuple[str, int, int]]:
    """``(record, line, fields given by position)`` for every construction of ``records``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, args = node.func, list(node.args)
        record = _name(func)
        if record in records:
            found.append((record, node.lineno, len(args)))
            continue
        if not isinstance(func, ast.Attribute):
            continue
        owner = _name(func.value)
        if owner in records and func.attr == "_make":
            found.append((owner, node.lineno, max(len(args), 1)))  # an iterable, by position
        elif func.attr == "__new__" and args and _name(args[0]) in records:
            # Record.__new__(Record, ...) or tuple.__new__(Record, values): the class comes first.
            found.append((_name(args[0]) or "", node.lineno, len(args) - 1))
    return found


def positional_constructions(source: str, records: frozenset[str]) -> list[tuple[str, int]]:
    return [
        (r, line) for r, line, positional in constructions(ast.parse(source), records) if positional
    ]


def package_sources() -> dict[str, str]:
    return {
        str(path.relative_to(PACKAGE.parent)): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def package_records(sources: dict[str, str]) -> frozenset[str]:
    """The shared records and every named tuple the package defines."""
    defined: set[str] = set()
    for source in sources.values():
        defined |= named_tuples_defined(ast.parse(source))
    return SHARED_RECORDS | defined


def test_no_record_is_built_by_position_in_stream_processors() -> None:
    sources = package_sources()
    records = package_records(sources)
    offending = [
        f"{path}:{line} {record}"
        for path, source in sources.items()
        for record, line in positional_constructions(source, records)
    ]
    assert offending == []


def test_the_walk_sees_the_constructions_of_the_step() -> None:
    """Each shared record is built somewhere in the package, and the walk finds it by keyword."""
    sources = package_sources()
    records = package_records(sources)
    built = {
        record
        for source in sources.values()
        for record, _line, positional in constructions(ast.parse(source), records)
        if positional == 0
    }
    assert built >= SHARED_RECORDS
    assert "Estimate" in records  # a named tuple the package defines is checked too


@pytest.mark.parametrize(
    "source",
    [
        "Judgement(residual, u, reference, lower, upper)",
        "Judgement(residual, u_residual=u)",
        "Judgement.__new__(Judgement, residual, u)",
        "DriftTracking._make(values)",
        "tuple.__new__(InstrumentState, values)",
        "Assessment(*values)",
    ],
)
def test_a_positional_construction_is_found(source: str) -> None:
    assert len(positional_constructions(source, SHARED_RECORDS)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "Judgement(residual=residual, u_residual=u)",
        "Judgement.__new__(Judgement, residual=residual)",
        "InstrumentState()",
        "state._replace(readings=1)",
        "Reading(tenant, site)",  # not a record of processing state
    ],
)
def test_a_construction_by_keyword_passes(source: str) -> None:
    assert positional_constructions(source, SHARED_RECORDS) == []
