"""The audit log's tables (Alembic branch ``audit``).

``audit_entries`` holds one row per audited event: the canonical JSON of the entry (what is
hashed), its RFC 6962 leaf hash and a running chain hash ``SHA-256(prev_chain || leaf)``.
``audit_checkpoints`` holds signed tree heads. The database refuses UPDATE and DELETE on
both (triggers, see the migration).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shotwatch.storage.db import Base


class AuditEntryRow(Base):
    """One audited event. Only the hashed entry is stored: focused audits query it through
    expression indexes (migration ``audit_0001``), so there is no copied column that could be
    edited to hide an entry from a query without breaking its hash."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry: Mapped[str] = mapped_column(Text, nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    chain_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class AuditCheckpointRow(Base):
    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    time_s: Mapped[float] = mapped_column(Float, nullable=False)
    key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    signature: Mapped[str] = mapped_column(String(128), nullable=False)
