"""Append-only, tamper-evident audit log (RFC 6962-style Merkle tree)."""
