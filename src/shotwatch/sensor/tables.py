"""Server-side tables of the sensor domain (Alembic branch ``sensor``).

``sensor_registry``          every sensor the server trusts, with its Ed25519 public key
``sensor_last_sequence``     the highest message sequence accepted per sensor
``sensor_accepted_message``  one row per accepted (serial, seq): the dedupe key and a receipt
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shotwatch.storage.db import Base


class SensorRecord(Base):
    __tablename__ = "sensor_registry"

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(128))
    x_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    y_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    z_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    registered_s: Mapped[float] = mapped_column(Float)


class SensorLastSequence(Base):
    __tablename__ = "sensor_last_sequence"

    serial: Mapped[str] = mapped_column(
        String(64), ForeignKey("sensor_registry.serial"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger)


class SensorAcceptedMessage(Base):
    __tablename__ = "sensor_accepted_message"

    serial: Mapped[str] = mapped_column(
        String(64), ForeignKey("sensor_registry.serial"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64))
    received_s: Mapped[float] = mapped_column(Float)
