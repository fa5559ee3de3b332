"""Registry tables: tenants, sites, instruments, calibration revisions and curves, state, alerts,
dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 21:41:43.221392
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("instrument_id", sa.Text(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("previous", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("numbers", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint(
            "instrument_id", "ts", "status", name=op.f("uq_alerts_instrument_id_ts_status")
        ),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("alerts_by_tenant_time", ["tenant", "ts"], unique=False)
        batch_op.create_index("alerts_by_time", ["ts"], unique=False)

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("instrument_id", sa.Text(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_dead_letters_dedup_key")),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index("dead_letters_by_time", ["received_at"], unique=False)

    op.create_table(
        "instrument_state",
        sa.Column("instrument_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("evaluated_at", sa.Float(), nullable=False),
        sa.Column("last_reading_at", sa.Float(), nullable=True),
        sa.Column("numbers", sa.Text(), nullable=False),
        sa.Column("residual", sa.Float(), nullable=True),
        sa.Column("u_residual", sa.Float(), nullable=True),
        sa.Column("drift_rate", sa.Float(), nullable=True),
        sa.Column("predicted_oot_at", sa.Float(), nullable=True),
        sa.Column("probability_of_conformity", sa.Float(), nullable=True),
        sa.Column("due_at", sa.Float(), nullable=True),
        sa.Column("first_drift_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("instrument_id", name=op.f("pk_instrument_state")),
    )
    with op.batch_alter_table("instrument_state", schema=None) as batch_op:
        batch_op.create_index("instrument_state_by_site", ["tenant", "site"], unique=False)

    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "sites",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("site_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.tenant_id"], name=op.f("fk_sites_tenant_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant", "site_id", name=op.f("pk_sites")),
    )
    op.create_table(
        "tenant_clients",
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client"], ["tenants.tenant_id"], name=op.f("fk_tenant_clients_client_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["provider"], ["tenants.tenant_id"], name=op.f("fk_tenant_clients_provider_tenants")
        ),
        sa.PrimaryKeyConstraint("provider", "client", name=op.f("pk_tenant_clients")),
    )
    op.create_table(
        "instruments",
        sa.Column("instrument_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("gateway", sa.Text(), nullable=False),
        sa.Column("measurand", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("tolerance_lower", sa.Float(), nullable=True),
        sa.Column("tolerance_upper", sa.Float(), nullable=True),
        sa.Column("tolerance_relative", sa.Float(), nullable=False),
        sa.Column("reporting_period_s", sa.Float(), nullable=False),
        sa.Column("reference_kind", sa.Text(), nullable=False),
        sa.Column("peer_group", sa.Text(), nullable=True),
        sa.Column("reference_instrument", sa.Text(), nullable=True),
        sa.Column("range_low", sa.Float(), nullable=False),
        sa.Column("range_high", sa.Float(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("decision_rule", sa.Text(), nullable=True),
        sa.Column("interval_policy", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant", "site"],
            ["sites.tenant", "sites.site_id"],
            name=op.f("fk_instruments_tenant_site_sites"),
        ),
        sa.PrimaryKeyConstraint("instrument_id", name=op.f("pk_instruments")),
    )
    with op.batch_alter_table("instruments", schema=None) as batch_op:
        batch_op.create_index("instruments_by_site", ["tenant", "site"], unique=False)

    op.create_table(
        "calibrations",
        sa.Column("instrument_id", sa.Text(), nullable=False),
        sa.Column("certificate_id", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("in_force", sa.Boolean(), nullable=False),
        sa.Column("calibrated_at", sa.Float(), nullable=False),
        sa.Column("correction_kind", sa.Text(), nullable=False),
        sa.Column("correction_offset", sa.Float(), nullable=True),
        sa.Column("correction_gain", sa.Float(), nullable=True),
        sa.Column("expanded_uncertainty", sa.Float(), nullable=False),
        sa.Column("coverage_factor", sa.Float(), nullable=False),
        sa.Column("standard_uncertainty", sa.Float(), nullable=False),
        sa.Column("interval_days", sa.Float(), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("as_found_error", sa.Float(), nullable=True),
        sa.Column("amended_at", sa.Float(), nullable=True),
        sa.Column("amended_by", sa.Text(), nullable=True),
        sa.Column("amendment_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["instrument_id"],
            ["instruments.instrument_id"],
            name=op.f("fk_calibrations_instrument_id_instruments"),
        ),
        sa.PrimaryKeyConstraint(
            "instrument_id", "certificate_id", "revision", name=op.f("pk_calibrations")
        ),
    )
    op.create_table(
        "calibration_curve_points",
        sa.Column("instrument_id", sa.Text(), nullable=False),
        sa.Column("certificate_id", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("point", sa.Integer(), nullable=False),
        sa.Column("indication", sa.Float(), nullable=False),
        sa.Column("correction", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instrument_id", "certificate_id", "revision"],
            ["calibrations.instrument_id", "calibrations.certificate_id", "calibrations.revision"],
            name=op.f("fk_calibration_curve_points_calibrations"),
        ),
        sa.PrimaryKeyConstraint(
            "instrument_id",
            "certificate_id",
            "revision",
            "point",
            name=op.f("pk_calibration_curve_points"),
        ),
    )


def downgrade() -> None:
    op.drop_table("calibration_curve_points")
    op.drop_table("calibrations")
    with op.batch_alter_table("instruments", schema=None) as batch_op:
        batch_op.drop_index("instruments_by_site")

    op.drop_table("instruments")
    op.drop_table("tenant_clients")
    op.drop_table("sites")
    op.drop_table("tenants")
    with op.batch_alter_table("instrument_state", schema=None) as batch_op:
        batch_op.drop_index("instrument_state_by_site")

    op.drop_table("instrument_state")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index("dead_letters_by_time")

    op.drop_table("dead_letters")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("alerts_by_time")
        batch_op.drop_index("alerts_by_tenant_time")

    op.drop_table("alerts")
