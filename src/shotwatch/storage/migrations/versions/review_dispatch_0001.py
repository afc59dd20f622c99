"""review_dispatch: review records, incident versions, journal, calls, deliveries

Revision ID: review_dispatch_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "review_dispatch_0001"
down_revision = None
branch_labels = ("review_dispatch",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_records",
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("arrival_s", sa.Double(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("escalated_to", sa.String(100), nullable=True),
        sa.Column("opened_s", sa.Double(), nullable=True),
        sa.Column("opened_by", sa.String(100), nullable=True),
        sa.Column("decided_s", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_review_records")),
    )
    op.create_index(op.f("ix_review_records_state"), "review_records", ["state"])
    op.create_table(
        "review_versions",
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("command", sa.String(40), nullable=True),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("at_s", sa.Double(), nullable=False),
        sa.Column("incident", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "number", name=op.f("pk_review_versions")),
    )
    op.create_table(
        "review_journal",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at_s", sa.Double(), nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("command", sa.String(40), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("outcome_reason", sa.String(2000), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_journal")),
    )
    op.create_index(op.f("ix_review_journal_at_s"), "review_journal", ["at_s"])
    op.create_index(op.f("ix_review_journal_incident_id"), "review_journal", ["incident_id"])
    op.create_table(
        "dispatch_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(100), nullable=False),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("incident_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_s", sa.Double(), nullable=False),
        sa.Column("call", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_calls")),
    )
    op.create_index(op.f("ix_dispatch_calls_call_id"), "dispatch_calls", ["call_id"])
    op.create_index(op.f("ix_dispatch_calls_incident_id"), "dispatch_calls", ["incident_id"])
    op.create_table(
        "dispatch_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(100), nullable=False),
        sa.Column("idempotency_key", sa.String(120), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_deliveries")),
    )
    op.create_index(op.f("ix_dispatch_deliveries_call_id"), "dispatch_deliveries", ["call_id"])
    op.create_index(
        op.f("ix_dispatch_deliveries_idempotency_key"), "dispatch_deliveries", ["idempotency_key"]
    )


def downgrade() -> None:
    for t in (
        "dispatch_deliveries",
        "dispatch_calls",
        "review_journal",
        "review_versions",
        "review_records",
    ):
        op.drop_table(t)
