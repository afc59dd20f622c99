"""Evidence for the review console: per-sensor audio, waveform and spectrogram images, the map's
GeoJSON layers and the rounds timeline. Pure functions plus an in-memory evidence index.

Images are rendered with numpy/scipy and written as PNG by a small encoder here (zlib + CRC,
RFC 2083), so the server needs no plotting library and nothing online.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import signal as sps

from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Incident, Pulse, ShotLocation


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG file bytes."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("expected an (H, W, 3) uint8 array")
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + tag
            + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _colormap(v: np.ndarray) -> np.ndarray:
    """[0, 1] -> a dark-blue..yellow ramp (perceptually ordered, colour-blind safe enough)."""
    v = np.clip(v, 0.0, 1.0)[..., None]
    stops = np.array(
        [
            [13, 8, 135],
            [84, 2, 163],
            [139, 10, 165],
            [185, 50, 137],
            [219, 92, 104],
            [244, 136, 73],
            [254, 188, 43],
            [240, 249, 33],
        ],
        dtype=float,
    )
    x = v[..., 0] * (len(stops) - 1)
    i = np.clip(np.floor(x).astype(int), 0, len(stops) - 2)
    f = (x - i)[..., None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)


def waveform_png(samples: np.ndarray, width: int = 600, height: int = 120) -> bytes:
    """Min/max envelope per pixel column, centred, on a dark background."""
    x = samples.astype(float)
    peak = float(np.max(np.abs(x))) or 1.0
    x = x / peak
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = (22, 27, 34)
    img[height // 2, :] = (60, 70, 80)
    edges = np.linspace(0, len(x), width + 1).astype(int)
    for col in range(width):
        seg = x[edges[col] : max(edges[col + 1], edges[col] + 1)]
        if seg.size == 0:
            continue
        lo = int((1 - float(seg.max())) * (height - 1) / 2)
        hi = int((1 - float(seg.min())) * (height - 1) / 2)
        img[lo : hi + 1, col] = (88, 166, 255)
    return png_bytes(img)


def spectrogram_png(
    samples: np.ndarray, rate_hz: int, width: int = 600, height: int = 160
) -> bytes:
    """Log-power spectrogram (dB, top 60 dB shown), low frequencies at the bottom."""
    x = samples.astype(float)
    nper = 256 if len(x) >= 256 else max(16, len(x))
    _f, _t, sxx = sps.spectrogram(x, fs=rate_hz, nperseg=nper, noverlap=nper * 3 // 4)
    db = 10 * np.log10(sxx + 1e-12)
    top = float(db.max())
    v = (db - (top - 60.0)) / 60.0
    # resample to the image size by nearest neighbour (rows: freq, cols: time)
    rows = np.linspace(0, v.shape[0] - 1, height).astype(int)[::-1]
    cols = np.linspace(0, v.shape[1] - 1, width).astype(int)
    return png_bytes(_colormap(v[np.ix_(rows, cols)]))


def wav_bytes(samples: np.ndarray, rate_hz: int) -> bytes:
    """16-bit mono PCM WAV."""
    pcm = np.clip(samples, -32768, 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    buf.write(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE")
    buf.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate_hz, rate_hz * 2, 2, 16))
    buf.write(b"data" + struct.pack("<I", len(pcm)) + pcm)
    return buf.getvalue()


def ellipse_ring(
    lat_deg: float,
    lon_deg: float,
    axes_m: tuple[float, float],
    azimuth_deg: float,
    n: int = 48,
) -> list[list[float]]:
    """A closed GeoJSON ring ([lon, lat] pairs) of an ellipse given in metres around a point;
    azimuth of the major axis from north, clockwise."""
    semi_major_m, semi_minor_m = axes_m
    frame = LocalFrame(lat_deg, lon_deg)
    az = math.radians(azimuth_deg)
    ring: list[list[float]] = []
    for k in range(n + 1):
        t = 2 * math.pi * k / n
        a, b = semi_major_m * math.cos(t), semi_minor_m * math.sin(t)
        east = a * math.sin(az) + b * math.cos(az)
        north = a * math.cos(az) - b * math.sin(az)
        la, lo, _ = frame.to_geo(east, north, 0.0)
        ring.append([lo, la])
    ring[-1] = ring[0]
    return ring


@dataclass
class AudioClip:
    serial: str
    start_s: float
    rate_hz: int
    samples: np.ndarray


class EvidenceStore(Protocol):
    """Where the evidence index keeps what it has let go of, and finds what an earlier run
    of the server received (a restart): pulses and shots are the pipeline's own stored rows,
    audio snippets are written here."""

    def put_audio(self, pulse_id: str, clip: AudioClip) -> None: ...

    def audio(self, pulse_ids: Sequence[str]) -> dict[str, AudioClip]: ...

    def pulses(self, pulse_ids: Sequence[str]) -> list[Pulse]: ...

    def shots(self, shot_ids: Sequence[str]) -> list[ShotLocation]: ...


@dataclass
class EvidenceIndex:
    """What the console shows beside an incident, gathered as reports and shots arrive.

    In memory it keeps the recent past only: the newest ``max_audio_bytes`` of snippets,
    ``max_pulses`` pulses and ``max_shots`` shots (oldest out first; a night of reports
    would otherwise hold gigabytes of audio). With a ``store`` every snippet is also written
    there and whatever is not in memory (let go of, or received before a restart) is read
    back from it."""

    frame: LocalFrame | None = None
    pulses: dict[str, Pulse] = field(default_factory=dict)
    audio: dict[str, AudioClip] = field(default_factory=dict)  # by pulse id
    shots: dict[str, ShotLocation] = field(default_factory=dict)
    sensor_geo: dict[str, tuple[float, float]] = field(default_factory=dict)
    store: EvidenceStore | None = None
    max_audio_bytes: int = 256 * 2**20
    max_pulses: int = 200_000
    max_shots: int = 100_000
    audio_bytes: int = 0

    def add_pulse(self, pulse: Pulse, clip: AudioClip | None = None) -> None:
        self.pulses[pulse.pulse_id] = pulse
        if len(self.pulses) > self.max_pulses:
            del self.pulses[next(iter(self.pulses))]
        if clip is not None:
            old = self.audio.pop(pulse.pulse_id, None)
            if old is not None:
                self.audio_bytes -= old.samples.nbytes
            self.audio[pulse.pulse_id] = clip
            self.audio_bytes += clip.samples.nbytes
            while self.audio_bytes > self.max_audio_bytes and len(self.audio) > 1:
                self.audio_bytes -= self.audio.pop(next(iter(self.audio))).samples.nbytes
            if self.store is not None:
                self.store.put_audio(pulse.pulse_id, clip)
        if pulse.sensor not in self.sensor_geo and self.frame is not None:
            la, lo, _ = self.frame.to_geo(pulse.x_m, pulse.y_m, pulse.z_m)
            self.sensor_geo[pulse.sensor] = (la, lo)

    def add_shot(self, shot: ShotLocation) -> None:
        self.shots[shot.shot_id] = shot
        if len(self.shots) > self.max_shots:
            del self.shots[next(iter(self.shots))]

    def incident_shots(self, inc: Incident, *, stored: bool = True) -> list[ShotLocation]:
        """The incident's shots known here; with ``stored``, those evicted (or from before a
        restart) are read back from the store. The event loop passes ``stored=False``: a
        forming incident's provisional shots are in no store, and asking the database for
        them cost a blocking round trip per preliminary version."""
        got = {s: shot for s in inc.shot_ids if (shot := self.shots.get(s)) is not None}
        missing = [s for s in inc.shot_ids if s not in got]
        if missing and stored and self.store is not None:
            got.update((s.shot_id, s) for s in self.store.shots(missing))
        return sorted(got.values(), key=lambda s: s.t0_s)

    def incident_pulses(self, inc: Incident) -> list[Pulse]:
        ids: list[str] = []
        for s in self.incident_shots(inc):
            ids.extend(p for p in s.pulse_ids if p not in ids)
        got = {p: pulse for p in ids if (pulse := self.pulses.get(p)) is not None}
        missing = [p for p in ids if p not in got]
        if missing and self.store is not None:
            got.update((p.pulse_id, p) for p in self.store.pulses(missing))
        return [got[p] for p in ids if p in got]

    def _audio_of(self, pulses: Sequence[Pulse]) -> dict[str, AudioClip]:
        got = {p.pulse_id: c for p in pulses if (c := self.audio.get(p.pulse_id)) is not None}
        missing = [p.pulse_id for p in pulses if p.pulse_id not in got]
        if missing and self.store is not None:
            got.update(self.store.audio(missing))
        return got

    def sensors(self, inc: Incident) -> list[dict[str, Any]]:
        """Each sensor that heard the incident, with its first arrival and whether audio exists."""
        seen: dict[str, dict[str, Any]] = {}
        pulses = self.incident_pulses(inc)
        audio = self._audio_of(pulses)
        for p in pulses:
            d = seen.setdefault(
                p.sensor,
                {
                    "serial": p.sensor,
                    "first_arrival_s": p.t_s,
                    "pulses": 0,
                    "audio": False,
                    "snr_db": None,
                },
            )
            d["pulses"] += 1
            d["first_arrival_s"] = min(d["first_arrival_s"], p.t_s)
            d["audio"] = d["audio"] or p.pulse_id in audio
            if math.isfinite(p.snr_db):
                d["snr_db"] = max(d["snr_db"] or -999.0, p.snr_db)
            geo = self.sensor_geo.get(p.sensor)
            if geo is None and self.frame is not None:  # a pulse read back from the store
                geo = self.frame.to_geo(p.x_m, p.y_m, p.z_m)[:2]
            d["lat_deg"], d["lon_deg"] = geo if geo else (None, None)
        return sorted(seen.values(), key=lambda d: d["first_arrival_s"])

    def clip(self, inc: Incident, serial: str) -> AudioClip | None:
        mine = [p for p in self.incident_pulses(inc) if p.sensor == serial]
        audio = self._audio_of(mine)
        return next((audio[p.pulse_id] for p in mine if p.pulse_id in audio), None)

    def timeline(self, inc: Incident) -> list[dict[str, Any]]:
        """Rounds on a timeline: seconds after the incident start, per located shot."""
        return [
            {
                "shot_id": s.shot_id,
                "t_rel_s": s.t0_s - inc.start_s,
                "sensors": s.n_sensors,
                "uncertainty_m": s.uncertainty_m,
            }
            for s in self.incident_shots(inc)
        ]

    def map_geojson(self, inc: Incident) -> dict[str, Any]:
        feats: list[dict[str, Any]] = []
        if inc.lat_deg is not None and inc.lon_deg is not None:
            feats.append(
                {
                    "type": "Feature",
                    "properties": {"layer": "location", "incident_id": inc.incident_id},
                    "geometry": {"type": "Point", "coordinates": [inc.lon_deg, inc.lat_deg]},
                }
            )
            shots = self.incident_shots(inc)
            ell = next((s.ellipse for s in shots if s.ellipse is not None), None)
            unc = inc.extra.get("uncertainty_m")
            if ell is not None:
                ring = ellipse_ring(
                    inc.lat_deg, inc.lon_deg, (ell.semi_major_m, ell.semi_minor_m), ell.azimuth_deg
                )
                props = {
                    "layer": "uncertainty",
                    "semi_major_m": ell.semi_major_m,
                    "semi_minor_m": ell.semi_minor_m,
                    "confidence": ell.confidence,
                }
            else:
                r = (
                    float(unc)
                    if isinstance(unc, int | float)
                    else (max((s.uncertainty_m for s in shots), default=25.0))
                )
                ring = ellipse_ring(inc.lat_deg, inc.lon_deg, (r, r), 0.0)
                props = {
                    "layer": "uncertainty",
                    "semi_major_m": r,
                    "semi_minor_m": r,
                    "confidence": 0.9,
                }
            feats.append(
                {
                    "type": "Feature",
                    "properties": props,
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
        for s in self.sensors(inc):
            if s["lat_deg"] is None:
                continue
            feats.append(
                {
                    "type": "Feature",
                    "properties": {"layer": "sensor", "serial": s["serial"]},
                    "geometry": {"type": "Point", "coordinates": [s["lon_deg"], s["lat_deg"]]},
                }
            )
        return {"type": "FeatureCollection", "features": feats}
