"""Identity tables (Alembic branch ``identity``): users, assignment history, technology access
grants, training acknowledgments, sanctions and sessions."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shotwatch.storage.db import Base


class UserRow(Base):
    __tablename__ = "identity_users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(256), nullable=False, default="")
    agency: Mapped[str] = mapped_column(String(32), nullable=False)
    rank: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(64), nullable=False)
    command: Mapped[str] = mapped_column(String(64), nullable=False)
    bureau: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    directory_dn: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at_s: Mapped[float] = mapped_column(Float, nullable=False)


class AssignmentRow(Base):
    __tablename__ = "identity_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("identity_users.id"), nullable=False)
    command: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(64), nullable=False)
    rank: Mapped[str] = mapped_column(String(64), nullable=False)
    bureau: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    start_s: Mapped[float] = mapped_column(Float, nullable=False)
    end_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(String(256), nullable=False, default="")

    __table_args__ = (Index("ix_identity_assignments_user", "user_id"),)


class AccessGrantRow(Base):
    __tablename__ = "identity_access_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("identity_users.id"), nullable=False)
    policy_id: Mapped[str] = mapped_column(String(64), nullable=False)
    command: Mapped[str] = mapped_column(String(64), nullable=False)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    approved_by: Mapped[str] = mapped_column(String(64), nullable=False)
    granted_at_s: Mapped[float] = mapped_column(Float, nullable=False)
    revoked_at_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoke_reason: Mapped[str] = mapped_column(String(256), nullable=False, default="")

    __table_args__ = (Index("ix_identity_access_grants_user", "user_id"),)


class TrainingAckRow(Base):
    __tablename__ = "identity_training_acks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("identity_users.id"), nullable=False)
    policy_id: Mapped[str] = mapped_column(String(64), nullable=False)
    training_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    acknowledged_at_s: Mapped[float] = mapped_column(Float, nullable=False)


class SanctionRow(Base):
    __tablename__ = "identity_sanctions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("identity_users.id"), nullable=False)
    policy_id: Mapped[str] = mapped_column(String(64), nullable=False)
    offense: Mapped[int] = mapped_column(Integer, nullable=False)
    measure: Mapped[str] = mapped_column(String(128), nullable=False)
    recorded_by: Mapped[str] = mapped_column(String(64), nullable=False)
    recorded_at_s: Mapped[float] = mapped_column(Float, nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")


class SessionRow(Base):
    __tablename__ = "identity_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("identity_users.id"), nullable=False)
    created_at_s: Mapped[float] = mapped_column(Float, nullable=False)
    last_seen_s: Mapped[float] = mapped_column(Float, nullable=False)
    expires_at_s: Mapped[float] = mapped_column(Float, nullable=False)
    remote: Mapped[bool] = mapped_column(Boolean, nullable=False)
    second_factor: Mapped[bool] = mapped_column(Boolean, nullable=False)
    address: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    workstation: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    revoked_at_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoke_reason: Mapped[str] = mapped_column(String(256), nullable=False, default="")

    __table_args__ = (Index("ix_identity_sessions_user", "user_id"),)
