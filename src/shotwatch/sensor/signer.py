"""The sensor's side of signing: one identity, one growing sequence for every message."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shotwatch.core.model import iso_utc
from shotwatch.sensor.messages import MessageType, ReportFields, seal
from shotwatch.sensor.sequence import SequenceCounter


class SensorSigner:
    """Seals messages as sensor ``serial`` with its Ed25519 key and persistent sequence."""

    def __init__(
        self, serial: str, key: Ed25519PrivateKey, sequence: SequenceCounter | str | Path
    ) -> None:
        self.serial = serial
        self.key = key
        self.sequence = (
            sequence if isinstance(sequence, SequenceCounter) else SequenceCounter(sequence)
        )
        self._lock = threading.Lock()

    def seal(self, kind: MessageType, body: dict[str, Any]) -> tuple[int, bytes]:
        with self._lock:
            seq = self.sequence.next()
        return seq, seal(self.key, kind, self.serial, seq, body)

    def report(
        self, fields: ReportFields, snippet: np.ndarray, sample_rate_hz: int, snippet_t0_s: float
    ) -> tuple[int, bytes]:
        body = fields.to_body(snippet, sample_rate_hz, iso_utc(snippet_t0_s))
        return self.seal(MessageType.REPORT, body)
