"""What an alert channel is to the pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from metrology.assessment import StatusChange


class AlertChannel(Protocol):
    """Sends the status changes of a committed batch (never blocks the pipeline for long)."""

    def send(self, changes: Sequence[StatusChange]) -> None: ...
