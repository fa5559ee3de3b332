"""A notification: what an alert's event tells the people and systems on its routes.

Notifications are written to the store's outbox in the same transaction as the batch whose
processing raised them, and delivered from there, at least once per channel; the ``key`` is the
idempotency key a receiver uses to drop a second delivery of the same notification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How urgent an alert is, least first in :data:`SEVERITY_ORDER`."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY_ORDER: tuple[Severity, ...] = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)


class AlertEvent(StrEnum):
    """What happened to an alert."""

    RAISED = "raised"
    REOPENED = "reopened"
    """The condition came back within the hold window: the same alert, open again."""
    ESCALATED = "escalated"
    """Nobody acknowledged it within the configured time."""
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert event to deliver.

    ``key``: unique per notification and stable across re-deliveries (the idempotency key);
    ``at``: when the event happened (event time, epoch seconds UTC); ``numbers``: the numbers
    behind the alert (residual, uncertainty, limit, rule used, predicted crossing, ...).
    """

    key: str
    alert_id: int
    tenant: str
    site: str
    instrument_id: str
    condition: str
    severity: Severity
    event: AlertEvent
    at: float
    summary: str
    numbers: dict[str, float | str | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The notification as a JSON object (what a webhook receives as its body)."""
        return {
            "key": self.key,
            "alert_id": self.alert_id,
            "tenant": self.tenant,
            "site": self.site,
            "instrument_id": self.instrument_id,
            "condition": self.condition,
            "severity": self.severity.value,
            "event": self.event.value,
            "at": self.at,
            "summary": self.summary,
            "numbers": dict(self.numbers),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notification:
        return cls(
            key=str(data["key"]),
            alert_id=int(data["alert_id"]),
            tenant=str(data["tenant"]),
            site=str(data["site"]),
            instrument_id=str(data["instrument_id"]),
            condition=str(data["condition"]),
            severity=Severity(data["severity"]),
            event=AlertEvent(data["event"]),
            at=float(data["at"]),
            summary=str(data["summary"]),
            numbers=dict(data.get("numbers") or {}),
        )


@dataclass(frozen=True, slots=True)
class PendingNotification:
    """A notification in the outbox, with the channels that already have it."""

    outbox_id: int
    notification: Notification
    delivered_to: frozenset[str] = frozenset()
    attempts: int = 0
