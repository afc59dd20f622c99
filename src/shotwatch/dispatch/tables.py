"""Durable review and dispatch state (Alembic branch ``review_dispatch``; ADR 0093).

Append-only where history matters: every incident version, every journal entry, every call
version and every delivery attempt is a new row; only the small ``review_records`` row (queue
state and clocks of one incident) is updated in place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Double, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shotwatch.storage.db import Base


class ReviewRecordRow(Base):
    __tablename__ = "review_records"

    incident_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    arrival_s: Mapped[float] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(16), index=True)
    escalated_to: Mapped[str | None] = mapped_column(String(100), nullable=True)
    opened_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    opened_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_s: Mapped[float | None] = mapped_column(Double, nullable=True)


class ReviewVersionRow(Base):
    __tablename__ = "review_versions"

    incident_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    command: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reason: Mapped[str] = mapped_column(String(2000))
    author: Mapped[str] = mapped_column(String(100))
    at_s: Mapped[float] = mapped_column(Double)
    incident: Mapped[Any] = mapped_column(JSON)


class ReviewJournalRow(Base):
    __tablename__ = "review_journal"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at_s: Mapped[float] = mapped_column(Double, index=True)
    incident_id: Mapped[str] = mapped_column(String(200), index=True)
    command: Mapped[str] = mapped_column(String(40))
    author: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(2000))
    params: Mapped[Any] = mapped_column(JSON)
    ok: Mapped[bool] = mapped_column(Boolean)
    outcome_reason: Mapped[str] = mapped_column(String(2000))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class CallRow(Base):
    __tablename__ = "dispatch_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(100), index=True)
    incident_id: Mapped[str] = mapped_column(String(200), index=True)
    incident_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_s: Mapped[float] = mapped_column(Double)
    call: Mapped[Any] = mapped_column(JSON)


class DeliveryRow(Base):
    __tablename__ = "dispatch_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(100), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    ok: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(2000))
    attempts: Mapped[Any] = mapped_column(JSON)
