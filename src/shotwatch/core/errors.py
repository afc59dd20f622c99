"""Errors that name what is wrong.

Every reader and validator raises :class:`InputError` with the place (file, object id or
request) and the field, so a caller can report the problem and go on with the rest.
"""

from __future__ import annotations


class ShotWatchError(Exception):
    """Base class of ShotWatch's own errors."""


class InputError(ShotWatchError, ValueError):
    """Bad input: ``where`` (file or object), ``field`` and a human-readable ``reason``."""

    def __init__(self, where: str, field: str, reason: str) -> None:
        self.where = where
        self.field = field
        self.reason = reason
        super().__init__(f"{where}: {field}: {reason}")

    def to_dict(self) -> dict[str, str]:
        return {"where": self.where, "field": self.field, "reason": self.reason}
