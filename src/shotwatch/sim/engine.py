"""The simulator's pure core: a scenario and a seed in, sensors, pulses and truth out.

Stages (each with its own random stream, so e.g. asking for audio never changes the pulses):

1. layout   -> sensors (grid with jitter, or given positions) and per-sensor clock offsets
2. sources  -> emissions (each round fired, each firework burst/crackle, each door slam)
3. paths    -> every physical arrival at every sensor: direct or non-line-of-sight, supersonic
               crack, echoes; with travel time from the effective sound speed (temperature and
               wind), level from spherical spreading, ISO 9613-1 air absorption, urban excess
               loss and the ground-reflected image source
4. pulses   -> what sensors report: arrival + clock offset + pick error, thresholded by SNR,
               masked by the picker's dead time, plus unrelated (false) impulses

Nothing here touches files, the network or the wall clock (see :mod:`shotwatch.sim.output`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Provenance, Pulse, Sensor, parse_utc
from shotwatch.sim import physics
from shotwatch.sim.physics import BlastModel
from shotwatch.sim.scenario import (
    Fireworks,
    GridLayout,
    Gunfire,
    Impulse,
    ListLayout,
    Position,
    Scenario,
)
from shotwatch.sim.truth import EventTruth, PathKind, PulseTruth, SourceTruth, Truth

ALGORITHM = "shotwatch-sim"
VERSION = "0.1"

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Random streams (one per stage).
_LAYOUT, _SOURCES, _PATHS, _PICKS, _FALSE, _DIFFRACTION = range(6)
#: Paths weaker than this SNR are not kept even for audio (far below the noise).
AUDIBLE_SNR_DB = -10.0
#: Random level fluctuation (scintillation, sd dB) applied per path.
LEVEL_SCATTER_DB = 1.5
#: Height scale of building screening: the urban excess loss of a path from a source at
#: height z is scaled by 1 / (1 + z / ROOFTOP_M).
ROOFTOP_M = 15.0


def rng_for(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


@dataclass(frozen=True, slots=True)
class Emission:
    """One impulsive emission at a point and time."""

    event_id: str
    source_id: str
    kind: str
    is_gunshot: bool
    t_s: float
    x_m: float
    y_m: float
    z_m: float
    model: BlastModel
    round_index: int | None = None
    aim_en: tuple[float, float] | None = None  # bullet direction (supersonic only)
    bullet_speed_mps: float = 0.0


@dataclass(slots=True)
class Paths:
    """All physical arrivals (structure of arrays), before sensors report anything."""

    emission: IntArray
    sensor: IntArray
    kind: NDArray[np.int8]  # index into PATH_KINDS
    t_true_s: FloatArray  # physical arrival time (true clock)
    level_db: FloatArray  # peak level at the sensor (dB SPL), as a pulse would report
    amp_db: FloatArray  # level without absorption/ground gain, for audio synthesis
    dist_m: FloatArray  # path length for the absorption filter
    refl_delay_s: FloatArray  # ground reflection's lag after this arrival (audio)
    refl_ratio: FloatArray  # ground reflection's amplitude relative to this arrival
    snr_db: FloatArray

    def __len__(self) -> int:
        return int(self.emission.size)


PATH_KINDS = (PathKind.DIRECT, PathKind.NLOS, PathKind.ECHO, PathKind.CRACK)


@dataclass(slots=True)
class Scene:
    """Sensors, emissions and physical paths: shared by the pulse and audio levels."""

    scenario: Scenario
    seed: int
    start_s: float
    c_mps: float
    wind_en_mps: tuple[float, float]
    sensors: list[Sensor]
    sensor_xyz: FloatArray
    clock_bound_s: FloatArray
    clock_offset_s: FloatArray
    noise_db: FloatArray
    emissions: list[Emission]
    sources: list[SourceTruth]
    paths: Paths
    frame: LocalFrame | None = None


@dataclass(slots=True)
class SimResult:
    """Pulse-level output: sensors, reported pulses (time order) and the truth."""

    scene: Scene
    sensors: list[Sensor]
    pulses: list[Pulse]
    truth: Truth
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def scenario(self) -> Scenario:
        return self.scene.scenario


# ----------------------------------------------------------------------------- layout


def _xyz(pos: Position, frame: LocalFrame | None) -> tuple[float, float, float]:
    if pos.position_m is not None:
        return (float(pos.position_m[0]), float(pos.position_m[1]), float(pos.position_m[2]))
    assert frame is not None and pos.lat_deg is not None and pos.lon_deg is not None
    return frame.to_local(pos.lat_deg, pos.lon_deg, frame.h0_m + pos.height_m)


def build_layout(
    scenario: Scenario, seed: int, frame: LocalFrame | None
) -> tuple[list[Sensor], FloatArray, FloatArray]:
    """Sensors, their clock-error bounds and their actual clock offsets (within the bound)."""
    rng = rng_for(seed, _LAYOUT)
    spec = scenario.sensors
    xyz: list[tuple[float, float, float]] = []
    serials: list[str] = []
    bounds: list[float] = []
    if isinstance(spec, GridLayout):
        spacing = 1000.0 / math.sqrt(spec.density_per_km2)
        nx = max(1, round(spec.area_m[0] / spacing))
        ny = max(1, round(spec.area_m[1] / spacing))
        sx, sy = spec.area_m[0] / nx, spec.area_m[1] / ny
        for j in range(ny):
            for i in range(nx):
                r = spec.jitter_m * math.sqrt(rng.random())
                a = rng.random() * 2 * math.pi
                x = spec.origin_m[0] + (i + 0.5) * sx + r * math.cos(a)
                y = spec.origin_m[1] + (j + 0.5) * sy + r * math.sin(a)
                xyz.append((x, y, spec.height_m))
                serials.append(f"{spec.serial_prefix}-{len(serials):05d}")
                bounds.append(spec.clock_error_bound_s)
    else:
        assert isinstance(spec, ListLayout)
        for k, p in enumerate(spec.positions):
            xyz.append(_xyz(p, frame))
            serials.append(p.serial or f"SIM-{k:05d}")
            b = p.clock_error_bound_s
            bounds.append(spec.clock_error_bound_s if b is None else b)
    sensors = []
    for serial, (x, y, z) in zip(serials, xyz, strict=True):
        lat = lon = elev = None
        if frame is not None:
            lat, lon, elev = frame.to_geo(x, y, z)
        sensors.append(Sensor(serial, x, y, z, lat, lon, elev))
    bound_arr = np.asarray(bounds, dtype=float)
    offsets = rng.uniform(-1.0, 1.0, size=len(sensors)) * bound_arr
    return sensors, bound_arr, offsets


# ---------------------------------------------------------------------------- sources


def _disc(rng: np.random.Generator, radius_m: float) -> tuple[float, float]:
    r = radius_m * math.sqrt(rng.random())
    a = rng.random() * 2 * math.pi
    return r * math.cos(a), r * math.sin(a)


def build_emissions(
    scenario: Scenario, seed: int, start_s: float, frame: LocalFrame | None
) -> tuple[list[Emission], list[SourceTruth]]:
    rng = rng_for(seed, _SOURCES)
    raw: list[Emission] = []
    sources: list[SourceTruth] = []
    for k, src in enumerate(scenario.sources):
        sid = src.name or f"{src.kind}-{k}"
        x0, y0, z0 = _xyz(src, frame)
        t_first = start_s + src.start_s
        if isinstance(src, Gunfire):
            blast, default_v = physics.CALIBRES[src.calibre]
            hd = math.radians(src.heading_deg)
            vx, vy = src.speed_mps * math.sin(hd), src.speed_mps * math.cos(hd)
            aim = math.radians(src.aim_deg)
            interval = 1.0 / src.cadence_rps
            t = t_first
            for r in range(src.rounds):
                if r > 0:
                    step = interval * (1.0 + src.cadence_jitter * rng.standard_normal())
                    t += max(step, 0.3 * interval)
                dt = t - t_first
                raw.append(
                    Emission(
                        "",
                        sid,
                        "gunshot",
                        True,
                        t,
                        x0 + vx * dt,
                        y0 + vy * dt,
                        z0,
                        blast,
                        r,
                        (math.sin(aim), math.cos(aim)) if src.supersonic else None,
                        float(src.bullet_speed_mps or default_v) if src.supersonic else 0.0,
                    )
                )
            sources.append(
                SourceTruth(
                    sid,
                    "gunfire",
                    src.rounds,
                    src.cadence_rps >= 8.0 and src.rounds >= 3,
                    src.cadence_rps if src.rounds > 1 else None,
                    src.speed_mps,
                    src.heading_deg if src.speed_mps > 0 else None,
                    t_first,
                    t,
                    x0,
                    y0,
                    z0,
                )
            )
        elif isinstance(src, Fireworks):
            t_last = t_first
            for _b in range(src.bursts):
                tb = t_first + rng.random() * src.duration_s
                dx, dy = _disc(rng, src.radius_m)
                lo, hi = src.burst_height_m
                h = lo + (hi - lo) * rng.random()
                flight = 1.5 + 2.0 * rng.random()
                raw.append(
                    Emission(
                        "",
                        sid,
                        "firework_launch",
                        False,
                        tb - flight,
                        x0 + dx,
                        y0 + dy,
                        z0,
                        physics.FIREWORK_LAUNCH,
                    )
                )
                bx, by, bz = x0 + dx, y0 + dy, z0 + h
                raw.append(
                    Emission(
                        "", sid, "firework_burst", False, tb, bx, by, bz, physics.FIREWORK_BURST
                    )
                )
                for _c in range(src.crackles_per_burst):
                    tc = tb + 0.15 + src.crackle_spread_s * rng.random()
                    cx, cy, cz = (
                        bx + 15 * rng.standard_normal(),
                        by + 15 * rng.standard_normal(),
                        bz + 10 * rng.standard_normal(),
                    )
                    raw.append(
                        Emission(
                            "",
                            sid,
                            "firework_crackle",
                            False,
                            tc,
                            cx,
                            cy,
                            max(cz, 5.0),
                            physics.FIREWORK_CRACKLE,
                        )
                    )
                    t_last = max(t_last, tc)
            sources.append(
                SourceTruth(
                    sid, "fireworks", 0, False, None, 0.0, None, t_first, t_last, x0, y0, z0
                )
            )
        else:
            assert isinstance(src, Impulse)
            model = physics.DOOR_SLAM if src.kind == "door_slam" else physics.BACKFIRE
            height = 1.0 if src.kind == "door_slam" else 0.3
            t_last = t_first
            for _c in range(src.count):
                te = t_first + rng.random() * src.duration_s
                dx, dy = _disc(rng, src.radius_m)
                raw.append(
                    Emission("", sid, src.kind, False, te, x0 + dx, y0 + dy, z0 + height, model)
                )
                t_last = max(t_last, te)
            sources.append(
                SourceTruth(sid, src.kind, 0, False, None, 0.0, None, t_first, t_last, x0, y0, z0)
            )
    raw.sort(key=lambda e: (e.t_s, e.source_id))
    emissions = [
        Emission(
            f"ev{i:06d}",
            e.source_id,
            e.kind,
            e.is_gunshot,
            e.t_s,
            e.x_m,
            e.y_m,
            e.z_m,
            e.model,
            e.round_index,
            e.aim_en,
            e.bullet_speed_mps,
        )
        for i, e in enumerate(raw)
    ]
    return emissions, sources


# ------------------------------------------------------------------------------ paths


def _empty_paths() -> Paths:
    f = np.zeros(0)
    return Paths(
        np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8), f, f, f, f, f, f, f
    )


def _concat(parts: list[Paths]) -> Paths:
    if not parts:
        return _empty_paths()
    return Paths(*(np.concatenate([getattr(p, n) for p in parts]) for n in Paths.__slots__))


def build_paths(
    scene_env: Scenario,
    seed: int,
    emissions: list[Emission],
    *,
    sensor_xyz: FloatArray,
    noise_db: FloatArray,
    c_mps: float,
    wind_en: tuple[float, float],
) -> Paths:
    """Every arrival heard above ``AUDIBLE_SNR_DB`` at every sensor."""
    env = scene_env.environment
    rng = rng_for(seed, _PATHS)
    diff_rng = rng_for(seed, _DIFFRACTION)
    if not emissions or sensor_xyz.shape[0] == 0:
        return _empty_paths()
    ex = np.array([[e.x_m, e.y_m, e.z_m] for e in emissions])
    et = np.array([e.t_s for e in emissions])
    peak = np.array([e.model.peak_db_1m for e in emissions])
    dur = np.array([e.model.duration_s for e in emissions])
    dom = np.array([e.model.dominant_hz for e in emissions])
    alpha = np.asarray(
        physics.air_absorption_db_per_m(
            dom, env.temperature_c, env.relative_humidity, env.pressure_kpa
        )
    )
    urban = env.urban_excess_db_per_km / 1000.0
    # sources high above the rooftops (fireworks shells) are barely screened by buildings
    screen = 1.0 / (1.0 + np.maximum(ex[:, 2], 0.0) / ROOFTOP_M)
    parts: list[Paths] = []
    chunk = max(1, 2_000_000 // sensor_xyz.shape[0])
    sx, sy, sz = sensor_xyz[:, 0], sensor_xyz[:, 1], sensor_xyz[:, 2]
    for lo in range(0, len(emissions), chunk):
        hi = min(len(emissions), lo + chunk)
        dx = sx[None, :] - ex[lo:hi, 0:1]
        dy = sy[None, :] - ex[lo:hi, 1:2]
        dz = sz[None, :] - ex[lo:hi, 2:3]
        d = np.sqrt(dx * dx + dy * dy + dz * dz)
        # cheap bound first: spreading + urban loss only
        rough = (
            peak[lo:hi, None]
            - physics.spreading_loss_db(d)
            - urban * screen[lo:hi, None] * d
            - noise_db[None, :]
        )
        ei, si = np.nonzero(rough >= AUDIBLE_SNR_DB - 3 * LEVEL_SCATTER_DB)
        if ei.size == 0:
            continue
        dd = d[ei, si]
        ddx, ddy = dx[ei, si], dy[ei, si]
        eg = ei + lo
        c_eff = physics.effective_speed_mps(c_mps, wind_en, ddx, ddy)
        t_true = et[eg] + dd / c_eff
        # ground reflection: image source mirrored in z = 0
        zs = np.maximum(ex[eg, 2], 0.0)
        zr = np.maximum(sz[si], 0.0)
        horiz2 = ddx * ddx + ddy * ddy
        d_img = np.sqrt(horiz2 + (zs + zr) ** 2)
        refl_delay = (d_img - dd) / c_eff
        refl_ratio = env.ground_reflection * dd / np.maximum(d_img, 1e-9)
        overlap = np.clip(1.0 - refl_delay / dur[eg], 0.0, 1.0)
        ground_gain = 20.0 * np.log10(1.0 + refl_ratio * overlap)
        amp = peak[eg] - physics.spreading_loss_db(dd) - urban * screen[eg] * dd
        amp = amp + LEVEL_SCATTER_DB * rng.standard_normal(ei.size)
        nlos = rng.random(ei.size) < env.nlos_share
        nlos_delay = rng.uniform(*env.nlos_delay_s, size=ei.size)
        nlos_att = rng.uniform(*env.nlos_attenuation_db, size=ei.size)
        t_true = t_true + np.where(nlos, nlos_delay, 0.0)
        if env.diffraction_delay_s_per_km > 0:
            # unblocked urban paths still bend over roofs and round corners: a small excess
            # delay growing with path length (own stream: the other draws stay unchanged)
            mean = env.diffraction_delay_s_per_km * dd / 1000.0
            t_true = t_true + np.where(nlos, 0.0, diff_rng.exponential(1.0, ei.size) * mean)
        amp = amp - np.where(nlos, nlos_att, 0.0)
        level = amp - alpha[eg] * dd + ground_gain
        snr = level - noise_db[si]
        keep = snr >= AUDIBLE_SNR_DB
        kind = np.where(nlos, 1, 0).astype(np.int8)
        direct = Paths(
            eg[keep],
            si[keep],
            kind[keep],
            t_true[keep],
            level[keep],
            amp[keep],
            dd[keep],
            refl_delay[keep],
            refl_ratio[keep],
            snr[keep],
        )
        parts.append(direct)
        # echoes off buildings: later, weaker copies of heard paths
        n_echo = rng.poisson(env.echoes_per_path, size=len(direct))
        if n_echo.sum() > 0:
            idx = np.repeat(np.arange(len(direct)), n_echo)
            e_delay = rng.uniform(*env.echo_delay_s, size=idx.size)
            e_att = rng.uniform(*env.echo_attenuation_db, size=idx.size)
            extra_d = e_delay * c_mps
            e_amp = (
                direct.amp_db[idx]
                - e_att
                - 20
                * np.log10((direct.dist_m[idx] + extra_d) / np.maximum(direct.dist_m[idx], 1.0))
            )
            e_level = e_amp - alpha[direct.emission[idx]] * (direct.dist_m[idx] + extra_d)
            e_snr = e_level - noise_db[direct.sensor[idx]]
            k2 = e_snr >= AUDIBLE_SNR_DB
            parts.append(
                Paths(
                    direct.emission[idx][k2],
                    direct.sensor[idx][k2],
                    np.full(int(k2.sum()), 2, np.int8),
                    direct.t_true_s[idx][k2] + e_delay[k2],
                    e_level[k2],
                    e_amp[k2],
                    (direct.dist_m[idx] + extra_d)[k2],
                    np.zeros(int(k2.sum())),
                    np.zeros(int(k2.sum())),
                    e_snr[k2],
                )
            )
    parts.extend(
        _crack_paths(
            emissions,
            sensor_xyz,
            noise_db,
            c_mps=c_mps,
            temp_c=env.temperature_c,
            rh=env.relative_humidity,
            p_kpa=env.pressure_kpa,
            urban=urban,
            rng=rng,
        )
    )
    return _concat(parts)


def _crack_paths(
    emissions: list[Emission],
    sensor_xyz: FloatArray,
    noise_db: FloatArray,
    *,
    c_mps: float,
    temp_c: float,
    rh: float,
    p_kpa: float,
    urban: float,
    rng: np.random.Generator,
) -> list[Paths]:
    """Supersonic bullets: each sensor inside the Mach cone hears a crack before the blast."""
    out = []
    alpha = float(physics.air_absorption_db_per_m(3000.0, temp_c, rh, p_kpa))
    for i, e in enumerate(emissions):
        if e.aim_en is None or e.bullet_speed_mps <= c_mps:
            continue
        rel = sensor_xyz[:, :2] - np.array([e.x_m, e.y_m])
        along = rel[:, 0] * e.aim_en[0] + rel[:, 1] * e.aim_en[1]
        perp = rel[:, 0] * e.aim_en[1] - rel[:, 1] * e.aim_en[0]
        perp = np.hypot(perp, sensor_xyz[:, 2] - e.z_m)
        delay, _l_star = physics.crack_arrival(along, perp, e.bullet_speed_mps, c_mps)
        ok = np.isfinite(delay)
        if not ok.any():
            continue
        si = np.nonzero(ok)[0]
        b = np.maximum(perp[si], 1.0)
        ray = b / math.sqrt(1.0 - (c_mps / e.bullet_speed_mps) ** 2)
        amp = physics.CRACK_DB_1M - 15.0 * np.log10(b) - urban * ray
        amp = amp + LEVEL_SCATTER_DB * rng.standard_normal(si.size)
        level = amp - alpha * ray
        snr = level - noise_db[si]
        keep = snr >= AUDIBLE_SNR_DB
        n = int(keep.sum())
        out.append(
            Paths(
                np.full(n, i, np.int64),
                si[keep].astype(np.int64),
                np.full(n, 3, np.int8),
                e.t_s + delay[si][keep],
                level[keep],
                amp[keep],
                ray[keep],
                np.zeros(n),
                np.zeros(n),
                snr[keep],
            )
        )
    return out


# ------------------------------------------------------------------------------ scene


def build_scene(scenario: Scenario, seed: int) -> Scene:
    """Layout, emissions and physical paths for ``scenario`` with ``seed``."""
    frame = None
    if scenario.frame is not None:
        frame = LocalFrame(scenario.frame.lat0_deg, scenario.frame.lon0_deg, scenario.frame.h0_m)
    start_s = parse_utc(
        scenario.start_utc, where=f"scenario {scenario.name}", field_name="start_utc"
    )
    env = scenario.environment
    c = speed_of_sound_mps(env.temperature_c, env.relative_humidity)
    wind = physics.wind_vector_mps(env.wind_speed_mps, env.wind_from_deg)
    sensors, bounds, offsets = build_layout(scenario, seed, frame)
    xyz = np.array([s.xyz for s in sensors], dtype=float).reshape(-1, 3)
    noise = env.background_noise_db_spl + env.noise_spread_db * rng_for(
        seed, _LAYOUT + 100
    ).standard_normal(len(sensors))
    emissions, sources = build_emissions(scenario, seed, start_s, frame)
    paths = build_paths(
        scenario, seed, emissions, sensor_xyz=xyz, noise_db=noise, c_mps=c, wind_en=wind
    )
    return Scene(
        scenario,
        seed,
        start_s,
        c,
        wind,
        sensors,
        xyz,
        bounds,
        offsets,
        noise,
        emissions,
        sources,
        paths,
        frame,
    )


# ----------------------------------------------------------------------------- pulses


def simulate_pulses(scenario: Scenario, seed: int, scene: Scene | None = None) -> SimResult:
    """Pulse-level simulation: what the sensors would report, in time order, with truth."""
    scene = scene or build_scene(scenario, seed)
    det = scenario.detection
    p = scene.paths
    heard = p.snr_db >= det.min_snr_db
    n_true = int(heard.sum())
    rng = rng_for(seed, _PICKS)
    sensor = p.sensor[heard]
    t_true = p.t_true_s[heard]
    reported = (
        t_true + scene.clock_offset_s[sensor] + det.pick_error_s * rng.standard_normal(n_true)
    )
    snr = p.snr_db[heard] + rng.normal(0.0, 0.5, n_true)
    level = p.level_db[heard]
    emission = p.emission[heard]
    kind = p.kind[heard].astype(np.int64)

    # unrelated impulses: a Poisson rate per sensor, plus a share of the true pulse count
    frng = rng_for(seed, _FALSE)
    n_sensors = len(scene.sensors)
    duration = scenario.duration_s
    n_rate = frng.poisson(det.false_pulses_per_sensor_per_hour * duration / 3600.0, size=n_sensors)
    f_sensor = np.repeat(np.arange(n_sensors), n_rate)
    f_time = scene.start_s + frng.random(f_sensor.size) * duration
    n_ratio = round(det.false_pulse_ratio * n_true)
    if n_ratio > 0 and n_true > 0:
        pick = frng.integers(0, n_true, size=n_ratio)
        r_sensor = sensor[pick]
        t_lo, t_hi = float(t_true.min()) - 2.0, float(t_true.max()) + 2.0
        r_time = t_lo + frng.random(n_ratio) * (t_hi - t_lo)
        f_sensor = np.concatenate([f_sensor, r_sensor])
        f_time = np.concatenate([f_time, r_time])
    n_false = f_sensor.size
    f_snr = frng.uniform(*det.false_snr_db, size=n_false)
    all_sensor = np.concatenate([sensor, f_sensor])
    all_t = np.concatenate([reported, f_time])
    all_true_t = np.concatenate([t_true, f_time])
    all_snr = np.concatenate([snr, f_snr])
    all_level = np.concatenate([level, scene.noise_db[f_sensor] + f_snr])
    all_em = np.concatenate([emission, np.full(n_false, -1, np.int64)])
    all_kind = np.concatenate([kind, np.full(n_false, -1, np.int64)])

    # the picker's dead time: a pulse hides anything on the same sensor shortly after it
    order = np.lexsort((all_t, all_sensor))
    s_sorted, t_sorted = all_sensor[order], all_t[order]
    masked = np.zeros(order.size, bool)
    if det.dead_time_s > 0 and order.size > 1:
        masked[1:] = (s_sorted[1:] == s_sorted[:-1]) & (np.diff(t_sorted) < det.dead_time_s)
    keep_idx = order[~masked]
    masked_true = int((all_em[order[masked]] >= 0).sum())
    keep_idx = keep_idx[np.argsort(all_t[keep_idx], kind="stable")]

    prov = Provenance.automatic(ALGORITHM, VERSION, scene.start_s)
    pulses: list[Pulse] = []
    ptruth: dict[str, PulseTruth] = {}
    serials = [s.serial for s in scene.sensors]
    for n, j in enumerate(keep_idx.tolist()):
        s = int(all_sensor[j])
        pid = f"s{seed}-{n:07d}"
        x, y, z = scene.sensor_xyz[s]
        pulses.append(
            Pulse(
                pid,
                serials[s],
                float(all_t[j]),
                float(x),
                float(y),
                float(z),
                float(all_snr[j]),
                float(all_level[j]),
                float(scene.clock_bound_s[s]),
                provenance=prov,
            )
        )
        em = int(all_em[j])
        ptruth[pid] = PulseTruth(
            pid,
            scene.emissions[em].event_id if em >= 0 else None,
            PATH_KINDS[int(all_kind[j])] if em >= 0 else PathKind.FALSE,
            float(all_true_t[j]),
        )
    truth = Truth(
        scenario.name,
        seed,
        scene.start_s,
        scene.c_mps,
        events=[
            EventTruth(
                e.event_id,
                e.source_id,
                e.kind,
                e.is_gunshot,
                e.t_s,
                e.x_m,
                e.y_m,
                e.z_m,
                e.round_index,
            )
            for e in scene.emissions
        ],
        sources=list(scene.sources),
        pulses=ptruth,
        clock_offset_s={serials[i]: float(o) for i, o in enumerate(scene.clock_offset_s)},
        masked_pulses=masked_true,
    )
    return SimResult(scene, list(scene.sensors), pulses, truth)
