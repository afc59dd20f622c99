"""Outdoor sound propagation and impulsive source models (pure functions on numbers/arrays).

- Air absorption: ISO 9613-1:1993 pure-tone attenuation coefficient (oxygen and nitrogen
  relaxation plus classical absorption), in dB per metre.
- Effective sound speed: c(T, RH) from :mod:`shotwatch.core.acoustics` plus the wind component
  along the horizontal propagation direction (valid for wind << c).
- Source waveforms: a Friedlander-type positive phase followed by its negative tail (the
  classic muzzle-blast "N-wave" shape), with calibre-dependent peak level at 1 m and duration.
- Supersonic crack: the bullet's Mach-cone arrival time for a straight, constant-speed
  trajectory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: Reference pressure for dB SPL (Pa).
P_REF_PA = 20e-6


@dataclass(frozen=True, slots=True)
class BlastModel:
    """An impulsive source: peak level at 1 m, positive-phase duration, dominant frequency."""

    peak_db_1m: float
    duration_s: float
    dominant_hz: float
    decay: float = 1.8  # Friedlander decay constant (shape of the positive phase)


#: Muzzle blast by calibre: peak SPL at 1 m (150-165 dB is typical for firearms) and
#: positive-phase duration (longer for larger charges). Rifles also have a faster bullet.
CALIBRES: dict[str, tuple[BlastModel, float]] = {
    "22": (BlastModel(146.0, 0.0006, 900.0), 370.0),
    "9mm": (BlastModel(157.0, 0.0009, 700.0), 380.0),
    "40": (BlastModel(158.0, 0.0010, 650.0), 330.0),
    "45": (BlastModel(158.0, 0.0011, 600.0), 260.0),
    "556": (BlastModel(163.0, 0.0012, 650.0), 940.0),
    "762": (BlastModel(165.0, 0.0014, 550.0), 830.0),
    "12ga": (BlastModel(162.0, 0.0016, 450.0), 400.0),
}

FIREWORK_BURST = BlastModel(150.0, 0.003, 250.0, decay=1.2)
FIREWORK_CRACKLE = BlastModel(132.0, 0.0004, 1500.0, decay=2.5)
FIREWORK_LAUNCH = BlastModel(138.0, 0.004, 150.0, decay=1.0)
DOOR_SLAM = BlastModel(118.0, 0.006, 120.0, decay=1.0)
BACKFIRE = BlastModel(140.0, 0.002, 300.0, decay=1.4)
#: Supersonic crack level 1 m from the trajectory (it then decays as distance^-3/4).
CRACK_DB_1M = 150.0
CRACK_DURATION_S = 0.0003


def air_absorption_db_per_m(
    frequency_hz: float | NDArray[np.floating[Any]],
    temperature_c: float,
    relative_humidity: float,
    pressure_kpa: float = 101.325,
) -> float | FloatArray:
    """ISO 9613-1 atmospheric absorption coefficient (dB/m) at ``frequency_hz``."""
    f = np.asarray(frequency_hz, dtype=float)
    t_k = temperature_c + 273.15
    t0 = 293.15
    t01 = 273.16
    pr = 101.325
    pa = pressure_kpa
    c_sat = -6.8346 * (t01 / t_k) ** 1.261 + 4.6151
    h = 100.0 * relative_humidity * (10.0**c_sat) / (pa / pr)
    fr_o = (pa / pr) * (24.0 + 4.04e4 * h * (0.02 + h) / (0.391 + h))
    fr_n = (
        (pa / pr)
        * (t_k / t0) ** -0.5
        * (9.0 + 280.0 * h * math.exp(-4.170 * ((t_k / t0) ** (-1 / 3) - 1.0)))
    )
    alpha = (
        8.686
        * f**2
        * (
            1.84e-11 * (pr / pa) * (t_k / t0) ** 0.5
            + (t_k / t0) ** -2.5
            * (
                0.01275 * math.exp(-2239.1 / t_k) / (fr_o + f**2 / fr_o)
                + 0.1068 * math.exp(-3352.0 / t_k) / (fr_n + f**2 / fr_n)
            )
        )
    )
    if alpha.ndim == 0:
        return float(alpha)
    return alpha


def wind_vector_mps(speed_mps: float, from_deg: float) -> tuple[float, float]:
    """(east, north) wind velocity for a meteorological direction (where it blows from)."""
    to_rad = math.radians(from_deg + 180.0)
    return (speed_mps * math.sin(to_rad), speed_mps * math.cos(to_rad))


def effective_speed_mps(
    c_mps: float, wind_en_mps: tuple[float, float], dx_m: FloatArray, dy_m: FloatArray
) -> FloatArray:
    """Sound speed along source->receiver: c plus the wind's component along the path."""
    horiz = np.hypot(dx_m, dy_m)
    safe = np.where(horiz > 0, horiz, 1.0)
    along = (wind_en_mps[0] * dx_m + wind_en_mps[1] * dy_m) / safe
    return c_mps + np.where(horiz > 0, along, 0.0)


def spreading_loss_db(distance_m: FloatArray) -> FloatArray:
    """Spherical spreading relative to 1 m."""
    return 20.0 * np.log10(np.maximum(distance_m, 1.0))


def friedlander(t_s: FloatArray, model: BlastModel) -> FloatArray:
    """Unit-peak Friedlander waveform: (1 - t/T) exp(-b t/T) for t >= 0, zero before.

    The negative phase (t > T) decays away naturally, giving the blast's N-wave character.
    """
    tau = np.asarray(t_s, dtype=float) / model.duration_s
    w = (1.0 - tau) * np.exp(-model.decay * tau)
    return np.where(tau >= 0, w, 0.0)


def n_wave(t_s: FloatArray, duration_s: float) -> FloatArray:
    """Unit-peak ideal N-wave (supersonic crack): +1 falling linearly to -1 over the duration."""
    tau = np.asarray(t_s, dtype=float) / duration_s
    return np.where((tau >= 0) & (tau <= 1), 1.0 - 2.0 * tau, 0.0)


def crack_arrival(
    along_m: FloatArray,
    perp_m: FloatArray,
    bullet_speed_mps: float,
    c_mps: float,
    max_range_m: float = 1200.0,
) -> tuple[FloatArray, FloatArray]:
    """Supersonic crack geometry for receivers at (``along_m``, ``perp_m``) from the muzzle
    (along and perpendicular to the trajectory).

    Returns (delay after the shot in s, the emission point's distance along the trajectory in
    m); the delay is NaN where the receiver is outside the Mach cone (bullet subsonic, or the
    emission point would lie behind the muzzle or beyond ``max_range_m``). The sound leaves
    the trajectory at the Mach angle asin(c/V): l* = a - b tan(theta), t* = l*/V + b/(c cos).
    """
    along = np.asarray(along_m, dtype=float)
    perp = np.abs(np.asarray(perp_m, dtype=float))
    if bullet_speed_mps <= c_mps:
        nan = np.full_like(along, np.nan)
        return nan, nan
    sin_t = c_mps / bullet_speed_mps
    cos_t = math.sqrt(1.0 - sin_t * sin_t)
    l_star = along - perp * sin_t / cos_t
    ok = (l_star >= 0) & (l_star <= max_range_m)
    delay = l_star / bullet_speed_mps + perp / (c_mps * cos_t)
    return np.where(ok, delay, np.nan), np.where(ok, l_star, np.nan)
