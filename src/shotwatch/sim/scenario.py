"""Scenario files: what the simulator is asked to produce, validated with pydantic.

A scenario is a TOML file (or the same structure as a dict). Every field has a unit in its
name; validation errors are raised as :class:`InputError` naming the file and the dotted field
path, e.g. ``city.toml: sources.0.rounds: Input should be greater than or equal to 1``.

Positions are local East-North-Up metres (``position_m = [x, y, z]``) or WGS84
(``lat_deg``/``lon_deg``/``height_m``) when the scenario has a ``[frame]``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shotwatch.core.errors import InputError

Vec3 = tuple[float, float, float]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Frame(_Model):
    """Geo-reference of the local frame (needed only for lat/lon positions)."""

    lat0_deg: float = Field(ge=-90, le=90)
    lon0_deg: float = Field(ge=-180, le=180)
    h0_m: float = 0.0


class Position(_Model):
    """A point given either in local metres or in WGS84."""

    position_m: Vec3 | None = None
    lat_deg: float | None = Field(None, ge=-90, le=90)
    lon_deg: float | None = Field(None, ge=-180, le=180)
    height_m: float = 0.0

    @model_validator(mode="after")
    def _one_kind(self) -> Position:
        geo = self.lat_deg is not None or self.lon_deg is not None
        if geo and (self.lat_deg is None or self.lon_deg is None):
            raise ValueError("give both lat_deg and lon_deg")
        if geo == (self.position_m is not None):
            raise ValueError("give exactly one of position_m or lat_deg/lon_deg")
        return self


class SensorSpec(Position):
    serial: str | None = Field(None, min_length=1)
    clock_error_bound_s: float | None = Field(None, ge=0, lt=1)


class GridLayout(_Model):
    """Sensors on a square grid over a rectangle, each moved by a random jitter."""

    layout: Literal["grid"]
    area_m: tuple[float, float] = Field(description="East and north extent of the area.")
    origin_m: tuple[float, float] = (0.0, 0.0)
    density_per_km2: float = Field(gt=0, le=10_000)
    jitter_m: float = Field(0.0, ge=0)
    height_m: float = Field(6.0, ge=0)
    clock_error_bound_s: float = Field(0.0005, ge=0, lt=1)
    serial_prefix: str = "SIM"

    @model_validator(mode="after")
    def _positive_area(self) -> GridLayout:
        if self.area_m[0] <= 0 or self.area_m[1] <= 0:
            raise ValueError("area_m must be positive in both directions")
        return self


class ListLayout(_Model):
    """Sensors at given positions (surveyed local metres or WGS84)."""

    layout: Literal["list"]
    clock_error_bound_s: float = Field(0.0005, ge=0, lt=1)
    positions: list[SensorSpec] = Field(min_length=1)


class Environment(_Model):
    temperature_c: float = Field(15.0, ge=-60, le=60)
    relative_humidity: float = Field(0.6, ge=0, le=1)
    pressure_kpa: float = Field(101.325, gt=50, lt=120)
    wind_speed_mps: float = Field(0.0, ge=0, le=40)
    wind_from_deg: float = Field(
        0.0, ge=0, lt=360, description="Meteorological: where the wind blows from."
    )
    background_noise_db_spl: float = Field(62.0, ge=0, le=120)
    noise_spread_db: float = Field(3.0, ge=0, description="Sensor-to-sensor noise spread (sd).")
    ground_reflection: float = Field(0.7, ge=0, le=1, description="Ground reflection factor.")
    urban_excess_db_per_km: float = Field(
        30.0, ge=0, description="Extra loss from buildings and barriers per km of path."
    )
    nlos_share: float = Field(0.1, ge=0, le=1, description="Share of blocked direct paths.")
    nlos_delay_s: tuple[float, float] = Field((0.001, 0.02), description="Excess delay range.")
    nlos_attenuation_db: tuple[float, float] = (6.0, 18.0)
    diffraction_delay_s_per_km: float = Field(
        0.0,
        ge=0,
        le=0.05,
        description="Mean excess delay of unblocked paths per km (over rooftops, around "
        "corners); exponentially distributed per path. 0 gives ideal straight paths.",
    )
    echoes_per_path: float = Field(0.3, ge=0, le=10, description="Mean echoes per heard path.")
    echo_delay_s: tuple[float, float] = (0.03, 0.6)
    echo_attenuation_db: tuple[float, float] = (6.0, 20.0)

    @model_validator(mode="after")
    def _ranges(self) -> Environment:
        for name in ("nlos_delay_s", "nlos_attenuation_db", "echo_delay_s", "echo_attenuation_db"):
            lo, hi = getattr(self, name)
            if lo < 0 or hi < lo:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high")
        return self


class Detection(_Model):
    """How a sensor turns sound into pulses (pulse level) and records audio."""

    min_snr_db: float = Field(10.0, description="Pulses below this SNR are not reported.")
    pick_error_s: float = Field(0.0005, ge=0, le=0.1, description="One-sigma onset error.")
    dead_time_s: float = Field(0.05, ge=0, le=2, description="A pulse masks the next for this.")
    false_pulses_per_sensor_per_hour: float = Field(10.0, ge=0)
    false_pulse_ratio: float = Field(
        0.0, ge=0, le=100, description="Extra false pulses as a fraction of true pulses."
    )
    false_snr_db: tuple[float, float] = (10.0, 30.0)
    sample_rate_hz: int = Field(12_000, ge=4000, le=96_000)
    full_scale_db_spl: float = Field(120.0, gt=60, description="Level of digital full scale.")
    audio_snippet_s: float | None = Field(
        None, gt=0, description="Cut audio to this long around the first gunshot (None: all)."
    )


Calibre = Literal["22", "9mm", "40", "45", "556", "762", "12ga"]


class _SourceBase(Position):
    name: str | None = None
    start_s: float = Field(0.0, ge=0, description="Seconds after the scenario start.")


class Gunfire(_SourceBase):
    """One shooter: ``rounds`` shots at ``cadence_rps`` (automatic when >= ~8), optionally
    moving at ``speed_mps`` toward ``heading_deg`` and with a supersonic crack."""

    kind: Literal["gunfire"]
    calibre: Calibre = "9mm"
    rounds: int = Field(1, ge=1, le=500)
    cadence_rps: float = Field(2.0, gt=0, le=30)
    cadence_jitter: float = Field(0.05, ge=0, le=0.5, description="Relative sd of intervals.")
    speed_mps: float = Field(0.0, ge=0, le=60)
    heading_deg: float = Field(0.0, ge=0, lt=360)
    supersonic: bool = False
    aim_deg: float = Field(0.0, ge=0, lt=360, description="Direction the bullets fly.")
    bullet_speed_mps: float | None = Field(None, gt=0, le=1500)


class Fireworks(_SourceBase):
    """Aerial bursts over a launch area: each shell a loud burst then crackling."""

    kind: Literal["fireworks"]
    radius_m: float = Field(50.0, ge=0)
    bursts: int = Field(10, ge=1, le=100_000)
    duration_s: float = Field(60.0, gt=0)
    burst_height_m: tuple[float, float] = (60.0, 200.0)
    crackles_per_burst: int = Field(8, ge=0, le=200)
    crackle_spread_s: float = Field(1.5, ge=0)


class Impulse(_SourceBase):
    """Door slams and backfires: ``count`` events over ``duration_s`` within ``radius_m``."""

    kind: Literal["door_slam", "backfire"]
    count: int = Field(1, ge=1, le=100_000)
    duration_s: float = Field(1.0, gt=0)
    radius_m: float = Field(0.0, ge=0)


Source = Annotated[Gunfire | Fireworks | Impulse, Field(discriminator="kind")]


class Scenario(_Model):
    """A simulated scene: sensors, sources, environment and detection."""

    name: str = Field(min_length=1)
    description: str = ""
    start_utc: str = "2026-07-04T22:00:00Z"
    duration_s: float = Field(gt=0, le=86_400)
    frame: Frame | None = None
    sensors: GridLayout | ListLayout = Field(discriminator="layout")
    environment: Environment = Field(default_factory=Environment)
    detection: Detection = Field(default_factory=Detection)
    sources: list[Source] = Field(default_factory=list)

    @model_validator(mode="after")
    def _geo_needs_frame(self) -> Scenario:
        points: list[Position] = list(self.sources)
        if isinstance(self.sensors, ListLayout):
            points += list(self.sensors.positions)
        if self.frame is None and any(p.lat_deg is not None for p in points):
            raise ValueError("positions given in lat/lon need a [frame] section")
        return self


def parse_scenario(data: dict[str, Any], where: str = "scenario") -> Scenario:
    """Validate a scenario structure; errors name ``where`` and every bad field."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(scenario)"
            problems.append((loc, err["msg"]))
        field = problems[0][0]
        reason = "; ".join(f"{loc}: {msg}" for loc, msg in problems)
        raise InputError(where, field, reason) from exc


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario TOML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(str(p), "scenario", "file not found") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(p), "scenario", f"not valid TOML: {exc}") from exc
    return parse_scenario(data, str(p))


def example_scenarios() -> dict[str, Path]:
    """The scenarios shipped with ShotWatch, by file stem."""
    folder = Path(__file__).with_name("scenarios")
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}
