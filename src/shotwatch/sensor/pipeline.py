"""The sensor pipeline: audio blocks -> buffer, picks -> scored, signed reports (ADR 0065).

Per block: the audio is appended to the encrypted buffer, fed to the streaming picker
(:mod:`shotwatch.signal.picker`) and kept in a short ring (``snippet_pre_s + snippet_post_s``
plus a margin). A pick becomes a report once ``snippet_post_s`` of audio after it has arrived:
the snippet is cut from the ring (exactly ``(pre + post) * rate`` samples, zero-padded only when
the stream began less than ``pre`` before the pick), scored, and signed. Nothing else leaves
the pipeline: reports carry one snippet each, heartbeats none.

The pipeline never reads the wall clock: times are the blocks' own (the data's clock in
replay, the disciplined system clock live). A gap in time restarts the picker and the ring.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shotwatch.core.model import iso_utc
from shotwatch.sensor.buffer import AudioBuffer
from shotwatch.sensor.health import NoiseTracker, heartbeat_body
from shotwatch.sensor.messages import MessageType, ReportFields
from shotwatch.sensor.score import Scorer, impulsiveness_score
from shotwatch.sensor.signer import SensorSigner
from shotwatch.sensor.sources import AudioBlock
from shotwatch.signal.picker import Pick, PickerConfig, StreamingPicker

Emit = Callable[[int, str, bytes], None]


class _BlockRing:
    """The last seconds of a stream as a queue of blocks (no copying per block).

    Indices are absolute sample counts since the stream start; ``slice`` copies only what a
    snippet needs.
    """

    def __init__(self) -> None:
        self.blocks: deque[np.ndarray] = deque()
        self.i0 = 0
        self.size = 0

    @property
    def end(self) -> int:
        return self.i0 + self.size

    def append(self, x: np.ndarray) -> None:
        self.blocks.append(x)
        self.size += x.size

    def trim_before(self, first_needed: int) -> None:
        """Drop whole blocks that end at or before ``first_needed``."""
        while self.blocks and self.i0 + self.blocks[0].size <= first_needed:
            b = self.blocks.popleft()
            self.i0 += b.size
            self.size -= b.size

    def copy_into(self, out: np.ndarray, start: int) -> int:
        """Fill ``out`` with samples from absolute index ``start`` on (where held); returns
        how many were filled."""
        filled = 0
        pos = self.i0
        for b in self.blocks:
            lo = max(start, pos)
            hi = min(start + out.size, pos + b.size)
            if hi > lo:
                out[lo - start : hi - start] = b[lo - pos : hi - pos]
                filled += hi - lo
            pos += b.size
            if pos >= start + out.size:
                break
        return filled


@dataclass
class PipelineStats:
    blocks: int = 0
    samples: int = 0
    picks: int = 0
    reports: int = 0
    heartbeats: int = 0
    streams: int = 0
    padded_snippets: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


class SensorPipeline:
    """Pick, score, buffer and report one sensor's audio stream."""

    def __init__(
        self,
        *,
        signer: SensorSigner,
        emit: Emit,
        buffer: AudioBuffer | None,
        picker_config: Callable[[int], PickerConfig],
        position: dict[str, float | None],
        snippet_pre_s: float = 1.0,
        snippet_post_s: float = 1.0,
        heartbeat_interval_s: float = 60.0,
        scorer: Scorer = impulsiveness_score,
        search_log_head: Callable[[], str] = lambda: "",
        disk_bytes: Callable[[], int] | None = None,
        picker_chunk_s: float = 0.25,
        full_scale_db_spl: float | None = None,
    ) -> None:
        self.signer = signer
        self.full_scale_db_spl = full_scale_db_spl  # the microphone's calibration, if known
        self.emit = emit
        self.buffer = buffer
        self.picker_config = picker_config
        self.position = dict(position)
        self.pre_s = snippet_pre_s
        self.post_s = snippet_post_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.scorer = scorer
        self.search_log_head = search_log_head
        self.disk_bytes = disk_bytes
        # Audio reaches the picker in chunks of at least this length: its cost is mostly per
        # call (filter set-up, detection bookkeeping), and its picks do not depend on the
        # chunking. A pick waits up to this long, well inside the snippet's post-roll wait.
        self.picker_chunk_s = picker_chunk_s
        self._pick_inbox: list[np.ndarray] = []
        self._pick_inbox_n = 0
        self.stats = PipelineStats()
        self._sr = 0
        self._picker: StreamingPicker | None = None
        self._ring = _BlockRing()  # indexed in samples since the stream start (no float drift)
        self._stream_t0 = 0.0
        self._next_t = math.nan
        self._pending: list[Pick] = []
        self._noise: NoiseTracker | None = None
        self._started_s: float | None = None
        self._next_heartbeat_s = -math.inf
        self._last_clock = (0.001, True)

    # -------------------------------------------------------------- streaming

    def _start_stream(self, block: AudioBlock) -> None:
        self._finish_stream()
        self._sr = block.sample_rate_hz
        self._picker = StreamingPicker(self.picker_config(self._sr), start_s=block.t0_s)
        self._ring = _BlockRing()
        self._pick_inbox, self._pick_inbox_n = [], 0
        self._stream_t0 = block.t0_s
        if self._noise is None or self._noise.sample_rate_hz != self._sr:
            self._noise = NoiseTracker(self._sr)
        self.stats.streams += 1

    def _finish_stream(self) -> None:
        if self._picker is None:
            return
        self._feed_picker()
        self._pending.extend(self._picker.flush())
        self._emit_ready(final=True)
        self._picker = None

    def process(self, block: AudioBlock) -> None:
        """Take one block: buffer it, pick it, and send what is complete."""
        if block.samples.size == 0:
            return
        if self._started_s is None:
            self._started_s = block.t0_s
        if (
            self._picker is None
            or block.sample_rate_hz != self._sr
            or abs(block.t0_s - self._next_t) > 1.5 / block.sample_rate_hz
        ):
            self._start_stream(block)
        if block.position:
            self.position = dict(block.position)
        self._last_clock = (block.clock_error_s, block.clock_synced)
        self.stats.blocks += 1
        self.stats.samples += block.samples.size
        self._next_t = block.end_s
        if self.buffer is not None:
            self.buffer.append(block.samples, block.t0_s)
            self.buffer.expire(block.end_s)
        assert self._noise is not None and self._picker is not None
        self._noise.update(block.samples)
        self._ring.append(block.samples)
        self._pick_inbox.append(block.samples)
        self._pick_inbox_n += block.samples.size
        if self._pick_inbox_n >= self.picker_chunk_s * self._sr:
            self._feed_picker()
        self._emit_ready(final=False, clock_error_s=block.clock_error_s)
        keep = round((self.pre_s + self.post_s + 0.5 + self.picker_chunk_s) * self._sr)
        first_needed = self._ring.end - keep
        for p in self._pending:
            first_needed = min(first_needed, self._snippet_start(p))
        self._ring.trim_before(first_needed)
        if block.end_s >= self._next_heartbeat_s:
            self.heartbeat(block.end_s)

    def _feed_picker(self) -> None:
        """Hand the gathered audio to the picker and queue the picks it completes."""
        if not self._pick_inbox_n or self._picker is None:
            return
        box = self._pick_inbox
        x = box[0] if len(box) == 1 else np.concatenate(box)
        self._pick_inbox, self._pick_inbox_n = [], 0
        # int16 / 2**15 is exact in float64, the dtype the picker works in: one conversion.
        picks = self._picker.feed(x * (1.0 / 32768.0))
        self.stats.picks += len(picks)
        self._pending.extend(picks)

    def close(self, now_s: float | None = None) -> None:
        """End of input: report the picks still waiting, commit the buffer."""
        self._finish_stream()
        if self.buffer is not None:
            self.buffer.flush()
        if now_s is not None:
            self.heartbeat(now_s)

    def _snippet_start(self, pick: Pick) -> int:
        """Absolute sample index where the snippet of ``pick`` begins."""
        return round((pick.t_s - self.pre_s - self._stream_t0) * self._sr)

    # -------------------------------------------------------------- reports

    def _emit_ready(self, *, final: bool, clock_error_s: float | None = None) -> None:
        ring_end = self._stream_t0 + self._ring.end / max(self._sr, 1)
        waiting: list[Pick] = []
        for pick in self._pending:
            if pick.t_s + self.post_s <= ring_end + 0.5 / self._sr or final:
                self._report(pick, clock_error_s)
            else:
                waiting.append(pick)
        self._pending = waiting

    def _report(self, pick: Pick, clock_error_s: float | None) -> None:
        sr = self._sr
        n = round((self.pre_s + self.post_s) * sr)
        start = self._snippet_start(pick)
        snippet = np.zeros(n, dtype=np.int16)
        if self._ring.copy_into(snippet, start) < n:
            self.stats.padded_snippets += 1
        snippet_t0 = self._stream_t0 + start / sr
        arrival = pick.t_s
        onset_index = round((pick.t_s - snippet_t0) * sr)
        score = self.scorer(snippet, sr, onset_index)
        err = self._last_clock[0] if clock_error_s is None else clock_error_s
        pos = self.position
        fields = ReportFields(
            arrival_utc=iso_utc(arrival),
            clock_error_s=err,
            x_m=pos.get("x_m"),
            y_m=pos.get("y_m"),
            z_m=pos.get("z_m"),
            lat_deg=pos.get("lat_deg"),
            lon_deg=pos.get("lon_deg"),
            elevation_m=pos.get("elevation_m"),
            snr_db=pick.snr_db,
            level_dbfs=pick.level_dbfs,
            score=score,
            snippet_pre_s=self.pre_s,
            snippet_post_s=self.post_s,
            full_scale_db_spl=self.full_scale_db_spl,
        )
        seq, data = self.signer.report(fields, snippet, sr, snippet_t0)
        self.stats.reports += 1
        self.emit(seq, str(MessageType.REPORT), data)

    # -------------------------------------------------------------- health

    def heartbeat(self, now_s: float) -> None:
        buf = self.buffer
        noise = self._noise
        body: dict[str, Any] = heartbeat_body(
            now_s=now_s,
            started_s=self._started_s if self._started_s is not None else now_s,
            clock_error_s=self._last_clock[0],
            clock_synced=self._last_clock[1],
            disk_bytes=(self.disk_bytes() if self.disk_bytes else (buf.disk_bytes if buf else 0)),
            buffer_span_s=buf.span_s if buf else 0.0,
            buffer_oldest_s=buf.oldest_s if buf else None,
            noise_floor_dbfs=noise.noise_floor_dbfs if noise else None,
            clipped_fraction=noise.clipped_fraction_and_reset() if noise else 0.0,
            position=self.position,
            search_log_head=self.search_log_head(),
        )
        seq, data = self.signer.seal(MessageType.HEARTBEAT, body)
        self.stats.heartbeats += 1
        self._next_heartbeat_s = now_s + self.heartbeat_interval_s
        self.emit(seq, str(MessageType.HEARTBEAT), data)
