"""Where a sensor's audio comes from: a live input, recorded files, or the simulator.

Every source yields :class:`AudioBlock` s: int16 mono samples with the UTC time of their first
sample, the clock-error bound and whether the clock is synchronized. Recorded files carry
their real time (the ``smj0`` chunk, or the published JSON sidecar) and are replayed either in
real time or as fast as possible: the timestamps are the data's either way, so the pipeline
gives the same reports (the clock is the data's clock; ADR 0001).

The live input uses PortAudio through ``sounddevice`` (optional extra ``audio-input``), imported
only when a live source is opened.
"""

from __future__ import annotations

import importlib
import math
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from shotwatch.core.clock import Clock
from shotwatch.core.errors import InputError
from shotwatch.io.audio import AUDIO_SUFFIXES, audio_info, iter_audio_blocks
from shotwatch.io.audio_pulses import _recording
from shotwatch.sensor.buffer import to_int16


@dataclass(frozen=True, slots=True)
class AudioBlock:
    samples: np.ndarray  # int16, mono
    t0_s: float
    sample_rate_hz: int
    clock_error_s: float
    clock_synced: bool = True
    position: dict[str, float | None] = field(default_factory=dict)
    origin: str = ""

    @property
    def end_s(self) -> float:
        return self.t0_s + self.samples.size / self.sample_rate_hz


class AudioSource(Protocol):
    def blocks(self) -> Iterator[AudioBlock]: ...


# ---------------------------------------------------------------- recorded files


def _recording_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(str(path), "source.path", "no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise InputError(str(path), "source.path", "no WAV/FLAC files in the folder")
    return files


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    path: Path
    serial: str
    start_s: float
    clock_error_s: float | None
    position: dict[str, float | None]


def recording_info(path: Path) -> RecordingInfo:
    """Time, serial, position and clock bound of one recording (smj0 chunk or JSON sidecar)."""
    rec = _recording(path)
    pos: dict[str, float | None] = {}
    clock_error: float | None = None
    if rec.smj0 is not None:
        pos = {
            "lat_deg": rec.smj0.latitude_deg,
            "lon_deg": rec.smj0.longitude_deg,
            "elevation_m": rec.smj0.elevation_m,
        }
        clock_error = rec.smj0.clock_error_s
    elif rec.xyz_m is not None:
        pos = {"x_m": rec.xyz_m[0], "y_m": rec.xyz_m[1], "z_m": rec.xyz_m[2]}
    return RecordingInfo(path, rec.serial, rec.start_s, clock_error, pos)


class FileSource:
    """Replays a WAV/FLAC file or a folder of them (in time order) with their real timestamps.

    ``realtime`` paces the blocks with ``sleep`` so that the replay takes as long as the
    recording; otherwise blocks come as fast as they are consumed. ``serial`` restricts a
    folder to one sensor's recordings. Files that cannot be read are reported through
    ``on_error`` and skipped; the rest is still replayed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        serial: str | None = None,
        block_s: float = 0.1,
        realtime: bool = False,
        default_clock_error_s: float = 0.001,
        sleep: Callable[[float], None] = time.sleep,
        on_error: Callable[[InputError], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.serial = serial
        self.block_s = block_s
        self.realtime = realtime
        self.default_clock_error_s = default_clock_error_s
        self.sleep = sleep
        self.on_error = on_error
        self.errors: list[InputError] = []
        infos: list[RecordingInfo] = []
        for f in _recording_files(self.path):
            try:
                info = recording_info(f)
            except InputError as exc:
                self._error(exc)
                continue
            if serial is None or info.serial == serial:
                infos.append(info)
        if not infos:
            raise InputError(
                str(self.path), "source.path", f"no readable recordings for serial {serial!r}"
            )
        self.recordings = sorted(infos, key=lambda r: (r.start_s, str(r.path)))

    def _error(self, exc: InputError) -> None:
        self.errors.append(exc)
        if self.on_error is not None:
            self.on_error(exc)

    @property
    def sample_rate_hz(self) -> int:
        return int(audio_info(self.recordings[0].path).samplerate)

    def blocks(self) -> Iterator[AudioBlock]:
        wall0: float | None = None
        data0 = self.recordings[0].start_s
        for rec in self.recordings:
            try:
                sr = int(audio_info(rec.path).samplerate)
            except InputError as exc:
                self._error(exc)
                continue
            n_block = max(1, round(self.block_s * sr))
            clock_error = (
                rec.clock_error_s if rec.clock_error_s is not None else self.default_clock_error_s
            )
            offset = 0
            try:
                for chunk in iter_audio_blocks(rec.path, block_size=n_block):
                    block = AudioBlock(
                        to_int16(chunk),
                        rec.start_s + offset / sr,
                        sr,
                        clock_error,
                        True,
                        rec.position,
                        str(rec.path),
                    )
                    offset += chunk.size
                    if self.realtime:
                        now = time.monotonic()
                        if wall0 is None:
                            wall0 = now
                        ahead = (block.t0_s - data0) - (now - wall0)
                        if ahead > 0:
                            self.sleep(ahead)
                    yield block
            except InputError as exc:
                self._error(exc)


# ---------------------------------------------------------------- simulator


class SimSource:
    """One sensor's recording from the scenario simulator (:mod:`shotwatch.sim`)."""

    def __init__(
        self,
        scenario: str | Path,
        *,
        serial: str | None,
        seed: int = 0,
        block_s: float = 0.1,
        duration_s: float = 10.0,
    ) -> None:
        try:
            from shotwatch.sim import build_scene, example_scenarios, load_scenario, simulate_audio
        except ImportError as exc:  # pragma: no cover - depends on the installed tree
            raise InputError(
                "source", "kind", "the simulator (shotwatch.sim) is not available"
            ) from exc
        path = Path(scenario)
        if not path.exists():
            named = example_scenarios()
            if str(scenario) not in named:
                raise InputError(
                    str(scenario),
                    "source.scenario",
                    f"no such file or example (examples: {', '.join(sorted(named))})",
                )
            path = named[str(scenario)]
        scene = build_scene(load_scenario(path), seed)
        serials = [s.serial for s in scene.sensors]
        if serial is not None and serial not in serials:
            raise InputError(str(path), "serial", f"{serial!r} is not a sensor of the scenario")
        # Default: the first sensor that hears a gunshot (the simulator's own choice).
        recordings = simulate_audio(
            scene, serials=None if serial is None else [serial], snippet_s=duration_s
        )
        self.audio = recordings[0]
        self.serial = self.audio.serial
        i = serials.index(self.serial)
        self.clock_error_s = float(scene.clock_bound_s[i])
        x, y, z = (float(v) for v in scene.sensor_xyz[i])
        self.position: dict[str, float | None] = {"x_m": x, "y_m": y, "z_m": z}
        self.block_s = block_s

    @property
    def sample_rate_hz(self) -> int:
        return int(self.audio.sample_rate_hz)

    def blocks(self) -> Iterator[AudioBlock]:
        pcm = self.audio.pcm16()
        sr = self.sample_rate_hz
        n = max(1, round(self.block_s * sr))
        for i in range(0, pcm.size, n):
            yield AudioBlock(
                pcm[i : i + n],
                self.audio.start_s + i / sr,
                sr,
                self.clock_error_s,
                True,
                self.position,
                "sim",
            )


# ---------------------------------------------------------------- live input


class LiveSource:
    """A PortAudio input device (``pip install shotwatch[audio-input]``).

    Block times come from the injected clock at the callback, corrected by the driver's
    input latency; ``clock_error_s`` is the configured bound of the host's disciplined clock
    (e.g. what ``chronyc tracking`` reports). ``max_s`` stops after that long (None: forever).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        sample_rate_hz: int,
        device: str | int | None = None,
        block_s: float = 0.1,
        clock_error_s: float = 0.001,
        clock_synced: bool = True,
        position: dict[str, float | None] | None = None,
        max_s: float | None = None,
    ) -> None:
        self.clock = clock
        self.sample_rate_hz = int(sample_rate_hz)
        self.device = device
        self.block_s = block_s
        self.clock_error_s = clock_error_s
        self.clock_synced = clock_synced
        self.position = position or {}
        self.max_s = max_s
        self.overflows = 0

    def _sounddevice(self) -> Any:
        try:
            sounddevice = importlib.import_module("sounddevice")
        except (ImportError, OSError) as exc:
            raise InputError(
                "source",
                "kind",
                "live input needs PortAudio and sounddevice: pip install 'shotwatch[audio-input]'"
                f" ({exc})",
            ) from exc
        return sounddevice

    def blocks(self) -> Iterator[AudioBlock]:
        sd = self._sounddevice()
        q: queue.Queue[tuple[np.ndarray, float]] = queue.Queue(maxsize=600)
        n = max(1, round(self.block_s * self.sample_rate_hz))
        clock = self.clock

        def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            now = clock.now()
            latency = max(0.0, float(time_info.currentTime - time_info.inputBufferAdcTime))
            t0 = now - latency if math.isfinite(latency) else now - frames / self.sample_rate_hz
            try:
                q.put_nowait((np.array(indata[:, 0], dtype=np.int16), t0))
            except queue.Full:  # the pipeline fell a minute behind: count, never block audio
                self.overflows += 1

        started = clock.now()
        anchor_t: float | None = None
        total = 0
        with sd.InputStream(
            samplerate=self.sample_rate_hz,
            blocksize=n,
            device=self.device,
            channels=1,
            dtype="int16",
            callback=callback,
        ):
            while self.max_s is None or clock.now() - started < self.max_s:
                try:
                    samples, t0 = q.get(timeout=1.0)
                except queue.Empty:
                    continue
                # Time by sample count from an anchor: callback times jitter, the ADC does
                # not. Re-anchor only when they disagree by more than 5 ms (an overflow).
                predicted = None if anchor_t is None else anchor_t + total / self.sample_rate_hz
                if predicted is None or abs(t0 - predicted) > 0.005:
                    anchor_t, total = t0, 0
                    predicted = t0
                total += samples.size
                yield AudioBlock(
                    samples,
                    predicted,
                    self.sample_rate_hz,
                    self.clock_error_s,
                    self.clock_synced,
                    self.position,
                    f"device {self.device}",
                )
