"""Audio-level simulation: the waveform each sensor would record (pressure in pascals).

Every physical path of the scene (direct or non-line-of-sight, its ground reflection, echoes,
supersonic cracks) is synthesised from its source waveform with a fractional delay and the
ISO 9613-1 absorption of its path length applied in the frequency domain, then added to urban
background noise (a red-tilted Gaussian noise at the sensor's noise level). The time axis is
the sensor's own clock, so a recording starts at the sensor's (offset) idea of the time.

Band-limited templates are made by evaluating the analytic waveform on an 8x finer grid and
keeping only the spectrum below the sensor's Nyquist frequency (no aliasing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shotwatch.sim import physics
from shotwatch.sim.engine import Scene, rng_for
from shotwatch.sim.physics import BlastModel

_AUDIO = 7  # random stream for noise
SEGMENT = 2048  # samples synthesised per arrival
LEAD = 64  # samples before the onset inside a segment (room for band-limiting ringing)
OVERSAMPLE = 8


@dataclass(slots=True)
class SensorAudio:
    """One sensor's recording: float pressure (Pa) starting at ``start_s`` (sensor clock)."""

    serial: str
    start_s: float
    sample_rate_hz: int
    pressure_pa: NDArray[np.float64]
    full_scale_pa: float

    @property
    def duration_s(self) -> float:
        return self.pressure_pa.size / self.sample_rate_hz

    def pcm16(self) -> NDArray[np.int16]:
        """The recording as a 16-bit sensor would store it (clipped at full scale)."""
        scaled = np.clip(self.pressure_pa / self.full_scale_pa, -1.0, 32767 / 32768)
        return np.round(scaled * 32768).astype(np.int16)


def _template_spectrum(model: BlastModel | None, fs: int) -> NDArray[np.complex128]:
    """Unit-peak waveform (onset at sample LEAD) as the spectrum of a SEGMENT-long frame."""
    n_hi = SEGMENT * OVERSAMPLE
    t = (np.arange(n_hi) - LEAD * OVERSAMPLE) / (fs * OVERSAMPLE)
    w = (
        physics.n_wave(t, physics.CRACK_DURATION_S)
        if model is None
        else physics.friedlander(t, model)
    )
    spec = np.fft.rfft(w)[: SEGMENT // 2 + 1] / OVERSAMPLE
    return spec


def _urban_noise(rng: np.random.Generator, n: int, rms_pa: float) -> NDArray[np.float64]:
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.arange(spec.size) + 1.0
    spec *= 1.0 / np.sqrt(f / 20.0).clip(1.0)  # pink-ish above ~20 bins: traffic-like rumble
    x = np.fft.irfft(spec, n)
    return x * (rms_pa / max(float(np.sqrt(np.mean(x * x))), 1e-12))


def simulate_audio(
    scene: Scene,
    *,
    serials: list[str] | None = None,
    snippet_s: float | None = None,
) -> list[SensorAudio]:
    """Recordings for ``serials`` (default: every sensor that hears any gunshot, or every
    sensor when there is no gunshot). With ``snippet_s`` each recording is cut to that length
    starting 0.5 s before the sensor's first gunshot arrival; otherwise it spans the scenario.
    """
    sc = scene.scenario
    det = sc.detection
    env = sc.environment
    fs = det.sample_rate_hz
    snippet_s = snippet_s if snippet_s is not None else det.audio_snippet_s
    p = scene.paths
    gun_em = np.array([e.is_gunshot for e in scene.emissions], dtype=bool)
    is_gun_path = gun_em[p.emission] if len(p) else np.zeros(0, bool)
    by_serial = {s.serial: i for i, s in enumerate(scene.sensors)}
    if serials is None:
        heard = np.unique(p.sensor[is_gun_path & (p.snr_db >= det.min_snr_db)])
        idx = heard.tolist() if heard.size else list(range(len(scene.sensors)))
    else:
        idx = [by_serial[s] for s in serials]
    templates: dict[int, NDArray[np.complex128]] = {}
    freqs = np.fft.rfftfreq(SEGMENT, 1.0 / fs)
    alpha_f = np.asarray(
        physics.air_absorption_db_per_m(
            freqs, env.temperature_c, env.relative_humidity, env.pressure_kpa
        )
    )
    full_scale = physics.P_REF_PA * 10 ** (det.full_scale_db_spl / 20)
    out = []
    for si in idx:
        rng = rng_for(scene.seed, _AUDIO * 100_000 + si)
        offset = float(scene.clock_offset_s[si])
        mine = np.nonzero(p.sensor == si)[0]
        if snippet_s is not None:
            gun_t = p.t_true_s[mine[is_gun_path[mine]]] if mine.size else np.zeros(0)
            first = float(gun_t.min()) if gun_t.size else scene.start_s
            start = math.floor((first + offset - 0.5) * fs) / fs
            n = round(snippet_s * fs)
        else:
            start = scene.start_s
            n = round(sc.duration_s * fs)
        rms = physics.P_REF_PA * 10 ** (float(scene.noise_db[si]) / 20) / 10 ** (12 / 20)
        x = _urban_noise(rng, n + SEGMENT, rms)
        for j in mine.tolist():
            em = scene.emissions[int(p.emission[j])]
            is_crack = int(p.kind[j]) == 3
            key = -1 if is_crack else id(em.model)
            if key not in templates:
                templates[key] = _template_spectrum(None if is_crack else em.model, fs)
            # position of the onset on the sensor's clock, in samples from the start
            pos = (float(p.t_true_s[j]) + offset - start) * fs
            k0 = math.floor(pos) - LEAD
            if k0 + SEGMENT <= 0 or k0 >= n:
                continue
            frac = pos - math.floor(pos)
            amp = physics.P_REF_PA * 10 ** (float(p.amp_db[j]) / 20)
            h = 10 ** (-alpha_f * float(p.dist_m[j]) / 20) * np.exp(-2j * np.pi * freqs * frac / fs)
            ratio = float(p.refl_ratio[j])
            if ratio > 0:
                lag = float(p.refl_delay_s[j])
                h = h * (1 + ratio * np.exp(-2j * np.pi * freqs * lag))
            seg = np.fft.irfft(templates[key] * h, SEGMENT) * amp
            a, b = max(k0, 0), min(k0 + SEGMENT, n + SEGMENT)
            x[a:b] += seg[a - k0 : b - k0]
        out.append(SensorAudio(scene.sensors[si].serial, start, fs, x[:n], full_scale))
    return out
