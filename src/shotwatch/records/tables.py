"""Records under retention (Alembic branch ``records``): items, legal holds, disposal
requests with their approvals, and the signed destruction certificates."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from shotwatch.storage.db import Base


class RecordRow(Base):
    __tablename__ = "records_items"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(64), nullable=False)
    record_class: Mapped[str] = mapped_column(String(64), nullable=False)
    classification: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    command: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    title: Mapped[str] = mapped_column(String(256), nullable=False, default="")
    created_at_s: Mapped[float] = mapped_column(Float, nullable=False)
    closed_at_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    closure_reason: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    subject_birth: Mapped[str | None] = mapped_column(String(10), nullable=True)
    subject_death: Mapped[str | None] = mapped_column(String(10), nullable=True)
    last_arrest: Mapped[str | None] = mapped_column(String(10), nullable=True)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    content_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    metadata_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    disposed_at_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    disposal_request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class LegalHoldRow(Base):
    """A legal hold on one record, or on one incident: the sensor audio of every pulse in it
    then outlives the 30-hour rule (:mod:`shotwatch.records.sensor_audio`) until released,
    whatever the review decided. Exactly one of the two is set."""

    __tablename__ = "records_legal_holds"
    __table_args__ = (
        CheckConstraint("(record_id IS NULL) <> (incident_id IS NULL)", name="one_subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str | None] = mapped_column(ForeignKey("records_items.id"), nullable=True)
    incident_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    placed_by: Mapped[str] = mapped_column(String(64), nullable=False)
    placed_at_s: Mapped[float] = mapped_column(Float, nullable=False)
    released_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    released_at_s: Mapped[float | None] = mapped_column(Float, nullable=True)


class DisposalRequestRow(Base):
    __tablename__ = "records_disposal_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at_s: Mapped[float] = mapped_column(Float, nullable=False)
    as_of_s: Mapped[float] = mapped_column(Float, nullable=False)
    items_json: Mapped[str] = mapped_column(Text, nullable=False)
    executed_at_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    certificate_json: Mapped[str | None] = mapped_column(Text, nullable=True)


class DisposalApprovalRow(Base):
    __tablename__ = "records_disposal_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("records_disposal_requests.id"), nullable=False
    )
    approver: Mapped[str] = mapped_column(String(64), nullable=False)
    approved_at_s: Mapped[float] = mapped_column(Float, nullable=False)

    __table_args__ = (UniqueConstraint("request_id", "approver", name="uq_records_approval_once"),)
