"""pipeline tables: sensors, pulses, shots, incidents

Revision ID: pipeline_0001
Revises:
Create Date: 2026-11-23 09:08:54.260833
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pipeline_0001"
down_revision = None
branch_labels = ("pipeline",)
depends_on = None


def upgrade() -> None:

    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("end_s", sa.Double(), nullable=False),
        sa.Column("x_m", sa.Double(), nullable=False),
        sa.Column("y_m", sa.Double(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("shooters", sa.Integer(), nullable=False),
        sa.Column("shooter_positions", sa.JSON(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("cadence_rps", sa.Double(), nullable=True),
        sa.Column("movement_speed_mps", sa.Double(), nullable=True),
        sa.Column("movement_heading_deg", sa.Double(), nullable=True),
        sa.Column("movement_distance_m", sa.Double(), nullable=True),
        sa.Column("lat_deg", sa.Double(), nullable=True),
        sa.Column("lon_deg", sa.Double(), nullable=True),
        sa.Column("gunfire_probability", sa.Double(), nullable=True),
        sa.Column("label", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("supersedes", sa.String(length=128), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("algorithm", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("created_s", sa.Double(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["supersedes"],
            ["incidents.incident_id"],
            name=op.f("fk_incidents_supersedes_incidents"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_end_s"), ["end_s"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_supersedes"), ["supersedes"], unique=False)
        batch_op.create_index("ix_incidents_window", ["start_s", "end_s"], unique=False)

    op.create_table(
        "pulses",
        sa.Column("pulse_id", sa.String(length=128), nullable=False),
        sa.Column("sensor", sa.String(length=128), nullable=False),
        sa.Column("t_s", sa.Double(), nullable=False),
        sa.Column("x_m", sa.Double(), nullable=False),
        sa.Column("y_m", sa.Double(), nullable=False),
        sa.Column("z_m", sa.Double(), nullable=False),
        sa.Column("snr_db", sa.Double(), nullable=True),
        sa.Column("level_db_spl", sa.Double(), nullable=True),
        sa.Column("clock_error_s", sa.Double(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("supersedes", sa.String(length=128), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("algorithm", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("created_s", sa.Double(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["supersedes"],
            ["pulses.pulse_id"],
            name=op.f("fk_pulses_supersedes_pulses"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("pulse_id", name=op.f("pk_pulses")),
    )
    with op.batch_alter_table("pulses", schema=None) as batch_op:
        batch_op.create_index("ix_pulses_sensor_t", ["sensor", "t_s"], unique=False)
        batch_op.create_index(batch_op.f("ix_pulses_t_s"), ["t_s"], unique=False)

    op.create_table(
        "sensors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("serial", sa.String(length=128), nullable=False),
        sa.Column("version_no", sa.Integer(), nullable=False),
        sa.Column("x_m", sa.Double(), nullable=False),
        sa.Column("y_m", sa.Double(), nullable=False),
        sa.Column("z_m", sa.Double(), nullable=False),
        sa.Column("lat_deg", sa.Double(), nullable=True),
        sa.Column("lon_deg", sa.Double(), nullable=True),
        sa.Column("elevation_m", sa.Double(), nullable=True),
        sa.Column("supersedes", sa.Integer(), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("algorithm", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("created_s", sa.Double(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["supersedes"],
            ["sensors.id"],
            name=op.f("fk_sensors_supersedes_sensors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensors")),
        sa.UniqueConstraint("serial", "version_no", name=op.f("uq_sensors_serial")),
    )
    with op.batch_alter_table("sensors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sensors_serial"), ["serial"], unique=False)

    op.create_table(
        "shots",
        sa.Column("shot_id", sa.String(length=128), nullable=False),
        sa.Column("t0_s", sa.Double(), nullable=False),
        sa.Column("x_m", sa.Double(), nullable=False),
        sa.Column("y_m", sa.Double(), nullable=False),
        sa.Column("z_m", sa.Double(), nullable=False),
        sa.Column("sensors", sa.JSON(), nullable=False),
        sa.Column("residual_rms_s", sa.Double(), nullable=True),
        sa.Column("uncertainty_m", sa.Double(), nullable=True),
        sa.Column("ellipse_semi_major_m", sa.Double(), nullable=True),
        sa.Column("ellipse_semi_minor_m", sa.Double(), nullable=True),
        sa.Column("ellipse_azimuth_deg", sa.Double(), nullable=True),
        sa.Column("ellipse_confidence", sa.Double(), nullable=True),
        sa.Column("covariance", sa.JSON(), nullable=True),
        sa.Column("dims", sa.Integer(), nullable=False),
        sa.Column("quality", sa.Double(), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=False),
        sa.Column("alt_x_m", sa.Double(), nullable=True),
        sa.Column("alt_y_m", sa.Double(), nullable=True),
        sa.Column("speed_of_sound_mps", sa.Double(), nullable=False),
        sa.Column("lat_deg", sa.Double(), nullable=True),
        sa.Column("lon_deg", sa.Double(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("supersedes", sa.String(length=128), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("algorithm", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("created_s", sa.Double(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["supersedes"],
            ["shots.shot_id"],
            name=op.f("fk_shots_supersedes_shots"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("shot_id", name=op.f("pk_shots")),
    )
    with op.batch_alter_table("shots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shots_supersedes"), ["supersedes"], unique=False)
        batch_op.create_index(batch_op.f("ix_shots_t0_s"), ["t0_s"], unique=False)

    op.create_table(
        "incident_shots",
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("shot_id", sa.String(length=128), nullable=False),
        sa.Column("ord", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.incident_id"],
            name=op.f("fk_incident_shots_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shot_id"],
            ["shots.shot_id"],
            name=op.f("fk_incident_shots_shot_id_shots"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("incident_id", "shot_id", name=op.f("pk_incident_shots")),
    )
    with op.batch_alter_table("incident_shots", schema=None) as batch_op:
        batch_op.create_index("ix_incident_shots_shot", ["shot_id"], unique=False)

    op.create_table(
        "shot_pulses",
        sa.Column("shot_id", sa.String(length=128), nullable=False),
        sa.Column("pulse_id", sa.String(length=128), nullable=False),
        sa.Column("used_ord", sa.Integer(), nullable=True),
        sa.Column("has_residual", sa.Boolean(), nullable=False),
        sa.Column("residual_s", sa.Double(), nullable=True),
        sa.Column("outlier_ord", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pulse_id"],
            ["pulses.pulse_id"],
            name=op.f("fk_shot_pulses_pulse_id_pulses"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["shot_id"],
            ["shots.shot_id"],
            name=op.f("fk_shot_pulses_shot_id_shots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("shot_id", "pulse_id", name=op.f("pk_shot_pulses")),
    )
    with op.batch_alter_table("shot_pulses", schema=None) as batch_op:
        batch_op.create_index("ix_shot_pulses_pulse", ["pulse_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("shot_pulses", schema=None) as batch_op:
        batch_op.drop_index("ix_shot_pulses_pulse")

    op.drop_table("shot_pulses")
    with op.batch_alter_table("incident_shots", schema=None) as batch_op:
        batch_op.drop_index("ix_incident_shots_shot")

    op.drop_table("incident_shots")
    with op.batch_alter_table("shots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shots_t0_s"))
        batch_op.drop_index(batch_op.f("ix_shots_supersedes"))

    op.drop_table("shots")
    with op.batch_alter_table("sensors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sensors_serial"))

    op.drop_table("sensors")
    with op.batch_alter_table("pulses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pulses_t_s"))
        batch_op.drop_index("ix_pulses_sensor_t")

    op.drop_table("pulses")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_window")
        batch_op.drop_index(batch_op.f("ix_incidents_supersedes"))
        batch_op.drop_index(batch_op.f("ix_incidents_end_s"))

    op.drop_table("incidents")
