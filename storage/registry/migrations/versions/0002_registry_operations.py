"""Registry operations: gateways, contracts, API tokens, the audit trail and the change log;
tenants' defaults and retired instruments.

- ``gateways`` is filled from the gateways the registered instruments name;
- ``contracts`` gets one ``read`` contract with no period for each ``tenant_clients`` pair (what
  a provider's clients meant until now);
- ``registry_audit`` and ``registry_changes`` are append-only: triggers refuse UPDATE and DELETE
  (and TRUNCATE on PostgreSQL).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 17:07:40.323445
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY = ("registry_audit", "registry_changes")
_PG_FUNCTION = "calstream_refuse_change"


def upgrade() -> None:
    op.create_table(
        "registry_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("principal_tenant", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_id", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("entity_key", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_audit")),
    )
    with op.batch_alter_table("registry_audit", schema=None) as batch_op:
        batch_op.create_index("registry_audit_by_tenant_time", ["tenant", "at"], unique=False)
        batch_op.create_index("registry_audit_by_time", ["at"], unique=False)

    op.create_table(
        "registry_changes",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_registry_changes")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("secret_sha256", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.tenant_id"], name=op.f("fk_api_tokens_tenant_tenants")
        ),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_api_tokens")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index("api_tokens_by_tenant", ["tenant"], unique=False)

    op.create_table(
        "contracts",
        sa.Column("contract_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.Float(), nullable=True),
        sa.Column("valid_until", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client"], ["tenants.tenant_id"], name=op.f("fk_contracts_client_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["provider"], ["tenants.tenant_id"], name=op.f("fk_contracts_provider_tenants")
        ),
        sa.PrimaryKeyConstraint("contract_id", name=op.f("pk_contracts")),
    )
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.create_index("contracts_by_provider", ["provider", "client"], unique=False)

    op.create_table(
        "gateways",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.Column("gateway_id", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("retired_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant", "site"],
            ["sites.tenant", "sites.site_id"],
            name=op.f("fk_gateways_tenant_site_sites"),
        ),
        sa.PrimaryKeyConstraint("tenant", "site", "gateway_id", name=op.f("pk_gateways")),
    )
    # ADD COLUMN only: SQLite alters these tables in place (no copy; the embedded store's views
    # over instruments stay valid).
    with op.batch_alter_table("instruments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retired_at", sa.Float(), nullable=True))
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision_rule", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("interval_policy", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("shared_gateways", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    _fill_from_version_1()
    _append_only()


def _fill_from_version_1() -> None:
    """Gateways from the instruments that name them; contracts from the provider-client pairs."""
    now = time.time()
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO gateways (tenant, site, gateway_id, description, created_at) "
            "SELECT DISTINCT tenant, site, gateway, '', :now FROM instruments"
        ),
        {"now": now},
    )
    bind.execute(
        sa.text(
            "INSERT INTO contracts (provider, client, scope, created_at) "
            "SELECT provider, client, 'read', :now FROM tenant_clients ORDER BY provider, client"
        ),
        {"now": now},
    )


def _append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {_PG_FUNCTION}()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {_PG_FUNCTION}()"
            )
        return
    for table in APPEND_ONLY:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} BEGIN "
                f"SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("shared_gateways")
        batch_op.drop_column("interval_policy")
        batch_op.drop_column("decision_rule")

    with op.batch_alter_table("instruments", schema=None) as batch_op:
        batch_op.drop_column("retired_at")

    op.drop_table("gateways")
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_index("contracts_by_provider")

    op.drop_table("contracts")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index("api_tokens_by_tenant")

    op.drop_table("api_tokens")
    # Dropping a table drops its triggers too.
    op.drop_table("registry_changes")
    with op.batch_alter_table("registry_audit", schema=None) as batch_op:
        batch_op.drop_index("registry_audit_by_time")
        batch_op.drop_index("registry_audit_by_tenant_time")

    op.drop_table("registry_audit")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {_PG_FUNCTION}()")
