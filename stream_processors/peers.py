"""Reference values from redundant peers: the latest corrected values of each peer group.

Peers of a group measure the same quantity at the same point and report at the same times.
For a reading of one member, the reference is the consensus of the *other* members' corrected
values at the same timestamp (METROLOGY.md: the instrument under test is excluded from its own
reference; :func:`metrology.references.consensus`).
"""

from __future__ import annotations

from collections import deque

from metrology.references import Consensus, PeerValue, consensus

_KEPT_PER_MEMBER = 8


class PeerBoard:
    """Recent corrected values per peer-group member, matched by timestamp."""

    __slots__ = ("_groups", "_tolerance_s")

    def __init__(self, match_tolerance_s: float = 1.0) -> None:
        self._groups: dict[str, dict[str, deque[tuple[float, float, float]]]] = {}
        self._tolerance_s = match_tolerance_s

    def post(self, group: str, instrument_id: str, ts: float, corrected: float, u: float) -> None:
        """Record a member's corrected value and its standard uncertainty at ``ts``."""
        members = self._groups.setdefault(group, {})
        history = members.get(instrument_id)
        if history is None:
            history = members[instrument_id] = deque(maxlen=_KEPT_PER_MEMBER)
        history.append((ts, corrected, u))

    def members(self, group: str) -> dict[str, tuple[tuple[float, float, float], ...]]:
        """The recent ``(ts, corrected, u)`` of each member of ``group``, oldest first (a copy)."""
        return {member: tuple(history) for member, history in self._groups.get(group, {}).items()}

    def reference_for(
        self, group: str, instrument_id: str, ts: float, min_peers: int = 2
    ) -> Consensus | None:
        """Consensus of the other members at ``ts``; None if too few reported or they disagree.

        ``min_peers`` consistent peers are required: with three, one faulty peer is outvoted;
        with two, a peer drifting within its uncertainty drags half its drift into the reference.
        """
        peers: list[PeerValue] = []
        for member, history in self._groups.get(group, {}).items():
            if member == instrument_id:
                continue
            for peer_ts, value, u in reversed(history):
                if abs(peer_ts - ts) <= self._tolerance_s:
                    peers.append(PeerValue(member, value, u))
                    break
        agreed = consensus(peers, exclude=instrument_id, min_peers=min_peers)
        # Peers that disagree beyond their uncertainties, with no consistent subset large enough,
        # give no reference at all rather than a biased one.
        return agreed if agreed is not None and agreed.consistent else None
