"""Exceptions of :mod:`dashboards` (their place in the tree: :mod:`metrology.errors`)."""

from metrology.errors import CalstreamError


class DashboardError(CalstreamError):
    """Root of every error raised by :mod:`dashboards`."""


class UnknownQuery(DashboardError, KeyError):
    """A panel or variable names a query its flavour does not define."""


class PushError(DashboardError):
    """Grafana cannot be reached, refused the dashboards, or grafana-client is missing."""
