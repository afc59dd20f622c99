"""Sensor health: heartbeats from the sensor, alerts on the server (ADR 0064).

Sensor side, :class:`NoiseTracker` follows the noise floor (a low percentile of short-block RMS
levels, in dBFS) and the fraction of clipped samples; :func:`heartbeat_body` assembles a
heartbeat with uptime, clock-error bound and sync state, disk use, buffer span, noise floor,
clipping, position and the head hash of the search log.

Server side, :class:`HealthMonitor` is pure: fed heartbeats with their receive time and asked
``check(now_s)``, it raises edge-triggered alerts (raised once when a condition starts,
cleared once when it ends): ``offline``, ``clock_unsynchronized``, ``noise_floor_jump``,
``clipping`` and ``moved`` (position change beyond a threshold from the registered one).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shotwatch.core.model import iso_utc
from shotwatch.core.settings import SensorSettings

EARTH_RADIUS_M = 6_371_008.8


class NoiseTracker:
    """Running noise floor and clipping fraction of the audio stream (sensor side)."""

    def __init__(self, sample_rate_hz: int, *, block_s: float = 0.1, history: int = 600) -> None:
        self.sample_rate_hz = int(sample_rate_hz)
        # Levels are estimated on every k-th sample (k = rate / 12 kHz): a mean square needs no
        # anti-aliasing, and 1,200 samples per block estimate it to well under 0.5 dB.
        self.stride = max(1, self.sample_rate_hz // 12000)
        self.block = max(1, round(block_s * sample_rate_hz / self.stride))
        self._levels: deque[float] = deque(maxlen=history)
        self._carry = np.zeros(0, dtype=np.float32)
        self.samples = 0
        self.clipped = 0

    def update(self, samples_int16: np.ndarray) -> None:
        x = np.asarray(samples_int16)
        self.samples += x.size
        self.clipped += int(np.count_nonzero(x >= 32767)) + int(np.count_nonzero(x <= -32767))
        data = x[:: self.stride].astype(np.float32) * np.float32(1.0 / 32768.0)
        if self._carry.size:
            data = np.concatenate([self._carry, data])
        n = data.size // self.block
        if n:
            blocks = data[: n * self.block].reshape(n, self.block)
            ms = np.einsum("ij,ij->i", blocks, blocks) / self.block
            ms = ms[ms > 0]  # digital silence (a recorder's padding) is not a noise floor
            self._levels.extend((10.0 * np.log10(ms)).tolist())
        self._carry = data[n * self.block :]

    MIN_LEVELS = 10

    @property
    def noise_floor_dbfs(self) -> float | None:
        """10th percentile of recent block levels; None until 1 s of (non-silent) audio."""
        if len(self._levels) < self.MIN_LEVELS:
            return None
        return float(np.percentile(np.fromiter(self._levels, float), 10))

    def clipped_fraction_and_reset(self) -> float:
        frac = self.clipped / self.samples if self.samples else 0.0
        self.samples = self.clipped = 0
        return frac


def heartbeat_body(
    *,
    now_s: float,
    started_s: float,
    clock_error_s: float,
    clock_synced: bool,
    disk_bytes: int,
    buffer_span_s: float,
    buffer_oldest_s: float | None,
    noise_floor_dbfs: float | None,
    clipped_fraction: float,
    position: dict[str, float | None],
    search_log_head: str,
) -> dict[str, Any]:
    return {
        "sent_utc": iso_utc(now_s),
        "uptime_s": max(0.0, now_s - started_s),
        "clock_error_s": float(clock_error_s),
        "clock_synced": bool(clock_synced),
        "disk_bytes": int(disk_bytes),
        "buffer_span_s": float(buffer_span_s),
        "buffer_oldest_utc": None if buffer_oldest_s is None else iso_utc(buffer_oldest_s),
        "noise_floor_dbfs": noise_floor_dbfs,
        "clipped_fraction": float(clipped_fraction),
        "position": position,
        "search_log_head": search_log_head,
    }


class AlertKind(enum.StrEnum):
    OFFLINE = "offline"
    CLOCK_UNSYNCHRONIZED = "clock_unsynchronized"
    NOISE_FLOOR_JUMP = "noise_floor_jump"
    CLIPPING = "clipping"
    MOVED = "moved"


DEGRADED = frozenset(
    {AlertKind.CLOCK_UNSYNCHRONIZED, AlertKind.NOISE_FLOOR_JUMP, AlertKind.CLIPPING}
)


@dataclass(frozen=True, slots=True)
class Alert:
    serial: str
    kind: AlertKind
    raised: bool  # True: condition started; False: it cleared
    t_s: float
    detail: str

    @property
    def degraded(self) -> bool:
        return self.kind in DEGRADED


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    offline_after_s: float = 300.0
    max_clock_error_s: float = 0.005
    noise_jump_db: float = 12.0
    max_clipped_fraction: float = 0.001
    moved_threshold_m: float = 10.0
    baseline_alpha: float = 0.05

    @classmethod
    def from_settings(cls, s: SensorSettings) -> HealthThresholds:
        return cls(
            offline_after_s=s.offline_after_s,
            max_clock_error_s=s.max_clock_error_s,
            noise_jump_db=s.noise_jump_db,
            max_clipped_fraction=s.max_clipped_fraction,
            moved_threshold_m=s.moved_threshold_m,
        )


@dataclass
class _SensorState:
    home: dict[str, float | None] | None
    last_seen_s: float | None = None
    baseline_dbfs: float | None = None
    active: set[AlertKind] = field(default_factory=set)


def distance_m(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Distance between two positions: local x/y/z when both have it, else great circle."""
    if all(p.get(k) is not None for p in (a, b) for k in ("x_m", "y_m")):
        dz = (a.get("z_m") or 0.0) - (b.get("z_m") or 0.0)
        return math.sqrt((a["x_m"] - b["x_m"]) ** 2 + (a["y_m"] - b["y_m"]) ** 2 + dz * dz)
    if all(p.get(k) is not None for p in (a, b) for k in ("lat_deg", "lon_deg")):
        p1, p2 = math.radians(a["lat_deg"]), math.radians(b["lat_deg"])
        dp = p2 - p1
        dl = math.radians(b["lon_deg"] - a["lon_deg"])
        h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
    return None


class HealthMonitor:
    """Pure server-side monitor of every sensor's heartbeats."""

    def __init__(
        self,
        thresholds: HealthThresholds | None = None,
        registered: dict[str, dict[str, float | None]] | None = None,
    ) -> None:
        self.t = thresholds or HealthThresholds()
        self._sensors: dict[str, _SensorState] = {
            serial: _SensorState(home=dict(pos)) for serial, pos in (registered or {}).items()
        }

    def _state(self, serial: str) -> _SensorState:
        if serial not in self._sensors:
            self._sensors[serial] = _SensorState(home=None)
        return self._sensors[serial]

    def _set(
        self, st: _SensorState, serial: str, kind: AlertKind, *, on: bool, t_s: float, detail: str
    ) -> list[Alert]:
        if on and kind not in st.active:
            st.active.add(kind)
            return [Alert(serial, kind, True, t_s, detail)]
        if not on and kind in st.active:
            st.active.discard(kind)
            return [Alert(serial, kind, False, t_s, detail)]
        return []

    def active(self, serial: str) -> frozenset[AlertKind]:
        st = self._sensors.get(serial)
        return frozenset(st.active) if st else frozenset()

    def observe(self, serial: str, body: dict[str, Any], received_s: float) -> list[Alert]:
        """One verified heartbeat; returns the alerts it raises or clears."""
        st = self._state(serial)
        out: list[Alert] = []
        st.last_seen_s = received_s if st.last_seen_s is None else max(st.last_seen_s, received_s)
        out += self._set(
            st, serial, AlertKind.OFFLINE, on=False, t_s=received_s, detail="heartbeat received"
        )

        err = float(body.get("clock_error_s", math.inf))
        unsynced = (not body.get("clock_synced", False)) or err > self.t.max_clock_error_s
        out += self._set(
            st,
            serial,
            AlertKind.CLOCK_UNSYNCHRONIZED,
            on=unsynced,
            t_s=received_s,
            detail=f"clock_synced={body.get('clock_synced')}, error bound {err:g} s "
            f"(limit {self.t.max_clock_error_s:g} s)",
        )

        clipped = float(body.get("clipped_fraction", 0.0))
        out += self._set(
            st,
            serial,
            AlertKind.CLIPPING,
            on=clipped > self.t.max_clipped_fraction,
            t_s=received_s,
            detail=f"{clipped:.4%} of samples clipped (limit {self.t.max_clipped_fraction:.4%})",
        )

        floor = body.get("noise_floor_dbfs")
        if isinstance(floor, int | float) and math.isfinite(floor):
            if st.baseline_dbfs is None:
                st.baseline_dbfs = float(floor)
            jump = float(floor) - st.baseline_dbfs
            jumped = jump > self.t.noise_jump_db
            out += self._set(
                st,
                serial,
                AlertKind.NOISE_FLOOR_JUMP,
                on=jumped,
                t_s=received_s,
                detail=f"noise floor {floor:.1f} dBFS, {jump:+.1f} dB over baseline "
                f"{st.baseline_dbfs:.1f} dBFS",
            )
            if not jumped:  # the baseline learns only from normal heartbeats
                st.baseline_dbfs += self.t.baseline_alpha * (float(floor) - st.baseline_dbfs)

        pos = body.get("position")
        if isinstance(pos, dict):
            if st.home is None:
                st.home = dict(pos)
            d = distance_m(st.home, pos)
            if d is not None:
                out += self._set(
                    st,
                    serial,
                    AlertKind.MOVED,
                    on=d > self.t.moved_threshold_m,
                    t_s=received_s,
                    detail=f"{d:.1f} m from the registered position "
                    f"(limit {self.t.moved_threshold_m:g} m)",
                )
        return out

    def observe_message(self, msg: Any) -> list[Alert]:
        """A verified heartbeat from :class:`shotwatch.sensor.ingest.Ingest` (others ignored)."""
        if str(getattr(msg, "kind", "")) != "heartbeat":
            return []
        return self.observe(msg.serial, msg.body, msg.received_s)

    def check(self, now_s: float) -> list[Alert]:
        """Offline alerts for sensors silent longer than ``offline_after_s``."""
        out: list[Alert] = []
        for serial, st in self._sensors.items():
            last = st.last_seen_s
            silent = last is None or now_s - last > self.t.offline_after_s
            detail = "never heard" if last is None else f"silent for {now_s - last:.0f} s"
            out += self._set(st, serial, AlertKind.OFFLINE, on=silent, t_s=now_s, detail=detail)
        return out
