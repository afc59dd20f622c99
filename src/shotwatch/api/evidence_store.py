"""The evidence index's store on the pipeline database (ADR 0114).

Snippets are written away from the event loop that receives the reports: by default in a
writer *process* (``url`` given; it has its own database connection, so the ~50 KB rows cost
the server's interpreter nothing but handing the bytes over a pipe), else by a writer thread
(:class:`~shotwatch.storage.writer.GroupWriter`). Pulses and shots are the rows the pipeline's
own store writes. Reads (a console opening an incident whose evidence is no longer, or not yet
after a restart, in memory) go to the database directly.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
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

#: most snippets one transaction of the writer process carries
_BATCH = 500


def _writer_process(url: str, inbox: Any, outbox: Any) -> None:
    """The writer process: snippets in batches (whatever is waiting, up to ``_BATCH``), one
    transaction each, a failed batch retried then written one by one; answers flush and
    stop requests once everything before them is written."""
    from shotwatch.storage.db import make_engine, session_factory

    sessions = session_factory(make_engine(url))
    stored, errors = 0, []

    def commit(items: list[PulseAudio]) -> int:
        with sessions.begin() as s:
            return save_pulse_audio(items, session=s)

    while True:
        batch = [inbox.get()]
        while len(batch) < _BATCH and isinstance(batch[-1], tuple) and len(batch[-1]) == 5:
            try:
                batch.append(inbox.get_nowait())
            except queue.Empty:
                break
        items = [
            PulseAudio(pid, sensor, start, rate, np.frombuffer(data, dtype="<i2"))
            for pid, sensor, start, rate, data in (b for b in batch if len(b) == 5)
        ]
        if items:
            for attempt in range(3):
                try:
                    stored += commit(items)
                    break
                except Exception:
                    time.sleep(0.05 * 2**attempt)
            else:
                for it in items:
                    try:
                        stored += commit([it])
                    except Exception as exc:
                        errors.append(f"audio of {it.pulse_id}: {exc!r}")
        last = batch[-1]
        if len(last) == 2:  # ("flush" | "stop", n)
            outbox.put((last[1], stored, errors[-1000:]))
            if last[0] == "stop":
                return


class SqlEvidenceStore:
    def __init__(
        self, sessions: sessionmaker[Session], *, url: str | None = None, linger_s: float = 0.05
    ) -> None:
        self._sessions = sessions
        self.errors: list[str] = []
        self.stored = 0
        self._asks = 0
        self._writer: GroupWriter[PulseAudio] | None = None
        self._proc: Any = None
        if url is not None:
            ctx = mp.get_context("spawn")
            self._inbox: Any = ctx.Queue()
            self._outbox: Any = ctx.Queue()
            self._proc = ctx.Process(
                target=_writer_process,
                args=(url, self._inbox, self._outbox),
                name="evidence-audio-writer",
                daemon=True,
            )
            self._proc.start()
        else:
            self._writer = GroupWriter(
                self._commit,
                self._failed,
                name="evidence-audio-writer",
                max_batch=_BATCH,
                linger_s=linger_s,
            )

    def put_audio(self, pulse_id: str, clip: AudioClip) -> None:
        if self._writer is None:
            data = np.ascontiguousarray(clip.samples, dtype="<i2").tobytes()
            self._inbox.put((pulse_id, clip.serial, float(clip.start_s), int(clip.rate_hz), data))
            return
        assert self._writer is not None
        self._writer.put(
            PulseAudio(pulse_id, clip.serial, clip.start_s, clip.rate_hz, clip.samples)
        )

    def audio(self, pulse_ids: Sequence[str]) -> dict[str, AudioClip]:
        with self._sessions() as s:
            got = load_pulse_audio(pulse_ids, session=s)
        return {k: AudioClip(a.sensor, a.start_s, a.rate_hz, a.samples) for k, a in got.items()}

    def pulses(self, pulse_ids: Sequence[str]) -> list[Pulse]:
        with self._sessions() as s:
            return load_pulses_by_id(pulse_ids, session=s)

    def shots(self, shot_ids: Sequence[str]) -> list[ShotLocation]:
        with self._sessions() as s:
            return load_shots_by_id(shot_ids, session=s)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every snippet put so far is written (or failed); updates ``stored``
        and ``errors``."""
        if self._writer is not None:
            return self._writer.flush(timeout_s)
        return self._proc is None or self._ask("flush", timeout_s)  # None: closed

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            return
        if self._proc is not None:
            if self._proc.is_alive():
                self._ask("stop", 60.0)
                self._proc.join(10)
            for q in (self._inbox, self._outbox):
                q.close()
                q.join_thread()
            # drop the queues (and the process holding them) now: their semaphores are freed
            # when they are, and the server's frozen heap would keep them to the exit
            self._proc = self._inbox = self._outbox = None

    def _ask(self, what: str, timeout_s: float | None) -> bool:
        self._asks += 1
        n = self._asks
        self._inbox.put((what, n))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                k, stored, errors = self._outbox.get(timeout=left)
            except queue.Empty:
                return False
            self.stored, self.errors = stored, list(errors)
            if k == n:
                return True

    # the writer thread
    def _commit(self, items: list[PulseAudio]) -> None:
        with self._sessions.begin() as s:
            self.stored += save_pulse_audio(items, session=s)

    def _failed(self, item: PulseAudio, exc: Exception) -> None:
        self.errors.append(f"audio of {item.pulse_id}: {exc!r}")
        del self.errors[:-1000]
