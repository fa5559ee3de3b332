"""Exceptions of :mod:`storage` (their place in the tree: :mod:`metrology.errors`)."""

from metrology.errors import CalstreamError


class StorageError(CalstreamError):
    """Root of every error raised by :mod:`storage`; the database error is chained as the cause."""


class SchemaVersionError(StorageError):
    """The database carries a schema version this code does not know."""


class LocalQueueError(StorageError):
    """A local queue's file cannot be opened, written or read (path and cause given)."""


class LocalQueueFull(LocalQueueError):
    """The entry does not fit under the queue's ``max_bytes``: refused, nothing dropped."""


class LocalQueueVersionError(LocalQueueError):
    """The file has another layout, or entries of another format: refused, left untouched."""


class RegistryError(StorageError):
    """A registry operation was refused; the message says why (no database error behind it)."""


class NotFoundError(RegistryError):
    """The object named does not exist, within what the caller may see."""


class PermissionDeniedError(RegistryError):
    """The operation is outside the caller's scope.

    Outside the scope, an object that exists in another tenant and one that does not exist at
    all are refused with the same message: the refusal does not tell which.
    """


class ConflictError(RegistryError):
    """The operation contradicts what is stored: a duplicate id, a certificate that overlaps
    another in time, a stored revision with other content, an ended contract ended again."""


class InvalidDocumentError(RegistryError):
    """The operation's document is invalid; ``errors`` lists ``(field, message)`` pairs."""

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[tuple[str, str]] = list(errors or [])


class AuthenticationError(RegistryError):
    """The token is unknown, revoked or expired: the same error for all three (the reason is
    in the log, never in the answer)."""


class UnsupportedQuery(StorageError):
    """This store cannot answer this query (yet): the message says which store and which query."""


class BrokerAuthError(StorageError):
    """The broker's password file and ACL cannot be written as asked: a component without its
    password, two users with one name, a malformed password file."""


class ReaderRolesError(StorageError):
    """The tenants' read-only database roles or InfluxDB users cannot be set up: the registry is
    not PostgreSQL, two tenants map to one role name, or the server refused (its message given)."""
