"""The root of every calstream error, and the errors of the metrology domain.

Every error calstream raises on purpose derives from :class:`CalstreamError`; each package
keeps its own branch in its ``errors`` module (``tests/metrology/test_error_tree.py`` checks this
drawing against the classes)::

    CalstreamError
    ├── MetrologyError              metrology: a value, record or description is invalid
    │   ├── UnitError               a unit is unknown or not convertible to the instrument's unit
    │   ├── CalibrationError        no calibration is valid at a time, or a record is inconsistent
    │   ├── FleetError              a fleet description is invalid (with the path of the bad field)
    │   ├── ChartError              a control chart's design parameters are out of their domain
    │   ├── ConsensusError          peers' readings cannot form a consensus reference
    │   ├── DecisionRuleError       a conformity decision rule is unknown or out of its domain
    │   ├── DriftFitError           a drift fit's arguments are out of their domain
    │   ├── IntervalError           an interval recommendation's arguments are out of their domain
    │   └── UsageError              a usage count's arguments are out of their domain
    ├── IngestError                 ingest: the inbound side of the platform failed
    │   ├── BrokerUnavailable       the MQTT broker cannot be reached or refused the connection
    │   └── SinkUnavailable         a forwarder's sink cannot take records now (retry later)
    │       └── KafkaUnavailable    no Kafka broker answered at the bootstrap address
    ├── ProcessingError             stream_processors: state or records cannot be processed
    │   └── StateCodecError         a document is not a state, reading or calibration of the codec
    ├── StorageError                storage: a store cannot be opened, written or read
    │   ├── SchemaVersionError      the database has another schema version (refused, untouched)
    │   ├── RegistryError           a registry operation was refused, with the reason
    │   │   ├── NotFoundError       the object named does not exist (within the caller's scope)
    │   │   ├── PermissionDeniedError   outside the caller's scope (worded alike if it exists)
    │   │   ├── ConflictError       a duplicate id, an overlapping certificate, a changed record
    │   │   ├── InvalidDocumentError    the operation's document is invalid (every field named)
    │   │   └── AuthenticationError an unknown, revoked or expired token (one error for all)
    │   ├── UnsupportedQuery        this store cannot answer this query yet (InfluxDB series)
    │   ├── BrokerAuthError         the broker's password file and ACL cannot be written as asked
    │   ├── ReaderRolesError        tenants' read-only database roles or InfluxDB users refused
    │   └── LocalQueueError         a local queue's file cannot be opened, written or read
    │       ├── LocalQueueFull      the entry does not fit under max_bytes: refused, none dropped
    │       └── LocalQueueVersionError  another layout or entry format (refused, untouched)
    ├── EdgeSimError                edge_sim: the simulated gateways failed
    │   └── PublishError            the broker could not be reached or did not take a message
    │       ├── ConnectError        no CONNACK within the timeout, or the connection was refused
    │       ├── BackpressureTimeout the in-flight window stayed full longer than the timeout
    │       └── SpoolError          the spool file cannot be opened, written or read
    │           └── SpoolFull       the message does not fit under the spool's max_bytes
    ├── DashboardError              dashboards: a dashboard cannot be built or pushed
    │   ├── UnknownQuery            a panel names a query its flavour does not define
    │   ├── PushError               Grafana cannot be reached or refused the dashboards
    │   └── ProvisioningError       tenants' organisations cannot be provisioned as asked
    └── ServiceError                calstream: the running service cannot go on as configured
        └── JournalError            the journal cannot be opened, written or read
            └── JournalFull         appending would exceed max_bytes: back-pressure instead

Bad *input* never raises: it becomes a :class:`metrology.wire.Rejection` and a dead letter.
"""


class CalstreamError(Exception):
    """Root of every error calstream raises on purpose (see the tree above)."""


class MetrologyError(CalstreamError):
    """Root of every error raised by :mod:`metrology`."""


class UnitError(MetrologyError):
    """A unit is unknown, or cannot be converted to the unit an instrument is registered in."""


class CalibrationError(MetrologyError):
    """No calibration record applies, or a record is inconsistent."""


class FleetError(MetrologyError):
    """A fleet description is invalid."""


class ChartError(MetrologyError, ValueError):
    """A chart parameter or baseline is out of its domain (the message names which and why)."""


class ConsensusError(MetrologyError, ValueError):
    """A peer value or a consensus argument is invalid (the message names the instrument)."""


class DecisionRuleError(MetrologyError, ValueError):
    """A decision rule or a conformity argument is invalid (the message says which and why)."""


class DriftFitError(MetrologyError, ValueError):
    """An argument of a drift fit or prediction is out of its domain."""


class IntervalError(MetrologyError, ValueError):
    """An argument of an interval calculation is out of its domain."""


class UsageError(MetrologyError, ValueError):
    """An argument of a usage count is out of its domain."""
