"""Exceptions of :mod:`dashboards` (their place in the tree: :mod:`metrology.errors`)."""

from metrology.errors import CalstreamError


class DashboardError(CalstreamError):
    """Root of every error raised by :mod:`dashboards`."""


class UnknownQuery(DashboardError, KeyError):
    """A panel or variable names a query its flavour does not define."""


class PushError(DashboardError):
    """Grafana cannot be reached, refused the dashboards, or grafana-client is missing."""


class ProvisioningError(DashboardError):
    """The tenants' organisations cannot be provisioned as asked (no datasource to confine
    them with, a tenant without its database, an unreadable organisations.yaml, or Grafana
    numbering an organisation otherwise than the files)."""
