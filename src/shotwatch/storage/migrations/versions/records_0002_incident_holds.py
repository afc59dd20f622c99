"""records: a legal hold may name an incident (its sensor audio) instead of a record

Revision ID: records_0002
Revises: records_0001
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0002"
down_revision = "records_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records_legal_holds") as batch:
        batch.alter_column("record_id", existing_type=sa.String(length=128), nullable=True)
        batch.add_column(sa.Column("incident_id", sa.String(length=200), nullable=True))
        batch.create_index("ix_records_legal_holds_incident_id", ["incident_id"], unique=False)
        batch.create_check_constraint("one_subject", "(record_id IS NULL) <> (incident_id IS NULL)")


def downgrade() -> None:
    with op.batch_alter_table("records_legal_holds") as batch:
        batch.drop_constraint("ck_records_legal_holds_one_subject", type_="check")
        batch.drop_index("ix_records_legal_holds_incident_id")
        batch.drop_column("incident_id")
        batch.alter_column("record_id", existing_type=sa.String(length=128), nullable=False)
