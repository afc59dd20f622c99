"""Alembic migrations: one branch per domain (ADR 0002)."""
