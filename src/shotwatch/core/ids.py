"""Identifiers: deterministic where the input determines them, so replays give equal ids."""

from __future__ import annotations

import hashlib
import uuid


def stable_id(prefix: str, *parts: object) -> str:
    """A short id derived from ``parts``: the same inputs always give the same id."""
    h = hashlib.blake2b(digest_size=10)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\x1f")
    return f"{prefix}-{h.hexdigest()}"


def random_id(prefix: str) -> str:
    """A random id for objects created by people (review actions, cases)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"
