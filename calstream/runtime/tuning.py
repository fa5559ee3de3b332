"""Process-level tuning for long-running calstream processes."""

from __future__ import annotations

import gc


def tune_garbage_collector() -> None:
    """Collect cyclic garbage less often.

    The pipeline allocates a few short-lived tuples per reading and builds no reference cycles
    on its hot path, yet CPython's default threshold (700 allocations) runs a young-generation
    collection every few dozen readings. Objects alive at start-up (fleet, registry, caches) are
    moved out of the collector's sight with :func:`gc.freeze`.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
