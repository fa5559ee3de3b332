"""Poison-message immunity: what the pipeline holds, recorded before it is processed.

A message the pipeline takes from the broker is acknowledged only after its batch is durable,
so when the process dies the broker delivers the message again, and again at every start. If
the message itself kills the process (a defect reached only by that input), the service could
never come back, and ingestion would stop for every tenant. This ledger breaks that loop:

1. Before a batch is processed, the fingerprints of its messages (BLAKE2b of topic and payload)
   are recorded as *in hand*; once the batch is acknowledged, the record is removed.
2. At start, whatever a previous run left in hand was in hand when it died: each of those
   fingerprints becomes a *suspect*, with a count of the crashes it was in hand at.
3. A suspect that comes back is processed on its own (one message per batch, its own record),
   so a second crash pins down the message that causes it and clears the innocent ones that
   happened to share its batch; a suspect processed and acknowledged is forgotten.
4. A message that was in hand at ``poison_after`` crashes is not processed again: the pipeline
   files it as a dead letter with reason ``poison_message`` (and acknowledges it), and files it
   at once if it is sent again.

Durability: SQLite in WAL mode with ``synchronous=NORMAL``. A commit is written to the file
before it returns, so it survives the *process* dying (kill -9, a crash in native code, the
out-of-memory killer), which is what this ledger is about; after a power loss the broker still
re-delivers everything, only the crash count of that moment may be lost. No fsync per batch.

Bounds: suspects not seen again within ``forget_after_s`` (default 8 days, past the broker's
session expiry) are dropped at start; at most ``max_suspects`` are kept (the most recent).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from calstream.errors import ServiceError

__all__ = ["InHandLedger", "Triage", "fingerprint"]

DEFAULT_POISON_AFTER = 2
"""Crashes a message may be in hand at before it is filed as poison: the first crash may be
shared by a whole batch; the second happens with the message alone in hand."""
DEFAULT_FORGET_AFTER_S = 8 * 86_400.0
DEFAULT_MAX_SUSPECTS = 100_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS in_hand (
    token INTEGER PRIMARY KEY AUTOINCREMENT,
    taken_at REAL NOT NULL,
    fingerprints BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS suspects (
    fingerprint BLOB PRIMARY KEY,
    crashes INTEGER NOT NULL,
    last_crash_at REAL NOT NULL
) WITHOUT ROWID;
"""
_DIGEST = 16


class Message(Protocol):
    """What the ledger needs of a message: where it came from and its bytes."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes: ...


def fingerprint(topic: str, payload: bytes) -> bytes:
    """16 bytes of BLAKE2b over the topic and the payload: the same message, the same print."""
    digest = hashlib.blake2b(digest_size=_DIGEST)
    digest.update(topic.encode("utf-8", "surrogateescape"))
    digest.update(b"\0")
    digest.update(payload)
    return digest.digest()


M = TypeVar("M", bound=Message)


@dataclass(slots=True)
class Triage(Generic[M]):
    """A batch sorted by what the ledger knows of its messages."""

    ordinary: list[M] = field(default_factory=list)
    """Never in hand at a crash: processed as a batch."""
    suspects: list[M] = field(default_factory=list)
    """In hand at a crash, fewer than ``poison_after`` times: processed one at a time."""
    poison: list[tuple[M, int]] = field(default_factory=list)
    """In hand at ``poison_after`` crashes or more (with that count): never processed again."""


class InHandLedger:
    """The durable record of the messages in hand, and of the suspects of earlier crashes."""

    def __init__(
        self,
        path: Path,
        *,
        poison_after: int = DEFAULT_POISON_AFTER,
        forget_after_s: float = DEFAULT_FORGET_AFTER_S,
        max_suspects: int = DEFAULT_MAX_SUSPECTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if poison_after < 1:
            raise ValueError(f"poison_after must be at least 1, not {poison_after}")
        self.path = path
        self.poison_after = poison_after
        self._now = clock
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self.crashed_with = self._count_crash(forget_after_s, max_suspects)
            """Messages the previous run had in hand when it died (0 after a clean stop)."""
        except sqlite3.Error as exc:
            raise ServiceError(f"cannot open the in-hand ledger {path}: {exc}") from exc

    def _count_crash(self, forget_after_s: float, max_suspects: int) -> int:
        """Turn what the last run left in hand into suspects; returns how many there were."""
        now = self._now()
        db = self._db
        rows = db.execute("SELECT fingerprints FROM in_hand").fetchall()
        prints = {blob[i : i + _DIGEST] for (blob,) in rows for i in range(0, len(blob), _DIGEST)}
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO suspects (fingerprint, crashes, last_crash_at) "
                "VALUES (?, 1, ?) ON CONFLICT (fingerprint) DO UPDATE SET "
                "crashes = crashes + 1, last_crash_at = excluded.last_crash_at",
                [(p, now) for p in prints],
            )
            db.execute("DELETE FROM in_hand")
            db.execute("DELETE FROM suspects WHERE last_crash_at < ?", (now - forget_after_s,))
            db.execute(
                "DELETE FROM suspects WHERE fingerprint NOT IN (SELECT fingerprint FROM suspects "
                "ORDER BY last_crash_at DESC LIMIT ?)",
                (max_suspects,),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._suspects: dict[bytes, int] = dict(
            db.execute("SELECT fingerprint, crashes FROM suspects").fetchall()
        )
        return len(prints)

    @property
    def suspect_count(self) -> int:
        return len(self._suspects)

    def triage(self, messages: Sequence[M]) -> Triage[M]:
        """Sort ``messages`` into ordinary ones, suspects and poison (no I/O without suspects)."""
        triage: Triage[M] = Triage()
        suspects = self._suspects
        if not suspects:
            triage.ordinary.extend(messages)
            return triage
        for message in messages:
            crashes = suspects.get(fingerprint(message.topic, message.payload), 0)
            if crashes >= self.poison_after:
                triage.poison.append((message, crashes))
            elif crashes:
                triage.suspects.append(message)
            else:
                triage.ordinary.append(message)
        return triage

    def hold(self, messages: Sequence[Message]) -> int:
        """Record ``messages`` as in hand (committed before this returns); returns the token."""
        blob = b"".join(fingerprint(m.topic, m.payload) for m in messages)
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO in_hand (taken_at, fingerprints) VALUES (?, ?)", (self._now(), blob)
            )
        return int(cursor.lastrowid or 0)

    def release(self, token: int, messages: Sequence[Message]) -> None:
        """The messages of ``token`` are acknowledged: no longer in hand, no longer suspect."""
        with self._lock:
            self._db.execute("DELETE FROM in_hand WHERE token = ?", (token,))
            if self._suspects:
                prints = [fingerprint(m.topic, m.payload) for m in messages]
                known = [p for p in prints if p in self._suspects]
                if known:
                    self._db.executemany(
                        "DELETE FROM suspects WHERE fingerprint = ?", [(p,) for p in known]
                    )
                    for p in known:
                        del self._suspects[p]

    def close(self) -> None:
        with self._lock:
            self._db.close()
