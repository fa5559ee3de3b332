"""Alerts as objects with a lifecycle: one per instrument and condition, and the notifications
they send (:mod:`metrology.alerts.notification`)."""
