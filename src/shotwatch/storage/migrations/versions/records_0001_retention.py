"""records: items under retention, legal holds, disposal requests and approvals

Revision ID: records_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0001"
down_revision = None
branch_labels = ("records",)
depends_on = None

TABLES = (
    "records_items",
    "records_legal_holds",
    "records_disposal_requests",
    "records_disposal_approvals",
)


def upgrade() -> None:
    op.create_table(
        "records_disposal_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("created_at_s", sa.Float(), nullable=False),
        sa.Column("as_of_s", sa.Float(), nullable=False),
        sa.Column("items_json", sa.Text(), nullable=False),
        sa.Column("executed_at_s", sa.Float(), nullable=True),
        sa.Column("certificate_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_disposal_requests")),
    )
    op.create_table(
        "records_items",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("record_class", sa.String(length=64), nullable=False),
        sa.Column("classification", sa.String(length=64), nullable=False),
        sa.Column("command", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("created_at_s", sa.Float(), nullable=False),
        sa.Column("closed_at_s", sa.Float(), nullable=True),
        sa.Column("closure_reason", sa.String(length=64), nullable=False),
        sa.Column("subject_birth", sa.String(length=10), nullable=True),
        sa.Column("subject_death", sa.String(length=10), nullable=True),
        sa.Column("last_arrest", sa.String(length=10), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("disposed_at_s", sa.Float(), nullable=True),
        sa.Column("disposal_request_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_items")),
    )
    op.create_table(
        "records_disposal_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("approver", sa.String(length=64), nullable=False),
        sa.Column("approved_at_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["records_disposal_requests.id"],
            name=op.f("fk_records_disposal_approvals_request_id_records_disposal_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_disposal_approvals")),
        sa.UniqueConstraint("request_id", "approver", name="uq_records_approval_once"),
    )
    op.create_table(
        "records_legal_holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=64), nullable=False),
        sa.Column("placed_at_s", sa.Float(), nullable=False),
        sa.Column("released_by", sa.String(length=64), nullable=True),
        sa.Column("released_at_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records_items.id"],
            name=op.f("fk_records_legal_holds_record_id_records_items"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_legal_holds")),
    )


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
