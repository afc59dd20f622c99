"""The one shared data model: Sensor, Pulse, ShotLocation, Incident, each with provenance.

Modelled on QuakeML's Pick / Origin / Event: every object says whether a machine or a person
made it, with which algorithm and version, by whom and when. Objects are immutable; a
reviewer's change is a new object whose ``provenance.supersedes`` names the one it replaces, so
the machine's result is never overwritten.

Times are POSIX seconds (UTC) as ``float``: float64 resolves 0.2 microseconds at present-day
epochs, far below any sensor's clock-error bound. Positions are metres in the deployment's
local metric frame (see :mod:`shotwatch.core.geo`); ``lat_deg``/``lon_deg`` are filled where the
frame is geo-referenced.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from shotwatch.core.errors import InputError


class EvaluationMode(enum.StrEnum):
    """Who produced an object: the automatic pipeline or a person."""

    AUTOMATIC = "automatic"
    MANUAL = "manual"


class EvaluationStatus(enum.StrEnum):
    """Review state of an object (QuakeML's evaluationStatus, narrowed to our flow)."""

    PRELIMINARY = "preliminary"
    CONFIRMED = "confirmed"
    REVIEWED = "reviewed"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Creation info attached to every model object."""

    mode: EvaluationMode
    algorithm: str
    version: str
    created_s: float
    author: str = "shotwatch"
    supersedes: str | None = None

    @staticmethod
    def automatic(algorithm: str, version: str, created_s: float) -> Provenance:
        return Provenance(EvaluationMode.AUTOMATIC, algorithm, version, created_s)

    @staticmethod
    def manual(author: str, created_s: float, supersedes: str | None = None) -> Provenance:
        return Provenance(EvaluationMode.MANUAL, "review", "manual", created_s, author, supersedes)

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode.value,
            "algorithm": self.algorithm,
            "version": self.version,
            "created_utc": iso_utc(self.created_s),
            "author": self.author,
            "supersedes": self.supersedes,
        }


@dataclass(frozen=True, slots=True)
class Sensor:
    """An acoustic sensor at a surveyed position in the local frame."""

    serial: str
    x_m: float
    y_m: float
    z_m: float = 0.0
    lat_deg: float | None = None
    lon_deg: float | None = None
    elevation_m: float | None = None

    def __post_init__(self) -> None:
        if not self.serial:
            raise InputError("sensor", "serial", "must be a non-empty string")
        for name in ("x_m", "y_m", "z_m"):
            _require_finite(f"sensor {self.serial}", name, getattr(self, name))

    @property
    def xyz(self) -> tuple[float, float, float]:
        return (self.x_m, self.y_m, self.z_m)


@dataclass(frozen=True, slots=True)
class Pulse:
    """One impulse reported by one sensor (a seismic 'pick').

    ``x_m``/``y_m``/``z_m`` are the sensor's position when it heard the pulse (sensors move
    or are re-surveyed; the pulse keeps what was true at the time).
    """

    pulse_id: str
    sensor: str
    t_s: float
    x_m: float
    y_m: float
    z_m: float
    snr_db: float = math.nan
    level_db_spl: float = math.nan
    clock_error_s: float = 0.0
    score: float = math.nan
    provenance: Provenance | None = None

    def __post_init__(self) -> None:
        where = f"pulse {self.pulse_id}"
        if not self.sensor:
            raise InputError(where, "sensor", "must be a non-empty serial")
        for name in ("t_s", "x_m", "y_m", "z_m"):
            _require_finite(where, name, getattr(self, name))
        if not (math.isfinite(self.clock_error_s) and 0.0 <= self.clock_error_s < 1.0):
            raise InputError(
                where, "clock_error_s", f"must be in [0, 1) s, got {self.clock_error_s}"
            )


@dataclass(frozen=True, slots=True)
class Ellipse:
    """Horizontal confidence ellipse (semi-axes in metres, azimuth of the major axis from
    north, clockwise, degrees) at ``confidence`` (e.g. 0.9)."""

    semi_major_m: float
    semi_minor_m: float
    azimuth_deg: float
    confidence: float


@dataclass(frozen=True, slots=True)
class ShotLocation:
    """A located shot (a seismic 'origin').

    ``residuals_s`` maps pulse id -> observed minus predicted arrival time for every pulse of
    the associated set; pulses down-weighted as outliers (non-line-of-sight) are listed in
    ``outliers``. ``uncertainty_m`` is the radius of the horizontal circle holding the
    estimate at 90 % confidence. ``ambiguous`` is set when the geometry admits a second
    solution (three sensors), with the rejected one in ``alternative_xy_m``.
    """

    shot_id: str
    t0_s: float
    x_m: float
    y_m: float
    z_m: float
    pulse_ids: tuple[str, ...]
    sensors: tuple[str, ...]
    residuals_s: dict[str, float]
    residual_rms_s: float
    uncertainty_m: float
    ellipse: Ellipse | None
    covariance: tuple[tuple[float, ...], ...] | None
    dims: int
    quality: float
    outliers: tuple[str, ...] = ()
    ambiguous: bool = False
    alternative_xy_m: tuple[float, float] | None = None
    speed_of_sound_mps: float = 343.0
    lat_deg: float | None = None
    lon_deg: float | None = None
    status: EvaluationStatus = EvaluationStatus.PRELIMINARY
    provenance: Provenance | None = None

    @property
    def n_sensors(self) -> int:
        return len(set(self.sensors))

    def with_geo(self, lat_deg: float, lon_deg: float) -> ShotLocation:
        return replace(self, lat_deg=lat_deg, lon_deg=lon_deg)


@dataclass(frozen=True, slots=True)
class Movement:
    """A moving shooter's track over an incident."""

    speed_mps: float
    heading_deg: float
    distance_m: float


@dataclass(frozen=True, slots=True)
class Incident:
    """Shots close in time and space, grouped (a seismic 'event')."""

    incident_id: str
    shot_ids: tuple[str, ...]
    start_s: float
    end_s: float
    x_m: float
    y_m: float
    rounds: int
    shooters: int
    shooter_positions: tuple[tuple[float, float], ...]
    automatic: bool
    cadence_rps: float | None
    movement: Movement | None
    lat_deg: float | None = None
    lon_deg: float | None = None
    gunfire_probability: float | None = None
    label: str | None = None
    status: EvaluationStatus = EvaluationStatus.PRELIMINARY
    provenance: Provenance | None = None
    extra: dict[str, object] = field(default_factory=dict)


def iso_utc(t_s: float) -> str:
    """POSIX seconds -> ISO 8601 UTC with microseconds and a Z suffix."""
    return (
        datetime.fromtimestamp(t_s, tz=UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def parse_utc(text: str, *, where: str = "time", field_name: str = "time") -> float:
    """ISO 8601 (``Z`` or offset; naive is taken as UTC) -> POSIX seconds."""
    if not isinstance(text, str) or not text:
        raise InputError(where, field_name, f"expected an ISO 8601 UTC string, got {text!r}")
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(where, field_name, f"not an ISO 8601 time: {text!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _require_finite(where: str, name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(where, name, f"must be a finite number, got {value!r}")
