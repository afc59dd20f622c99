"""Physical synthesis of gunshots and their confusers, and of the path to a sensor.

Used to train and to evaluate the pulse classifier where no licensed real recordings exist.
Each source is built from its physics (a blast wave, a force pulse into resonances, a combustion
pop in a pipe, a voiced source through formants...) with its parameters drawn from *ranges*.
Two range sets exist: ``"train"`` and ``"heldout"``; the held-out set shifts or widens every
range, so an evaluation on it measures generalisation beyond the generator the model was fitted
to rather than memorisation of it.

All sources are rendered at ``SYNTH_RATE_HZ`` then passed through :func:`propagate` (spreading
is left to the mixer's level; air absorption, ground reflection, urban echoes and reverberation
are applied here) and resampled by the caller.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal as sps

from shotwatch.classification.dsp import bandpass, highpass, lowpass

SYNTH_RATE_HZ = 24_000

#: Synthetic source family -> label reported by the classifier.
FAMILY_LABEL: dict[str, str] = {
    "gunshot": "gunshot",
    "gunshot_close": "gunshot",
    "fireworks": "fireworks",
    "firecracker": "firecracker",
    "backfire": "backfire",
    "door_slam": "door_slam",
    "knock": "knock",
    "keys": "impact",
    "drawer": "impact",
    "hammer": "impact",
    "speech": "other",
    "cough": "other",
    "laughter": "other",
    "office": "other",
}


def _r(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _widen(lo: float, hi: float, variant: str, shift: float = 0.25) -> tuple[float, float]:
    """The held-out range: extended by ``shift`` of its width on both sides."""
    if variant == "train":
        return lo, hi
    w = (hi - lo) * shift
    return max(lo - w, lo * 0.5 if lo > 0 else lo - w), hi + w


def friedlander(rate_hz: int, tp_s: float, decay: float, length_s: float) -> np.ndarray:
    """Friedlander blast wave p(t) = (1 - t/T+) exp(-b t/T+), rendered 8x oversampled and
    decimated so sub-millisecond positive phases are not aliased."""
    over = 8
    n = int(length_s * rate_hz * over)
    t = np.arange(n) / (rate_hz * over)
    p = (1.0 - t / tp_s) * np.exp(-decay * t / tp_s)
    return np.asarray(sps.resample_poly(p, 1, over), dtype=np.float64)


def modes(  # noqa: PLR0917 (the arrays belong together)
    rate_hz: int,
    freqs_hz: np.ndarray,
    decays_s: np.ndarray,
    amps: np.ndarray,
    length_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Impulse response of a set of damped resonances (random phases)."""
    t = np.arange(int(length_s * rate_hz)) / rate_hz
    out = np.zeros_like(t)
    for f, d, a in zip(freqs_hz, decays_s, amps, strict=True):
        if f >= 0.45 * rate_hz:
            continue
        out += a * np.exp(-t / d) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out


def force_pulse(rate_hz: int, duration_s: float) -> np.ndarray:
    """Half-sine contact force of ``duration_s`` (Hertzian impact approximation)."""
    n = max(2, int(duration_s * rate_hz))
    return np.sin(np.pi * np.arange(n) / n)


def _place(out: np.ndarray, sig: np.ndarray, at: int, gain: float = 1.0) -> None:
    if at >= len(out):
        return
    m = min(len(sig), len(out) - at)
    out[at : at + m] += gain * sig[:m]


def _norm(x: np.ndarray) -> np.ndarray:
    m = float(np.max(np.abs(x)))
    return x / m if m > 0 else x


# ---------------------------------------------------------------------------------------------
# Sources. Each returns a dry signal at SYNTH_RATE_HZ whose main onset is at sample 0.
# ---------------------------------------------------------------------------------------------


def gunshot(rng: np.random.Generator, variant: str = "train", close: bool = False) -> np.ndarray:
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    rounds = 1 if rng.random() < 0.6 else int(rng.integers(2, 5))
    gap_lo, gap_hi = _widen(0.09, 0.6, variant)
    tp_lo, tp_hi = _widen(0.25, 1.2, variant) if close else _widen(0.6, 3.0, variant)
    t = 0
    for _ in range(rounds):
        tp = _r(rng, tp_lo, tp_hi) * 1e-3
        blast = friedlander(sr, tp, _r(rng, 0.8, 3.0), 0.06)
        # Muzzle gas: a short decaying noise burst riding on the blast.
        nb = int(_r(rng, 2, 12) * 1e-3 * sr)
        gas = rng.standard_normal(nb) * np.exp(-np.arange(nb) / (nb / 3)) * _r(rng, 0.02, 0.15)
        blast[:nb] += gas[: len(blast)]
        if rng.random() < 0.25:  # supersonic projectile: an N-wave ahead of the blast
            nw_n = max(3, int(_r(rng, 0.15, 0.45) * 1e-3 * sr))
            nwave = np.linspace(1.0, -1.0, nw_n) * _r(rng, 0.2, 1.0)
            lead = int(_r(rng, 1, 30) * 1e-3 * sr)
            _place(out, nwave, t)
            _place(out, blast, t + lead)
        else:
            _place(out, blast, t)
        t += int(_r(rng, gap_lo, gap_hi) * sr)
        if t >= len(out) - sr // 10:
            break
    return out


def firecracker(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    n = 1 if rng.random() < 0.4 else int(rng.integers(3, 25))
    tp_lo, tp_hi = _widen(0.06, 0.3, variant)
    t = 0
    for _ in range(n):
        pop = friedlander(sr, _r(rng, tp_lo, tp_hi) * 1e-3, _r(rng, 1.0, 3.0), 0.02)
        nb = int(_r(rng, 5, 40) * 1e-3 * sr)  # paper and debris
        debris = rng.standard_normal(nb) * np.exp(-np.arange(nb) / (nb / 4)) * _r(rng, 0.02, 0.2)
        _place(out, pop, t, _r(rng, 0.4, 1.0))
        _place(out, highpass(debris, sr, 1500.0), t)
        t += int(rng.exponential(_r(rng, 0.03, 0.12)) * sr) + int(0.01 * sr)
        if t >= len(out):
            break
    return out


def fireworks(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    """A slice of a display: launch whoosh, shell burst (a long, low blast), crackle."""
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    kind = rng.choice(["burst", "crackle", "salute", "whistle"])
    if kind in ("burst", "salute"):
        tp_lo, tp_hi = _widen(3.0, 15.0, variant)
        boom = friedlander(sr, _r(rng, tp_lo, tp_hi) * 1e-3, _r(rng, 0.5, 2.0), 0.3)
        _place(out, boom, 0)
        if kind == "burst":  # stars and crackle after the burst
            rate = _r(rng, *_widen(40.0, 300.0, variant))
            start = int(_r(rng, 0.05, 0.3) * sr)
            for _ in range(int(rate * 1.0)):
                at = start + int(rng.uniform(0, 0.9) * sr)
                pop = friedlander(sr, _r(rng, 0.04, 0.2) * 1e-3, 2.0, 0.004)
                _place(out, pop, at, _r(rng, 0.02, 0.3))
    elif kind == "crackle":
        rate = _r(rng, *_widen(60.0, 400.0, variant))
        for _ in range(int(rate * 1.2)):
            at = int(rng.uniform(0, 1.2) * sr)
            pop = friedlander(sr, _r(rng, 0.04, 0.2) * 1e-3, 2.0, 0.004)
            _place(out, pop, at, _r(rng, 0.1, 1.0))
        # The first pop is the onset.
        _place(out, friedlander(sr, 0.1e-3, 2.0, 0.004), 0)
    else:  # whistle / whoosh, then a burst
        n = int(_r(rng, 0.3, 0.9) * sr)
        f = np.linspace(_r(rng, 800, 2500), _r(rng, 1500, 4000), n)
        tone = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(n) * 0.3
        tone += bandpass(rng.standard_normal(n), sr, 500.0, 5000.0) * np.hanning(n) * 0.2
        _place(out, tone, 0)
        boom = friedlander(sr, _r(rng, 3.0, 12.0) * 1e-3, 1.0, 0.3)
        _place(out, boom, n)
    return out


def backfire(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    """Combustion pops exciting the exhaust pipe's quarter-wave resonances, over engine rumble."""
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    length_lo, length_hi = _widen(0.8, 3.0, variant)
    pipe_m = _r(rng, length_lo, length_hi)
    f0 = 343.0 / (4.0 * pipe_m)
    harmonics = np.array([1, 3, 5, 7, 9], dtype=float) * f0 * _r(rng, 0.95, 1.05)
    t = 0
    for _ in range(int(rng.integers(1, 4))):
        drive = friedlander(sr, _r(rng, 0.8, 4.0) * 1e-3, _r(rng, 0.5, 2.0), 0.05)
        ring = modes(
            sr,
            harmonics,
            np.array([_r(rng, 0.02, 0.12) for _ in harmonics]),
            np.array([1.0, 0.6, 0.4, 0.25, 0.15]) * _r(rng, 0.5, 2.0),
            0.4,
            rng,
        )
        pop = np.convolve(drive, ring)[: int(0.4 * sr)]
        _place(out, _norm(pop), t, _r(rng, 0.4, 1.0))
        t += int(_r(rng, 0.05, 0.4) * sr)
    fire_hz = _r(rng, 20.0, 80.0)
    tt = np.arange(len(out)) / sr
    rumble = sum(np.sin(2 * np.pi * k * fire_hz * tt + rng.uniform(0, 6.3)) / k for k in (1, 2, 3))
    rumble = rumble + lowpass(rng.standard_normal(len(out)), sr, 400.0)
    return out + rumble * _r(rng, 0.01, 0.1)


def door_slam(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    """A soft, millisecond-long contact force into a door panel's low modes, then the latch."""
    sr = SYNTH_RATE_HZ
    d_lo, d_hi = _widen(1.0, 6.0, variant)
    force = force_pulse(sr, _r(rng, d_lo, d_hi) * 1e-3)
    nm = int(rng.integers(3, 8))
    f_lo, f_hi = _widen(40.0, 900.0, variant)
    freqs = np.sort(np.exp(rng.uniform(np.log(f_lo), np.log(f_hi), nm)))
    panel = modes(sr, freqs, rng.uniform(0.01, 0.12, nm), rng.uniform(0.2, 1.0, nm), 0.6, rng)
    out = np.convolve(force, panel)[: int(1.2 * sr)]
    out = np.pad(out, (0, int(1.2 * sr) - len(out)))
    latch = modes(
        sr,
        rng.uniform(1500, 5000, 3),
        rng.uniform(0.002, 0.01, 3),
        np.ones(3),
        0.05,
        rng,
    )
    _place(out, latch * _r(rng, 0.05, 0.4) * np.max(np.abs(out)), int(_r(rng, 0.005, 0.08) * sr))
    return out


def knock(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    nm = int(rng.integers(2, 6))
    f_lo, f_hi = _widen(150.0, 1500.0, variant)
    freqs = np.exp(rng.uniform(np.log(f_lo), np.log(f_hi), nm))
    decays = rng.uniform(0.005, 0.04, nm)
    amps = rng.uniform(0.3, 1.0, nm)
    period = _r(rng, *_widen(0.12, 0.35, variant))
    t = 0
    for _ in range(int(rng.integers(1, 6))):
        hit = np.convolve(
            force_pulse(sr, _r(rng, 0.4, 2.0) * 1e-3), modes(sr, freqs, decays, amps, 0.15, rng)
        )
        _place(out, _norm(hit), t, _r(rng, 0.6, 1.0))
        t += int(period * _r(rng, 0.85, 1.15) * sr)
    return out


def keys(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    """Dropped keys: bouncing impacts on high, long-ringing metal partials."""
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    t = 0
    gap = _r(rng, 0.05, 0.2)
    f_lo, f_hi = _widen(1500.0, 9000.0, variant)
    for _ in range(int(rng.integers(2, 10))):
        nm = int(rng.integers(3, 8))
        ring = modes(
            sr,
            rng.uniform(f_lo, f_hi, nm),
            rng.uniform(0.02, 0.15, nm),
            rng.uniform(0.2, 1.0, nm),
            0.3,
            rng,
        )
        hit = np.convolve(force_pulse(sr, _r(rng, 0.05, 0.3) * 1e-3), ring)
        _place(out, _norm(hit), t, _r(rng, 0.2, 1.0))
        t += int(gap * sr * _r(rng, 0.3, 1.2))
        gap *= _r(rng, 0.5, 0.95)
    return out


def drawer(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    """Sliding noise, then the stop thump and the contents rattling."""
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    slide_n = int(_r(rng, *_widen(0.1, 0.5, variant)) * sr)
    slide = bandpass(rng.standard_normal(slide_n), sr, _r(rng, 200, 800), _r(rng, 1500, 5000))
    rough = 1.0 + 0.5 * np.sin(2 * np.pi * _r(rng, 10, 40) * np.arange(slide_n) / sr)
    slide = slide * rough * np.hanning(slide_n) * _r(rng, 0.05, 0.3)
    nm = 4
    thump = np.convolve(
        force_pulse(sr, _r(rng, 1.0, 5.0) * 1e-3),
        modes(sr, rng.uniform(80, 600, nm), rng.uniform(0.01, 0.06, nm), np.ones(nm), 0.3, rng),
    )
    if rng.random() < 0.5:  # opening: the slide comes after the catch
        _place(out, _norm(thump), 0)
        _place(out, slide, int(0.02 * sr))
    else:  # closing: the onset is the slide, the thump ends it
        _place(out, slide, 0)
        _place(out, _norm(thump), slide_n)
    for _ in range(int(rng.integers(0, 5))):
        rat = modes(
            sr, rng.uniform(1000, 6000, 2), rng.uniform(0.005, 0.03, 2), np.ones(2), 0.05, rng
        )
        _place(out, rat, int(_r(rng, 0.01, 0.3) * sr) + slide_n, _r(rng, 0.05, 0.3))
    return out


def hammer(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    """Construction: hammer or pile blows at a working cadence, metal and wood ringing."""
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    nm = int(rng.integers(3, 7))
    metal = rng.random() < 0.5
    f_lo, f_hi = (400.0, 5000.0) if metal else (100.0, 1200.0)
    f_lo, f_hi = _widen(f_lo, f_hi, variant)
    freqs = rng.uniform(f_lo, f_hi, nm)
    decays = rng.uniform(0.05, 0.4, nm) if metal else rng.uniform(0.01, 0.06, nm)
    period = _r(rng, 0.3, 1.2)
    t = 0
    while t < len(out):
        hit = np.convolve(
            force_pulse(sr, _r(rng, 0.2, 2.0) * 1e-3),
            modes(sr, freqs, decays, rng.uniform(0.3, 1.0, nm), 0.5, rng),
        )
        _place(out, _norm(hit), t, _r(rng, 0.7, 1.0))
        t += int(period * _r(rng, 0.9, 1.1) * sr)
    return out


def _voiced(
    rng: np.random.Generator, n: int, f0: float, formants: list[float], breath: float
) -> np.ndarray:
    sr = SYNTH_RATE_HZ
    jitter = 1.0 + 0.02 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n)
    phase = np.cumsum(f0 * jitter / sr)
    src = np.diff(np.floor(phase), prepend=0.0)  # glottal pulse train
    src = lowpass(src, sr, 3000.0) + breath * rng.standard_normal(n) * 0.05
    out = np.zeros(n)
    for k, fc in enumerate(formants):
        bw = 80.0 + 40.0 * k
        b, a = sps.iirpeak(fc, fc / bw, fs=sr)
        out += sps.lfilter(b, a, src) / (k + 1)
    return out


def speech(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    f0 = _r(rng, *_widen(85.0, 260.0, variant))
    t = 0
    while t < len(out):
        syl = int(_r(rng, 0.12, 0.3) * sr)
        form = [_r(rng, 300, 900), _r(rng, 900, 2500), _r(rng, 2300, 3300)]
        v = _voiced(rng, syl, f0 * _r(rng, 0.85, 1.15), form, _r(rng, 0.0, 1.0))
        att = int(_r(rng, 0.01, 0.05) * sr)
        env = np.minimum(1.0, np.arange(syl) / att) * np.hanning(syl) ** 0.3
        _place(out, v * env, t, _r(rng, 0.4, 1.0))
        if rng.random() < 0.3:  # a plosive or fricative before the next syllable
            nb = int(_r(rng, 0.01, 0.06) * sr)
            fr = highpass(rng.standard_normal(nb), sr, 2000.0) * np.hanning(nb) * _r(rng, 0.05, 0.5)
            _place(out, fr, t + syl)
        t += syl + int(_r(rng, 0.02, 0.12) * sr)
    return out


def cough(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    t = 0
    for _ in range(int(rng.integers(1, 4))):
        burst_n = int(_r(rng, 0.03, 0.08) * sr)
        att = int(_r(rng, *_widen(0.003, 0.015, variant)) * sr)
        env = np.minimum(1.0, np.arange(burst_n) / max(att, 1)) * np.exp(
            -np.arange(burst_n) / (burst_n / 3)
        )
        burst = (
            bandpass(rng.standard_normal(burst_n), sr, _r(rng, 200, 500), _r(rng, 2000, 5000)) * env
        )
        tail_n = int(_r(rng, 0.1, 0.3) * sr)
        tail = _voiced(
            rng, tail_n, _r(rng, 100, 300), [_r(rng, 400, 800), _r(rng, 1200, 2000)], 1.0
        )
        tail *= np.exp(-np.arange(tail_n) / (tail_n / 3)) * 0.5
        _place(out, _norm(burst), t)
        _place(out, tail, t + burst_n // 2, float(np.max(np.abs(burst))) * 0.0 + 0.4)
        t += burst_n + tail_n + int(_r(rng, 0.05, 0.2) * sr)
    return out


def laughter(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    f0 = _r(rng, *_widen(180.0, 420.0, variant))
    rate = _r(rng, 3.5, 6.5)
    t = 0
    while t < len(out):
        syl = int(_r(rng, 0.06, 0.14) * sr)
        v = _voiced(
            rng, syl, f0 * _r(rng, 0.9, 1.1), [_r(rng, 600, 1000), _r(rng, 1100, 1700)], 2.0
        )
        env = np.hanning(syl) ** 0.5
        _place(out, v * env, t, _r(rng, 0.5, 1.0))
        t += int(sr / rate)
    return out


def office(rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    """Typing, mouse and stapler clicks, a phone ring."""
    sr = SYNTH_RATE_HZ
    out = np.zeros(int(1.2 * sr))
    kind = rng.choice(["typing", "stapler", "phone"])
    if kind == "typing":
        rate = _r(rng, *_widen(3.0, 10.0, variant))
        t = 0
        while t < len(out):
            click = modes(
                sr, rng.uniform(1500, 7000, 3), rng.uniform(0.002, 0.01, 3), np.ones(3), 0.03, rng
            )
            _place(out, click, t, _r(rng, 0.3, 1.0))
            t += int(rng.exponential(1.0 / rate) * sr) + int(0.04 * sr)
    elif kind == "stapler":
        hit = np.convolve(
            force_pulse(sr, _r(rng, 0.5, 2.0) * 1e-3),
            modes(sr, rng.uniform(600, 4000, 4), rng.uniform(0.005, 0.03, 4), np.ones(4), 0.1, rng),
        )
        _place(out, _norm(hit), 0)
        _place(out, _norm(hit), int(_r(rng, 0.05, 0.15) * sr), 0.5)
    else:
        tt = np.arange(int(_r(rng, 0.4, 1.0) * sr)) / sr
        f1, f2 = _r(rng, 400, 1200), _r(rng, 1200, 2500)
        ring = (np.sin(2 * np.pi * f1 * tt) + np.sin(2 * np.pi * f2 * tt)) * (
            np.sin(2 * np.pi * 20 * tt) > 0
        )
        att = np.minimum(1.0, tt / 0.005)
        _place(out, ring * att, 0)
    return out


SOURCES: dict[str, Callable[[np.random.Generator, str], np.ndarray]] = {
    "gunshot": lambda rng, v: gunshot(rng, v, close=False),
    "gunshot_close": lambda rng, v: gunshot(rng, v, close=True),
    "fireworks": fireworks,
    "firecracker": firecracker,
    "backfire": backfire,
    "door_slam": door_slam,
    "knock": knock,
    "keys": keys,
    "drawer": drawer,
    "hammer": hammer,
    "speech": speech,
    "cough": cough,
    "laughter": laughter,
    "office": office,
}

#: Distance ranges (m) at which each family is heard by a street sensor.
DISTANCE_M: dict[str, tuple[float, float]] = {
    "gunshot": (50.0, 900.0),
    "gunshot_close": (2.0, 50.0),
    "fireworks": (80.0, 1200.0),
    "firecracker": (5.0, 400.0),
    "backfire": (5.0, 400.0),
    "door_slam": (2.0, 150.0),
    "knock": (1.0, 40.0),
    "keys": (0.5, 15.0),
    "drawer": (0.5, 15.0),
    "hammer": (5.0, 300.0),
    "speech": (0.5, 20.0),
    "cough": (0.5, 20.0),
    "laughter": (0.5, 20.0),
    "office": (0.3, 10.0),
}


def propagate(x: np.ndarray, rng: np.random.Generator, distance_m: float) -> np.ndarray:
    """The path from source to sensor, at SYNTH_RATE_HZ.

    - air absorption, growing with frequency squared and with distance (a low-pass whose
      corner falls with distance; ISO 9613-1 gives ~0.01-0.05 dB/m at 4 kHz outdoors);
    - a ground reflection (image source) delayed by 2 h_s h_r / (d c);
    - discrete echoes from facades, 5-400 ms late, and a diffuse exponential tail (RT60);
    - the sensor's own low-frequency roll-off.
    """
    sr = SYNTH_RATE_HZ
    c = 343.0
    n = len(x)
    alpha_db_per_m_4k = _r(rng, 0.01, 0.05)
    # Frequency where the absorbed loss reaches ~6 dB: alpha(f) = a4k (f/4k)^2.
    corner = 4000.0 * np.sqrt(6.0 / max(alpha_db_per_m_4k * distance_m, 1e-6))
    y = lowpass(x, sr, float(np.clip(corner, 300.0, 11000.0)), order=1)
    if distance_m > 100.0 or rng.random() < 0.5:
        # Excess attenuation: ground impedance and diffraction around buildings remove the
        # highs far faster than air alone beyond ~100 m.
        y = lowpass(
            y, sr, _r(rng, 400.0, 4000.0) if distance_m > 100.0 else _r(rng, 1500.0, 8000.0)
        )
    hs, hr = _r(rng, 0.5, 2.0), _r(rng, 2.0, 12.0)
    delay = int(2 * hs * hr / max(distance_m, 0.3) / c * sr)
    out = y.copy()
    refl = _r(rng, 0.5, 0.95)
    if 0 < delay < n:
        out[delay:] += refl * y[: n - delay]
    for _ in range(int(rng.integers(0, 8))):
        d = int(_r(rng, 0.005, 0.4) * sr)
        if d < n:
            out[d:] += _r(rng, 0.05, 0.6) * np.exp(-d / sr / 0.3) * lowpass(y, sr, 3000.0)[: n - d]
    rt60 = _r(rng, 0.15, 2.0)
    tail_len = int(min(rt60, 1.2) * sr)
    tt = np.arange(tail_len) / sr
    ir = rng.standard_normal(tail_len) * np.exp(-6.9 * tt / rt60)
    ir = lowpass(ir, sr, _r(rng, 1000.0, 5000.0))
    ir[: int(0.005 * sr)] = 0.0
    rev = sps.fftconvolve(y, ir)[:n]
    rev_level = _r(rng, 0.03, 0.4) * np.max(np.abs(out)) / (np.max(np.abs(rev)) + 1e-20)
    out = out + rev * rev_level
    return highpass(out, sr, _r(rng, 15.0, 120.0), order=1)


def render(family: str, rng: np.random.Generator, variant: str = "train") -> np.ndarray:
    """A propagated example of ``family`` at SYNTH_RATE_HZ, peak-normalised, onset at 0."""
    dry = SOURCES[family](rng, variant)
    lo, hi = DISTANCE_M[family]
    if variant != "train":
        lo, hi = lo * 0.7, hi * 1.3
    d = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return _norm(propagate(dry, rng, d))
