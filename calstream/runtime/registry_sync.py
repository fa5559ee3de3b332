"""Registry changes reach the running pipeline without a restart.

Every registry operation appends to the registry's change log (a sequence number, the kind of
entity and its key; :meth:`storage.registry.operations.RegistryOperations.changes_since`). The
embedded pipeline polls the log between batches (every ``every_s``, and before the next batch
after a change committed in this process, such as one made through the API it serves) and
reloads what changed, from the registry as it is now (not from the log's payload, so replaying
the log is harmless):

- an instrument registered or changed: admission takes its readings from then on, and the
  fleet processor runs `step` for it with its new registration (its state carries over);
- an instrument retired: its readings are refused with reason ``instrument_retired``;
- a certificate recorded or amended: the instrument's calibration history is reloaded; each
  certificate applies from its calibration date (readings already processed stay as they were);
- a tenant changed: its instruments are reloaded (decision rule, shared gateways).

At start the whole log is read once, so what was registered through the API in an earlier run is
known before the first reading.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from ingest.admission import Admission
from metrology.conformity import DecisionRule
from metrology.intervals import StaircasePolicy
from metrology.tenancy import Principal
from storage.contract import Store
from storage.registry.records import InstrumentRecord, TenantRecord
from stream_processors.runner import FleetProcessor

__all__ = ["RegistrySync"]

log = logging.getLogger(__name__)


class RegistrySync:
    """Applies the registry's change log to admission and the fleet processor."""

    def __init__(
        self,
        store: Store,
        admission: Admission,
        processor: FleetProcessor,
        *,
        every_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._operations = store.operations
        self._scope = self._operations.scope(Principal.local())
        self._admission = admission
        self._processor = processor
        self._every_s = every_s
        self._clock = clock
        self._next_at = 0.0
        self._operations.on_commit(self.due_now)
        self.seq = 0
        """The last change applied."""
        self.applied = 0
        """Changes applied since start (the metrics report it)."""

    def due_now(self) -> None:
        """The next poll applies changes at once (a change was committed in this process)."""
        self._next_at = 0.0

    def poll(self, force: bool = False) -> int:
        """Apply the changes since the last poll when one is due; returns how many."""
        now = self._clock()
        if not force and now < self._next_at:
            return 0
        self._next_at = now + self._every_s
        applied = 0
        while changes := self._operations.changes_since(self.seq, limit=1000):
            instruments: set[str] = set()
            histories: set[str] = set()
            tenants: set[str] = set()
            for change in changes:
                if change.kind == "instrument":
                    instruments.add(change.key)
                elif change.kind == "calibration":
                    histories.add(change.key.split("/", 1)[0])
                elif change.kind == "tenant" and change.tenant is not None:
                    tenants.add(change.tenant)
            self._reload(instruments, histories, tenants)
            self.seq = changes[-1].seq
            applied += len(changes)
        if applied:
            self.applied += applied
            log.info("registry: %d changes applied (up to change %d)", applied, self.seq)
        return applied

    def _reload(self, instruments: set[str], histories: set[str], tenants: set[str]) -> None:
        if not (instruments or histories or tenants):
            return
        records = {
            r.instrument_id: r
            for r in self._store.instruments(self._scope, include_retired=True)
            if r.instrument_id in instruments or r.tenant in tenants
        }
        owners = {t.tenant_id: t for t in self._operations.tenants(self._scope)}
        for record in records.values():
            self._apply(record, owners.get(record.tenant))
        for instrument_id in histories - set(records):
            history = self._store.calibration_history(instrument_id)
            self._processor.put_calibrations(instrument_id, history)

    def _apply(self, record: InstrumentRecord, owner: TenantRecord | None) -> None:
        if record.retired_at is not None:
            self._admission.retire(record.instrument_id, record.tenant, record.retired_at)
            return
        spec = record.spec(shared_gateways=owner is not None and owner.shared_gateways)
        if owner is not None:  # the tenant's defaults where the instrument sets none
            if spec.decision_rule is None and owner.decision_rule is not None:
                spec = replace(spec, decision_rule=DecisionRule.parse(owner.decision_rule))
            if spec.interval_policy is None and owner.interval_policy is not None:
                spec = replace(spec, interval_policy=StaircasePolicy(**owner.interval_policy))
        history = self._store.calibration_history(record.instrument_id)
        self._processor.put_instrument(spec, history)
        self._admission.register(spec)
