"""Persistence through SQLAlchemy 2 with Alembic migrations (SQLite default, PostgreSQL by URL)."""
