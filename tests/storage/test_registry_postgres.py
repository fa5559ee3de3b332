"""The registry on a real PostgreSQL that goes away and comes back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from metrology.assessment import StatusChange
from metrology.batch import OutputBatch
from metrology.fleet import Fleet
from metrology.health import Status
from storage.errors import StorageError
from storage.registry import SqlRegistry


def test_a_stopped_server_raises_storage_error_and_the_registry_recovers(
    postgres: object, fleet: Fleet, make_change: Callable[..., StatusChange], t0: float
) -> None:
    url, server = postgres.url, postgres.server  # type: ignore[attr-defined]
    registry = SqlRegistry(url)
    try:
        registry.register_fleet(fleet)
        first = make_change("acme-n-TT-001", t0, Status.DRIFTING, Status.OK)
        assert registry.write_events(OutputBatch(changes=[first])) == (1, 0)
        server.stop()
        try:
            second = make_change("acme-n-TT-001", t0 + 60, Status.OK, Status.DRIFTING)
            with pytest.raises(StorageError, match=r"write states, changes and dead letters on "):
                registry.write_events(OutputBatch(changes=[second]))
            with pytest.raises(StorageError):
                registry.alert_count()
        finally:
            server.start()
        # The same registry object, no reconnect by the caller: stale connections are replaced.
        assert registry.write_events(OutputBatch(changes=[first, second])) == (1, 0)
        assert registry.alert_count() == 2
        assert registry.registered_instruments() == 6
    finally:
        registry.close()


def test_the_url_names_no_password_in_errors() -> None:
    registry_url = "postgresql://calstream:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(StorageError) as raised:
        SqlRegistry(registry_url)
    assert "s3cret" not in str(raised.value)
    assert "postgresql+psycopg://calstream:***@127.0.0.1:1/nowhere" in str(raised.value)
