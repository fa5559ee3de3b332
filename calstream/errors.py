"""Exceptions of the service runtime (their place in the tree: :mod:`metrology.errors`)."""

from metrology.errors import CalstreamError


class ServiceError(CalstreamError):
    """Root of the errors of calstream's own runtime (journal, service lifecycle)."""


class JournalError(ServiceError):
    """The journal cannot be opened, written or read (path and cause given)."""


class JournalFull(JournalError):
    """The batch does not fit under the journal's ``max_bytes``."""
