"""pipeline: the index of the audio snippets sensors send with their pulses (files)

Revision ID: pipeline_0002
Revises: pipeline_0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pipeline_0002"
down_revision = "pipeline_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pulse_audio",
        sa.Column("pulse_id", sa.String(length=128), nullable=False),
        sa.Column("sensor", sa.String(length=128), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("rate_hz", sa.Integer(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pulse_id", name=op.f("pk_pulse_audio")),
    )
    op.create_index("ix_pulse_audio_start_s", "pulse_audio", ["start_s"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_pulse_audio_start_s", table_name="pulse_audio")
    op.drop_table("pulse_audio")
