"""The registry's tables as SQLAlchemy Core: one definition for SQLite and PostgreSQL.

``docs/storage.md`` is the reference (columns, units, keys). The migrations in
``storage/registry/migrations`` create exactly these tables; a test compares the two.

Times are epoch seconds, UTC, as double precision (``FLOAT``: REAL on SQLite, ``double
precision`` on PostgreSQL), the same numbers the series carry, so dashboards join on them
without conversion. JSON columns hold standard JSON as text on both databases (one code path;
PostgreSQL readers cast with ``::jsonb``).

Calibrations keep every revision of every certificate (ISO/IEC 17025:2017 §7.5.2, §7.8.8): the
original issue is revision 0; an amendment is a new row with who amended it, when and why, and
``in_force`` marks the newest revision of each certificate, the one that corrects readings.
Curve corrections keep their certificate points in ``calibration_curve_points``.

Registry operations (:mod:`storage.registry.operations`) write, in the same transaction as each
change, a row of ``registry_audit`` (who, when, what, before and after, why) and a row of
``registry_changes`` (the change log the running pipeline follows). Both are append-only: the
migration adds triggers that refuse UPDATE and DELETE on them, on SQLite and PostgreSQL.
``contracts`` say which provider serves which client, with what scope and when;
``tenant_clients`` keeps the pairs that have (or had) a contract, for the dashboards' client
lists. ``api_tokens`` keeps a SHA-256 digest of each token's secret, never the secret.

``broker_credentials`` holds the MQTT login of each gateway and of each calibration provider's
alert reader: the user name and mosquitto's PBKDF2-SHA512 hash of the password (``$7$...``),
never the password (:mod:`storage.registry.broker_access`). ``reader_roles`` maps the database
login roles of the tenants' dashboards to their tenant: PostgreSQL's row-level security policies
read it (:mod:`storage.registry.row_security`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    false,
)

# Named constraints: Alembic can then address them, and both dialects name them alike.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("decision_rule", Text),
    Column("interval_policy", Text),
    Column("shared_gateways", Boolean, nullable=False, server_default=false()),
)

tenant_clients = Table(
    "tenant_clients",
    metadata,
    Column("provider", Text, nullable=False),
    Column("client", Text, nullable=False),
    PrimaryKeyConstraint("provider", "client"),
    ForeignKeyConstraint(["provider"], ["tenants.tenant_id"]),
    ForeignKeyConstraint(["client"], ["tenants.tenant_id"]),
)

sites = Table(
    "sites",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("site_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    PrimaryKeyConstraint("tenant", "site_id"),
    ForeignKeyConstraint(["tenant"], ["tenants.tenant_id"]),
)

gateways = Table(
    "gateways",
    metadata,
    Column("tenant", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("gateway_id", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("retired_at", Float),
    PrimaryKeyConstraint("tenant", "site", "gateway_id"),
    ForeignKeyConstraint(["tenant", "site"], ["sites.tenant", "sites.site_id"]),
)

instruments = Table(
    "instruments",
    metadata,
    Column("instrument_id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("gateway", Text, nullable=False),
    Column("measurand", Text, nullable=False),
    Column("unit", Text, nullable=False),
    Column("tolerance_lower", Float),
    Column("tolerance_upper", Float),
    Column("tolerance_relative", Float, nullable=False),
    Column("reporting_period_s", Float, nullable=False),
    Column("reference_kind", Text, nullable=False),
    Column("peer_group", Text),
    Column("reference_instrument", Text),
    Column("range_low", Float, nullable=False),
    Column("range_high", Float, nullable=False),
    Column("description", Text, nullable=False),
    Column("decision_rule", Text),
    Column("interval_policy", Text),
    Column("retired_at", Float),
    ForeignKeyConstraint(["tenant", "site"], ["sites.tenant", "sites.site_id"]),
    Index("instruments_by_site", "tenant", "site"),
)

calibrations = Table(
    "calibrations",
    metadata,
    Column("instrument_id", Text, nullable=False),
    Column("certificate_id", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("in_force", Boolean, nullable=False),
    Column("calibrated_at", Float, nullable=False),
    Column("correction_kind", Text, nullable=False),
    Column("correction_offset", Float),
    Column("correction_gain", Float),
    Column("expanded_uncertainty", Float, nullable=False),
    Column("coverage_factor", Float, nullable=False),
    Column("standard_uncertainty", Float, nullable=False),
    Column("interval_days", Float, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("as_found_error", Float),
    Column("amended_at", Float),
    Column("amended_by", Text),
    Column("amendment_reason", Text),
    PrimaryKeyConstraint("instrument_id", "certificate_id", "revision"),
    ForeignKeyConstraint(["instrument_id"], ["instruments.instrument_id"]),
)

calibration_curve_points = Table(
    "calibration_curve_points",
    metadata,
    Column("instrument_id", Text, nullable=False),
    Column("certificate_id", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("point", Integer, nullable=False),
    Column("indication", Float, nullable=False),
    Column("correction", Float, nullable=False),
    PrimaryKeyConstraint("instrument_id", "certificate_id", "revision", "point"),
    ForeignKeyConstraint(
        ["instrument_id", "certificate_id", "revision"],
        ["calibrations.instrument_id", "calibrations.certificate_id", "calibrations.revision"],
        name="fk_calibration_curve_points_calibrations",
    ),
)

instrument_state = Table(
    "instrument_state",
    metadata,
    Column("instrument_id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("conditions", Text, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("evaluated_at", Float, nullable=False),
    Column("last_reading_at", Float),
    Column("numbers", Text, nullable=False),
    Column("residual", Float),
    Column("u_residual", Float),
    Column("drift_rate", Float),
    Column("predicted_oot_at", Float),
    Column("probability_of_conformity", Float),
    Column("due_at", Float),
    Column("first_drift_at", Float),
    Index("instrument_state_by_site", "tenant", "site"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("instrument_id", Text, nullable=False),
    Column("ts", Float, nullable=False),
    Column("previous", Text),
    Column("status", Text, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("numbers", Text, nullable=False),
    UniqueConstraint("instrument_id", "ts", "status"),
    Index("alerts_by_tenant_time", "tenant", "ts"),
    Index("alerts_by_time", "ts"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),
    Column("topic", Text, nullable=False),
    Column("tenant", Text),
    Column("instrument_id", Text),
    Column("seq", BigInteger),
    Column("reason", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("excerpt", Text, nullable=False),
    Column("count", Integer, nullable=False),
    Column("dedup_key", Text, nullable=False),
    UniqueConstraint("dedup_key"),
    Index("dead_letters_by_time", "received_at"),
)

contracts = Table(
    "contracts",
    metadata,
    Column("contract_id", Integer, primary_key=True, autoincrement=True),
    Column("provider", Text, nullable=False),
    Column("client", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("valid_from", Float),
    Column("valid_until", Float),
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("end_reason", Text),
    ForeignKeyConstraint(["provider"], ["tenants.tenant_id"]),
    ForeignKeyConstraint(["client"], ["tenants.tenant_id"]),
    Index("contracts_by_provider", "provider", "client"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("secret_sha256", Text, nullable=False),
    ForeignKeyConstraint(["tenant"], ["tenants.tenant_id"]),
    Index("api_tokens_by_tenant", "tenant"),
)

registry_audit = Table(
    "registry_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("principal", Text, nullable=False),
    Column("principal_tenant", Text),
    Column("role", Text, nullable=False),
    Column("token_id", Text, nullable=False),
    Column("operation", Text, nullable=False),
    Column("entity", Text, nullable=False),
    Column("entity_key", Text, nullable=False),
    Column("tenant", Text),
    Column("before", Text),
    Column("after", Text),
    Column("reason", Text),
    Index("registry_audit_by_tenant_time", "tenant", "at"),
    Index("registry_audit_by_time", "at"),
)

registry_changes = Table(
    "registry_changes",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("kind", Text, nullable=False),
    Column("operation", Text, nullable=False),
    Column("tenant", Text),
    Column("key", Text, nullable=False),
)

broker_credentials = Table(
    "broker_credentials",
    metadata,
    Column("username", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("site", Text),
    Column("gateway_id", Text),
    Column("password_hash", Text, nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("issued_by", Text, nullable=False),
    ForeignKeyConstraint(["tenant"], ["tenants.tenant_id"]),
    # A provider's login names no gateway: a key with NULL columns is not checked (MATCH SIMPLE).
    ForeignKeyConstraint(
        ["tenant", "site", "gateway_id"],
        ["gateways.tenant", "gateways.site", "gateways.gateway_id"],
        name="fk_broker_credentials_gateways",
    ),
    UniqueConstraint("tenant", "site", "gateway_id", "kind"),
)

reader_roles = Table(
    "reader_roles",
    metadata,
    Column("role_name", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    ForeignKeyConstraint(["tenant"], ["tenants.tenant_id"]),
    UniqueConstraint("tenant"),
)

APPEND_ONLY_TABLES: tuple[str, ...] = ("registry_audit", "registry_changes")
"""Tables whose rows are never updated or deleted (triggers refuse it)."""

REGISTRY_TABLES: tuple[str, ...] = tuple(metadata.tables)
"""Every table the migrations own (the embedded store adds its series tables beside them)."""
