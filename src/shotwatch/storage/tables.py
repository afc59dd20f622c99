"""Tables for the pipeline's objects: sensors, pulses, shots, incidents (Alembic branch "pipeline").

Rows are versions, never edited in place: a reviewer's relocation is a new ``shots`` row whose
``supersedes`` names the row it replaces, and a re-surveyed sensor is a new ``sensors`` row
with the next ``version_no`` (ADR 0050). Every row carries its provenance (mode, algorithm,
version, created time, author, supersedes).

Times are POSIX seconds in double precision (``Double``: float8 on PostgreSQL, REAL on SQLite),
which round-trips Python floats bit for bit on both backends. Values the model keeps as NaN
(unknown SNR, say) are stored as NULL because SQLite cannot hold NaN.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shotwatch.storage.db import Base

ID_LEN = 128
NAME_LEN = 128


class ProvenanceColumns:
    """Creation info on every row (mirrors :class:`shotwatch.core.model.Provenance`)."""

    mode: Mapped[str] = mapped_column(String(16))
    algorithm: Mapped[str] = mapped_column(String(NAME_LEN))
    version: Mapped[str] = mapped_column(String(NAME_LEN))
    created_s: Mapped[float] = mapped_column(Double)
    author: Mapped[str] = mapped_column(String(NAME_LEN))


class SensorRow(ProvenanceColumns, Base):
    """One surveyed position of a sensor; a re-survey adds the next version."""

    __tablename__ = "sensors"
    __table_args__ = (UniqueConstraint("serial", "version_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(String(NAME_LEN), index=True)
    version_no: Mapped[int] = mapped_column(Integer)
    x_m: Mapped[float] = mapped_column(Double)
    y_m: Mapped[float] = mapped_column(Double)
    z_m: Mapped[float] = mapped_column(Double)
    lat_deg: Mapped[float | None] = mapped_column(Double, nullable=True)
    lon_deg: Mapped[float | None] = mapped_column(Double, nullable=True)
    elevation_m: Mapped[float | None] = mapped_column(Double, nullable=True)
    supersedes: Mapped[int | None] = mapped_column(
        ForeignKey("sensors.id", ondelete="RESTRICT"), nullable=True
    )


class PulseRow(ProvenanceColumns, Base):
    """One impulse reported by one sensor; ``pulse_id`` is the sensor's own id (idempotent)."""

    __tablename__ = "pulses"
    __table_args__ = (Index("ix_pulses_sensor_t", "sensor", "t_s"),)

    pulse_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    sensor: Mapped[str] = mapped_column(String(NAME_LEN))
    t_s: Mapped[float] = mapped_column(Double, index=True)
    x_m: Mapped[float] = mapped_column(Double)
    y_m: Mapped[float] = mapped_column(Double)
    z_m: Mapped[float] = mapped_column(Double)
    snr_db: Mapped[float | None] = mapped_column(Double, nullable=True)
    level_db_spl: Mapped[float | None] = mapped_column(Double, nullable=True)
    clock_error_s: Mapped[float] = mapped_column(Double)
    score: Mapped[float | None] = mapped_column(Double, nullable=True)
    supersedes: Mapped[str | None] = mapped_column(
        ForeignKey("pulses.pulse_id", ondelete="RESTRICT"), nullable=True
    )


class ShotRow(ProvenanceColumns, Base):
    """A located shot (one version); its pulses are in ``shot_pulses``."""

    __tablename__ = "shots"

    shot_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    t0_s: Mapped[float] = mapped_column(Double, index=True)
    x_m: Mapped[float] = mapped_column(Double)
    y_m: Mapped[float] = mapped_column(Double)
    z_m: Mapped[float] = mapped_column(Double)
    sensors: Mapped[list[str]] = mapped_column(JSON)
    residual_rms_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    uncertainty_m: Mapped[float | None] = mapped_column(Double, nullable=True)
    ellipse_semi_major_m: Mapped[float | None] = mapped_column(Double, nullable=True)
    ellipse_semi_minor_m: Mapped[float | None] = mapped_column(Double, nullable=True)
    ellipse_azimuth_deg: Mapped[float | None] = mapped_column(Double, nullable=True)
    ellipse_confidence: Mapped[float | None] = mapped_column(Double, nullable=True)
    covariance: Mapped[Any] = mapped_column(JSON, nullable=True)
    dims: Mapped[int] = mapped_column(Integer)
    quality: Mapped[float | None] = mapped_column(Double, nullable=True)
    ambiguous: Mapped[bool] = mapped_column(Boolean)
    alt_x_m: Mapped[float | None] = mapped_column(Double, nullable=True)
    alt_y_m: Mapped[float | None] = mapped_column(Double, nullable=True)
    speed_of_sound_mps: Mapped[float] = mapped_column(Double)
    lat_deg: Mapped[float | None] = mapped_column(Double, nullable=True)
    lon_deg: Mapped[float | None] = mapped_column(Double, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    supersedes: Mapped[str | None] = mapped_column(
        ForeignKey("shots.shot_id", ondelete="RESTRICT"), nullable=True, index=True
    )

    links: Mapped[list[ShotPulseRow]] = relationship(
        back_populates="shot", cascade="all, delete-orphan", lazy="selectin"
    )


class ShotPulseRow(Base):
    """A pulse's part in a shot: its place among the pulses used, its residual, outlier rank.

    A pulse may be listed with only a residual or only as an outlier, so each role is nullable.
    """

    __tablename__ = "shot_pulses"
    __table_args__ = (Index("ix_shot_pulses_pulse", "pulse_id"),)

    shot_id: Mapped[str] = mapped_column(
        ForeignKey("shots.shot_id", ondelete="CASCADE"), primary_key=True
    )
    pulse_id: Mapped[str] = mapped_column(
        ForeignKey("pulses.pulse_id", ondelete="RESTRICT"), primary_key=True
    )
    used_ord: Mapped[int | None] = mapped_column(Integer, nullable=True)
    has_residual: Mapped[bool] = mapped_column(Boolean)
    residual_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    outlier_ord: Mapped[int | None] = mapped_column(Integer, nullable=True)

    shot: Mapped[ShotRow] = relationship(back_populates="links")


class IncidentRow(ProvenanceColumns, Base):
    """Shots grouped into an incident (one version); its shots are in ``incident_shots``."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_window", "start_s", "end_s"),)

    incident_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    start_s: Mapped[float] = mapped_column(Double)
    end_s: Mapped[float] = mapped_column(Double, index=True)
    x_m: Mapped[float] = mapped_column(Double)
    y_m: Mapped[float] = mapped_column(Double)
    rounds: Mapped[int] = mapped_column(Integer)
    shooters: Mapped[int] = mapped_column(Integer)
    shooter_positions: Mapped[Any] = mapped_column(JSON)
    automatic: Mapped[bool] = mapped_column(Boolean)
    cadence_rps: Mapped[float | None] = mapped_column(Double, nullable=True)
    movement_speed_mps: Mapped[float | None] = mapped_column(Double, nullable=True)
    movement_heading_deg: Mapped[float | None] = mapped_column(Double, nullable=True)
    movement_distance_m: Mapped[float | None] = mapped_column(Double, nullable=True)
    lat_deg: Mapped[float | None] = mapped_column(Double, nullable=True)
    lon_deg: Mapped[float | None] = mapped_column(Double, nullable=True)
    gunfire_probability: Mapped[float | None] = mapped_column(Double, nullable=True)
    label: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    extra: Mapped[Any] = mapped_column(JSON)
    supersedes: Mapped[str | None] = mapped_column(
        ForeignKey("incidents.incident_id", ondelete="RESTRICT"), nullable=True, index=True
    )

    links: Mapped[list[IncidentShotRow]] = relationship(
        back_populates="incident",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="IncidentShotRow.ord",
    )


class IncidentShotRow(Base):
    """A shot's membership (and order) in an incident version."""

    __tablename__ = "incident_shots"
    __table_args__ = (Index("ix_incident_shots_shot", "shot_id"),)

    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.incident_id", ondelete="CASCADE"), primary_key=True
    )
    shot_id: Mapped[str] = mapped_column(
        ForeignKey("shots.shot_id", ondelete="RESTRICT"), primary_key=True
    )
    ord: Mapped[int] = mapped_column(Integer)

    incident: Mapped[IncidentRow] = relationship(back_populates="links")


class PulseAudioRow(Base):
    """The audio snippet a sensor sent with a pulse (1 s before to 1 s after its onset): what
    reviewers hear and the scorer scored. The samples (int16 little-endian mono, as received)
    are a file under the deployment's evidence directory, ``path`` relative to it, checked
    against ``sha256`` when read; this row is their index. No foreign key to ``pulses``: the
    two are written by different writers, and a snippet is evidence in its own right
    (ADR 0114)."""

    __tablename__ = "pulse_audio"
    __table_args__ = (Index("ix_pulse_audio_start_s", "start_s"),)

    pulse_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    sensor: Mapped[str] = mapped_column(String(NAME_LEN))
    start_s: Mapped[float] = mapped_column(Double)
    rate_hz: Mapped[int] = mapped_column(Integer)
    n_samples: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))


PIPELINE_TABLES = (
    SensorRow.__table__,
    PulseRow.__table__,
    PulseAudioRow.__table__,
    ShotRow.__table__,
    ShotPulseRow.__table__,
    IncidentRow.__table__,
    IncidentShotRow.__table__,
)
