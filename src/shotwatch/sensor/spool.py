"""On-disk spool of signed messages: nothing is lost while the server or broker is away.

Messages enter the spool (SQLite, WAL, ``synchronous=FULL``) before any send is tried and
leave it only when the receiver has acknowledged them (accepted, or recognised as a duplicate
of one it already accepted). They are sent oldest first; while the receiver is unreachable the
head of the queue waits with exponential backoff (capped, with jitter), driven by the injected
clock, so a ten-minute outage costs a handful of attempts, not a busy loop.

A message the receiver rejects for good (bad signature, unknown sensor...) moves to the
``dead`` table with the reason: never dropped silently, never retried forever.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from shotwatch.core.clock import Clock
from shotwatch.sensor.transport import Delivery, DeliveryStatus, Transport

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    enqueued_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    failed_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS retry (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    attempts INTEGER NOT NULL,
    next_try_s REAL NOT NULL,
    last_error TEXT NOT NULL
);
"""


class Spool:
    """The durable queue itself."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def put(self, seq: int, kind: str, payload: bytes, now_s: float) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO spool (seq, kind, payload, enqueued_s) VALUES (?, ?, ?, ?)",
            (seq, kind, payload, now_s),
        )

    def put_many(self, items: list[tuple[int, str, bytes]], now_s: float) -> None:
        """Enqueue several messages in one durable transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO spool (seq, kind, payload, enqueued_s) VALUES (?, ?, ?, ?)",
                [(seq, kind, payload, now_s) for seq, kind, payload in items],
            )

    def head(self, limit: int = 1) -> list[tuple[int, str, bytes]]:
        rows = self._db.execute(
            "SELECT seq, kind, payload FROM spool ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    def remove(self, seqs: list[int]) -> None:
        """Forget acknowledged messages (one transaction; losing it only causes duplicates)."""
        if not seqs:
            return
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM spool WHERE seq = ?", [(q,) for q in seqs])

    def bury(self, seq: int, reason: str, now_s: float) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO dead (seq, kind, payload, reason, failed_s) "
                "SELECT seq, kind, payload, ?, ? FROM spool WHERE seq = ?",
                (reason, now_s, seq),
            )
            self._db.execute("DELETE FROM spool WHERE seq = ?", (seq,))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def dead(self) -> list[tuple[int, str, str]]:
        rows = self._db.execute("SELECT seq, kind, reason FROM dead ORDER BY seq").fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def retry_state(self) -> tuple[int, float, str]:
        row = self._db.execute("SELECT attempts, next_try_s, last_error FROM retry").fetchone()
        return (0, 0.0, "") if row is None else (int(row[0]), float(row[1]), str(row[2]))

    def set_retry_state(self, attempts: int, next_try_s: float, last_error: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO retry (id, attempts, next_try_s, last_error) "
            "VALUES (1, ?, ?, ?)",
            (attempts, next_try_s, last_error),
        )


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``initial_s * 2**(attempt-1)``, capped, with +/- jitter."""

    initial_s: float = 1.0
    max_s: float = 60.0
    jitter: float = 0.2

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_s, self.initial_s * 2.0 ** max(0, attempt - 1))
        return base * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))


@dataclass(frozen=True, slots=True)
class PumpResult:
    delivered: int
    duplicates: int
    rejected: int
    pending: int
    next_try_s: float | None


class SpoolSender:
    """Drains a :class:`Spool` through a :class:`Transport`, oldest first."""

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        clock: Clock,
        *,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.spool = spool
        self.transport = transport
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random(0)
        self.attempts_total = 0

    def enqueue(self, seq: int, kind: str, payload: bytes) -> None:
        self.spool.put(seq, kind, payload, self.clock.now())

    def pump(self, max_messages: int | None = None) -> PumpResult:
        """Send what is due now; stop at the first unreachable-receiver failure."""
        delivered = duplicates = rejected = sent = 0
        attempts, next_try_s, _ = self.spool.retry_state()
        if attempts and self.clock.now() < next_try_s:
            return PumpResult(0, 0, 0, len(self.spool), next_try_s)
        while max_messages is None or sent < max_messages:
            room = 64 if max_messages is None else min(64, max_messages - sent)
            batch = self.spool.head(room)
            if not batch:
                break
            done: list[int] = []
            try:
                for seq, kind, payload in batch:
                    self.attempts_total += 1
                    sent += 1
                    result: Delivery = self.transport.send(kind, seq, payload)
                    if result.status is DeliveryStatus.UNAVAILABLE:
                        attempts += 1
                        next_try_s = self.clock.now() + self.backoff.delay_s(attempts, self.rng)
                        self.spool.set_retry_state(attempts, next_try_s, result.detail)
                        return PumpResult(
                            delivered,
                            duplicates,
                            rejected,
                            len(self.spool) - len(done),
                            next_try_s,
                        )
                    if attempts:
                        attempts = 0
                        self.spool.set_retry_state(0, 0.0, "")
                    if result.status is DeliveryStatus.REJECTED:
                        self.spool.bury(seq, result.detail, self.clock.now())
                        rejected += 1
                        continue
                    done.append(seq)
                    if result.status is DeliveryStatus.DUPLICATE:
                        duplicates += 1
                    else:
                        delivered += 1
            finally:
                self.spool.remove(done)
        return PumpResult(delivered, duplicates, rejected, len(self.spool), None)
