"""The evidence index's store (ADR 0114): snippet files under the deployment's evidence
directory, indexed in the pipeline database.

Snippets are written by a writer thread (:class:`~shotwatch.storage.writer.GroupWriter`): the
event loop that receives reports only queues them, and a ~50 KB file write costs the thread a
few system calls with the interpreter lock released. The thread lingers a second for more
snippets before each transaction (the index rows): nobody waits for them (the index keeps
the recent past in memory), and at a transaction per few snippets its statements and commits
cost the server ~10 % more CPU in the busiest NYE hour (stored in the database instead, the
busiest NYE hour at 10x missed its latency targets on two cores: ADR 0114). Pulses and shots
are the rows the pipeline's own store writes. Reads (a console opening an incident whose
evidence is no longer, or not yet after a restart, in memory) go to the store directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from shotwatch.api.media import AudioClip
from shotwatch.core.model import Pulse, ShotLocation
from shotwatch.storage.service import (
    PulseAudio,
    load_pulse_audio,
    load_pulses_by_id,
    load_shots_by_id,
    save_pulse_audio,
)
from shotwatch.storage.writer import GroupWriter


class SqlEvidenceStore:
    def __init__(
        self, sessions: sessionmaker[Session], root: Path, *, linger_s: float = 1.0
    ) -> None:
        self._sessions = sessions
        self.root = root
        self.errors: list[str] = []
        self.stored = 0
        self._writer: GroupWriter[PulseAudio] = GroupWriter(
            self._commit,
            self._failed,
            name="evidence-audio-writer",
            max_batch=500,
            linger_s=linger_s,
        )

    def put_audio(self, pulse_id: str, clip: AudioClip) -> None:
        a = PulseAudio(pulse_id, clip.serial, clip.start_s, clip.rate_hz, clip.samples)
        self._writer.put(a)

    def audio(self, pulse_ids: Sequence[str]) -> dict[str, AudioClip]:
        with self._sessions() as s:
            got = load_pulse_audio(pulse_ids, session=s, root=self.root)
        return {k: AudioClip(a.sensor, a.start_s, a.rate_hz, a.samples) for k, a in got.items()}

    def pulses(self, pulse_ids: Sequence[str]) -> list[Pulse]:
        with self._sessions() as s:
            return load_pulses_by_id(pulse_ids, session=s)

    def shots(self, shot_ids: Sequence[str]) -> list[ShotLocation]:
        with self._sessions() as s:
            return load_shots_by_id(shot_ids, session=s)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every snippet put so far is written (or failed)."""
        return self._writer.flush(timeout_s)

    def close(self) -> None:
        self._writer.close()

    # the writer thread
    def _commit(self, items: list[PulseAudio]) -> None:
        with self._sessions.begin() as s:
            self.stored += save_pulse_audio(items, session=s, root=self.root)

    def _failed(self, item: PulseAudio, exc: Exception) -> None:
        self.errors.append(f"audio of {item.pulse_id}: {exc!r}")
        del self.errors[:-1000]
