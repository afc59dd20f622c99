"""audit: append-only Merkle log and signed checkpoints

Revision ID: audit_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = ("audit",)
depends_on = None

APPEND_ONLY = ("audit_entries", "audit_checkpoints")
PG_ACTOR = "(entry::jsonb ->> 'actor')"
PG_ITEM = "(entry::jsonb ->> 'item')"
PG_TIME = "(((entry::jsonb ->> 'time_s'))::double precision)"
LITE_ACTOR = "json_extract(entry, '$.actor')"
LITE_ITEM = "json_extract(entry, '$.item')"
LITE_TIME = "json_extract(entry, '$.time_s')"
INDEXES = {
    "ix_audit_entries_actor_time": (f"{PG_ACTOR}, {PG_TIME}", f"{LITE_ACTOR}, {LITE_TIME}"),
    "ix_audit_entries_item_time": (f"{PG_ITEM}, {PG_TIME}", f"{LITE_ITEM}, {LITE_TIME}"),
    "ix_audit_entries_time": (PG_TIME, LITE_TIME),
}


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("chain_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
    )
    dialect = op.get_bind().dialect.name
    # Focused audits (by user, item, period) read the hashed entry itself through
    # expression indexes; shotwatch.audit.log.FIELD_SQL uses the same expressions.
    for name, (pg_expr, lite_expr) in INDEXES.items():
        expr = pg_expr if dialect == "postgresql" else lite_expr
        op.execute(f"CREATE INDEX {name} ON audit_entries ({expr})")
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("time_s", sa.Float(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name="pk_audit_checkpoints"),
    )
    if dialect == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION shotwatch_audit_append_only() RETURNS trigger AS $$
            BEGIN
              RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        for table in APPEND_ONLY:
            # Statement-level, so even an UPDATE or DELETE matching no row is refused.
            op.execute(
                f"CREATE TRIGGER {table}_append_only "
                f"BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION shotwatch_audit_append_only()"
            )
            op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC")
    elif dialect == "sqlite":
        for table in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'audit log is append-only: {verb} refused'); END"
                )


def downgrade() -> None:
    raise RuntimeError("the audit log is never downgraded: it would destroy evidence")
