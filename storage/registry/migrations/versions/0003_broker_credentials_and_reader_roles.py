"""Broker credentials and reader roles.

- ``broker_credentials``: the MQTT login of each gateway and of each calibration provider's
  alert reader, the password kept as mosquitto's PBKDF2-SHA512 hash (``$7$...``) only;
- ``reader_roles``: the PostgreSQL login role of each tenant's dashboards, which the row-level
  security policies of ``calstream grafana-roles`` read to know the tenant of a session.

Both start empty: credentials are issued (``calstream gateways credentials``), reader roles
created by ``calstream grafana-roles``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:12:05.118211
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_credentials",
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("gateway_id", sa.Text(), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.Float(), nullable=False),
        sa.Column("issued_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant", "site", "gateway_id"],
            ["gateways.tenant", "gateways.site", "gateways.gateway_id"],
            name="fk_broker_credentials_gateways",
        ),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.tenant_id"], name=op.f("fk_broker_credentials_tenant_tenants")
        ),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_broker_credentials")),
        sa.UniqueConstraint(
            "tenant",
            "site",
            "gateway_id",
            "kind",
            name=op.f("uq_broker_credentials_tenant_site_gateway_id_kind"),
        ),
    )
    op.create_table(
        "reader_roles",
        sa.Column("role_name", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.tenant_id"], name=op.f("fk_reader_roles_tenant_tenants")
        ),
        sa.PrimaryKeyConstraint("role_name", name=op.f("pk_reader_roles")),
        sa.UniqueConstraint("tenant", name=op.f("uq_reader_roles_tenant")),
    )


def downgrade() -> None:
    op.drop_table("reader_roles")
    op.drop_table("broker_credentials")
