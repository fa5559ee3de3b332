"""Fixtures of the API tests: the world of ``api_harness`` in an embedded store, served live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_harness import Clock, LiveApi, seed, served

from storage.sqlite_store import SqliteStore


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "calstream.sqlite", clock=clock)
    seed(opened)
    yield opened
    opened.close()


@pytest.fixture
def live(store: SqliteStore, clock: Clock) -> Iterator[LiveApi]:
    """The API over the seeded embedded store, on a free port."""
    with served(store, clock) as api:
        yield api
