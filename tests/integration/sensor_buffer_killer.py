"""Fault harness for the audio buffer (run by test_sensor_faults.py, not collected by pytest).

For each trial a forked child appends deterministic audio to the buffer and is killed with a
real SIGKILL: either by itself at a chosen durable step of the commit protocol, or by this
parent after a random delay. The parent then reopens (recovers) the buffer and checks that
every segment decrypts, holds exactly the samples written at its time, that no temp file is
left, and that the span is never above the retention. Prints one JSON line per trial.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np

from shotwatch.sensor.buffer import AudioBuffer
from shotwatch.sensor.keys import KeyEncryptionKey

SR = 1000
RETENTION_S = 5.0
SEGMENT_S = 0.5
BLOCK = 100
T_ORIGIN = 1_700_000_000.0
STEPS = (
    "write_tmp",
    "write_body",
    "fsync_tmp",
    "evict",
    "shred_fsync",
    "unlink",
    "rename",
    "fsync_dir",
    "committed",
)


def expected(idx: np.ndarray) -> np.ndarray:
    return ((idx * 7919) % 60001 - 30000).astype(np.int16)


def open_buf(root: Path, kek: KeyEncryptionKey, **kw: object) -> AudioBuffer:
    return AudioBuffer.open(
        root, kek, sample_rate_hz=SR, retention_s=RETENTION_S, segment_s=SEGMENT_S, **kw
    )


def child(
    root: Path, kek: KeyEncryptionKey, start_idx: int, kill_step: str | None, kill_nth: int
) -> None:
    seen = {"n": 0}

    def hook(step: str) -> None:
        if step == kill_step:
            seen["n"] += 1
            if seen["n"] >= kill_nth:
                os.kill(os.getpid(), signal.SIGKILL)

    buf = open_buf(root, kek, on_step=hook)
    idx = start_idx
    while True:  # until killed
        samples = expected(np.arange(idx, idx + BLOCK))
        buf.append(samples, T_ORIGIN + idx / SR)
        idx += BLOCK


def check(root: Path, kek: KeyEncryptionKey) -> dict[str, object]:
    buf = open_buf(root, kek)
    try:
        leftovers = [p.name for p in root.iterdir() if p.name.endswith(".tmp")]
        ok_content = True
        for seg in buf.segments:
            pcm = buf.decrypt_segment(seg)
            i0 = round((seg.start_s - T_ORIGIN) * SR)
            if not np.array_equal(pcm, expected(np.arange(i0, i0 + len(pcm)))):
                ok_content = False
        newest = buf.newest_s
        return {
            "segments": len(buf.segments),
            "span_s": buf.span_s,
            "ok_content": ok_content,
            "leftover_tmp": leftovers,
            "next_idx": 0 if newest is None else round((newest - T_ORIGIN) * SR),
        }
    finally:
        buf.close()


def main() -> int:
    root = Path(sys.argv[1])
    trials = int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]))
    kek = KeyEncryptionKey(bytes(range(32)))
    next_idx = 0
    for trial in range(trials):
        if trial % 2 == 0:
            mode, kill_step, kill_nth = "step", rng.choice(STEPS), rng.randint(1, 12)
        else:
            mode, kill_step, kill_nth = "timer", None, 0
        pid = os.fork()
        if pid == 0:  # child: never returns
            try:
                child(root, kek, next_idx, kill_step, kill_nth)
            finally:
                os._exit(3)
        if mode == "timer":
            time.sleep(rng.uniform(0.0, 0.04))
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        try:
            result = check(root, kek)
            result["readable"] = True
        except Exception as exc:
            result = {"readable": False, "error": repr(exc)}
        result.update(trial=trial, mode=mode, step=kill_step, killed=killed)
        print(json.dumps(result), flush=True)
        next_idx = int(result.get("next_idx", next_idx)) or next_idx  # type: ignore[call-overload]
        # A new writer continues after the last committed sample (as a restarted sensor does).
    return 0


if __name__ == "__main__":
    sys.exit(main())
