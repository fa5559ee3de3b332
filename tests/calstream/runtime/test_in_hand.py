"""The in-hand ledger: crashes counted per message across real process deaths (kill -9)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from calstream.errors import ServiceError
from calstream.runtime.in_hand import InHandLedger, fingerprint


@dataclass(frozen=True)
class Msg:
    topic: str
    payload: bytes


def messages(n: int, prefix: str = "m") -> list[Msg]:
    return [Msg("calstream/v1/acme/s/gw/readings", f"{prefix}{i}".encode()) for i in range(n)]


def die_holding(path: Path, payloads: list[bytes], poison_after: int = 2) -> None:
    """A real process opens the ledger, holds ``payloads`` and is killed with SIGKILL."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from calstream.runtime.in_hand import InHandLedger

        class M:
            def __init__(self, payload):
                self.topic = "calstream/v1/acme/s/gw/readings"
                self.payload = payload

        ledger = InHandLedger(Path({str(path)!r}), poison_after={poison_after})
        ledger.hold([M(p) for p in {payloads!r}])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert process.returncode == -9, process.stderr.decode()


def test_a_clean_run_leaves_no_suspect(tmp_path: Path) -> None:
    path = tmp_path / "in_hand.sqlite"
    ledger = InHandLedger(path)
    batch = messages(5)
    token = ledger.hold(batch)
    ledger.release(token, batch)
    ledger.close()
    again = InHandLedger(path)
    assert again.crashed_with == 0
    assert again.suspect_count == 0
    triage = again.triage(batch)
    assert (len(triage.ordinary), triage.suspects, triage.poison) == (5, [], [])


def test_what_was_in_hand_at_a_kill_comes_back_as_suspects(tmp_path: Path) -> None:
    path = tmp_path / "in_hand.sqlite"
    batch = messages(4)
    die_holding(path, [m.payload for m in batch[:3]])
    ledger = InHandLedger(path)
    assert ledger.crashed_with == 3
    triage = ledger.triage([*batch, *messages(2, "other")])
    assert [m.payload for m in triage.suspects] == [b"m0", b"m1", b"m2"]
    assert [m.payload for m in triage.ordinary] == [b"m3", b"other0", b"other1"]
    assert triage.poison == []


def test_a_message_in_hand_at_two_crashes_is_poison_and_its_batch_mates_are_not(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in_hand.sqlite"
    die_holding(path, [b"innocent-1", b"culprit", b"innocent-2"])
    # The next run processes the suspects one at a time: the innocent ones are acknowledged,
    # the culprit kills the process again, alone in hand.
    ledger = InHandLedger(path)
    innocent = [Msg("calstream/v1/acme/s/gw/readings", b"innocent-1")]
    ledger.release(ledger.hold(innocent), innocent)
    ledger.close()
    die_holding(path, [b"culprit"])
    ledger = InHandLedger(path)
    assert ledger.crashed_with == 1
    batch = [
        Msg("calstream/v1/acme/s/gw/readings", p)
        for p in (b"culprit", b"innocent-1", b"innocent-2")
    ]
    triage = ledger.triage(batch)
    assert [(m.payload, n) for m, n in triage.poison] == [(b"culprit", 2)]
    assert [m.payload for m in triage.suspects] == [b"innocent-2"]
    assert [m.payload for m in triage.ordinary] == [b"innocent-1"]


def test_the_same_payload_on_another_topic_is_another_message() -> None:
    assert fingerprint("a/b", b"x") != fingerprint("a/c", b"x")
    assert fingerprint("a/b", b"x") == fingerprint("a/b", b"x")
    assert len(fingerprint("t", b"")) == 16


def test_old_suspects_are_forgotten_and_their_number_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "in_hand.sqlite"
    clock = [1_000_000.0]
    ledger = InHandLedger(path, clock=lambda: clock[0])
    ledger.hold(messages(10))
    ledger.close()  # as if the process died: the hold was never released
    clock[0] += 10.0
    ledger = InHandLedger(path, clock=lambda: clock[0], max_suspects=4)
    assert (ledger.crashed_with, ledger.suspect_count) == (10, 4)
    ledger.close()
    clock[0] += 9 * 86_400.0
    ledger = InHandLedger(path, clock=lambda: clock[0], forget_after_s=8 * 86_400.0)
    assert (ledger.crashed_with, ledger.suspect_count) == (0, 0)


def test_poison_after_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InHandLedger(tmp_path / "x.sqlite", poison_after=0)


def test_an_unreadable_ledger_is_a_service_error(tmp_path: Path) -> None:
    bad = tmp_path / "in_hand.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ServiceError, match="in-hand ledger"):
        InHandLedger(bad)
