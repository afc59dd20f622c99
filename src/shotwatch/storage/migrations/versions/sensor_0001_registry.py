"""sensor: registry, last accepted sequence, accepted-message receipts

Revision ID: sensor_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sensor_0001"
down_revision = None
branch_labels = ("sensor",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sensor_registry",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(128), nullable=False),
        sa.Column("x_m", sa.Float(), nullable=True),
        sa.Column("y_m", sa.Float(), nullable=True),
        sa.Column("z_m", sa.Float(), nullable=True),
        sa.Column("lat_deg", sa.Float(), nullable=True),
        sa.Column("lon_deg", sa.Float(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("registered_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_sensor_registry")),
    )
    op.create_table(
        "sensor_last_sequence",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["serial"],
            ["sensor_registry.serial"],
            name=op.f("fk_sensor_last_sequence_serial_sensor_registry"),
        ),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_sensor_last_sequence")),
    )
    op.create_table(
        "sensor_accepted_message",
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("received_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["serial"],
            ["sensor_registry.serial"],
            name=op.f("fk_sensor_accepted_message_serial_sensor_registry"),
        ),
        sa.PrimaryKeyConstraint("serial", "seq", name=op.f("pk_sensor_accepted_message")),
    )


def downgrade() -> None:
    op.drop_table("sensor_accepted_message")
    op.drop_table("sensor_last_sequence")
    op.drop_table("sensor_registry")
