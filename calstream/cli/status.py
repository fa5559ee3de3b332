"""`calstream status`: fleet health from a store, or one instrument with every number."""

from __future__ import annotations

import json
import sys
from contextlib import closing
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group

from calstream.cli.common import DbOption, JsonOption, StoreOption, fail, load_settings
from storage.errors import StorageError

if TYPE_CHECKING:
    from storage.contract import Store


def status(
    db: DbOption = None,
    store_option: StoreOption = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's instruments.")
    ] = None,
    json_output: JsonOption = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="How many of the worst instruments to list.")
    ] = 15,
    instrument: Annotated[
        str | None,
        typer.Option(
            "--instrument",
            help="Show one instrument: its status, every reason and every number behind them "
            "(conformity, detectors, drift and dates, interval recommendations).",
        ),
    ] = None,
) -> None:
    """Print fleet health from a store: counts by status per site, worst instruments, alerts."""
    from calstream.cli.views import (
        WIDE_COLUMNS,
        alerts_table,
        dead_letter_table,
        site_table,
        worst_table,
    )
    from calstream.wiring import store_for
    from storage.select import SQLITE_PREFIX, describe_store, sqlite_path, store_kind

    settings = load_settings()
    store_url = store_option or (f"{SQLITE_PREFIX}{db}" if db else settings.store_url)
    try:
        embedded = store_kind(store_url) == "sqlite"
    except ValueError as exc:
        fail(str(exc))
    path = sqlite_path(store_url) if embedded else None
    if path is not None and not path.exists():
        fail(f"no store at {path}; run `calstream demo` first or pass --db PATH")
    try:
        opened = store_for(settings, store_url)
    except (ValueError, StorageError) as exc:
        fail(str(exc))
    where = str(path) if path is not None else describe_store(store_url)
    if instrument is not None:
        _show_instrument(opened, instrument, tenant, where, json_output)
        return
    try:
        with closing(opened) as store:
            by_status = store.counts_by_status(tenant)
            by_site = {
                k: v for k, v in store.counts_by_site().items() if tenant is None or k[0] == tenant
            }
            worst = store.worst_instruments(limit, tenant)
            alerts = store.alerts(10, tenant)
            dead = store.dead_letters_by_reason()
            readings = store.reading_count()
    except StorageError as exc:
        fail(f"cannot read the store {where}: {exc}", code=1)
    if json_output:
        document = {
            "db": where,
            "readings": readings,
            "instruments_by_status": by_status,
            "sites": [
                {"tenant": t, "site": s, "instruments_by_status": counts}
                for (t, s), counts in sorted(by_site.items())
            ],
            "worst": [
                {
                    "instrument": w.instrument_id,
                    "tenant": w.tenant,
                    "site": w.site,
                    "status": str(w.status),
                    "conditions": [str(c) for c in w.conditions],
                    "reasons": list(w.reasons),
                    "numbers": w.numbers,
                }
                for w in worst
            ],
            "dead_letters_by_reason": dead,
            "alerts": len(alerts),
        }
        sys.stdout.write(json.dumps(document) + "\n")
        return
    console = Console()
    console.print(f"[bold]{where}[/]: {readings} readings, {sum(by_status.values())} instruments")
    wide = console.width >= WIDE_COLUMNS
    console.print(Group(site_table(by_site), worst_table(worst, wide=wide), alerts_table(alerts)))
    if dead:
        console.print(dead_letter_table(dead))


def _show_instrument(
    store: Store, instrument: str, tenant: str | None, where: str, json_output: bool
) -> None:
    """``calstream status --instrument ID``: one instrument's whole snapshot."""
    from calstream.cli.views import instrument_table

    try:
        snapshots = {s.instrument_id: s for s in store.snapshots(tenant)}
    except StorageError as exc:
        fail(f"cannot read the store {where}: {exc}", code=1)
    finally:
        store.close()
    snapshot = snapshots.get(instrument)
    if snapshot is None:
        known = ", ".join(sorted(snapshots)[:5]) or "none yet"
        fail(
            f"no health stored for {instrument!r} in {where}"
            + (f" (tenant {tenant})" if tenant else "")
            + f"; instruments with health: {known}"
            + (", ..." if len(snapshots) > 5 else "")
        )
    if json_output:
        document = {
            "instrument": snapshot.instrument_id,
            "tenant": snapshot.tenant,
            "site": snapshot.site,
            "status": str(snapshot.status),
            "conditions": [str(c) for c in snapshot.conditions],
            "reasons": list(snapshot.reasons),
            "evaluated_at": snapshot.evaluated_at,
            "numbers": snapshot.numbers,
        }
        sys.stdout.write(json.dumps(document) + "\n")
        return
    Console().print(instrument_table(snapshot))
