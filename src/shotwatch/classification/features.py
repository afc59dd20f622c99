"""Physically motivated features of one impulse (pure functions on arrays).

A muzzle blast is a shock-formed pressure pulse: a near-instant rise, a positive phase of a
fraction of a millisecond to a few milliseconds (longer with charge and with distance), a
negative phase (the Friedlander / N-wave shape), then only what the surroundings add: a ground
reflection, discrete echoes from buildings and a diffuse reverberant tail whose spectrum darkens
with time. The common confusers differ in measurable ways:

- door slams, drawers and backfires are driven by a slower force or combustion pulse (rise of
  milliseconds) into lightly damped resonances (panels, exhaust pipes): tonal, ringing, low;
- knocks and construction impacts repeat at a human or machine cadence and ring at the
  resonances of wood or metal;
- dropped keys are sparse, high, metallic, long-ringing partials;
- fireworks crackle is dense trains of tiny, very short pops; aerial shells are long, low booms;
- speech, coughs and laughter are not impulsive: slow attack, voicing (periodicity), syllabic
  modulation.

Every feature is a ratio, a time or a shape, never an absolute level: sensors are not
calibrated alike and the distance is unknown. ``FEATURE_NAMES`` fixes the order the model
uses; the model file records the list, and loading fails if the two disagree.
"""

from __future__ import annotations

import numpy as np

from shotwatch.classification.dsp import ANALYSIS_RATE_HZ, bandpass, db, frame_energy, highpass

PRE_S = 0.1
POST_S = 0.9
#: Octave-ish bands (Hz) whose share of the early energy is a feature.
BANDS_HZ: tuple[tuple[float, float], ...] = (
    (20.0, 150.0),
    (150.0, 300.0),
    (300.0, 600.0),
    (600.0, 1200.0),
    (1200.0, 2400.0),
    (2400.0, 4000.0),
    (4000.0, 6000.0),
)

#: Bands (Hz) in which the onset's peak is also measured over the same band's noise: a weak
#: distant shot over a loud low-frequency background (wind, traffic rumble) can stand well
#: clear of the noise in the middle band while its broadband SNR is small.
SNR_BANDS_HZ: tuple[tuple[float, float], ...] = ((150.0, 600.0), (600.0, 1500.0), (1500.0, 4000.0))

FEATURE_NAMES: tuple[str, ...] = (
    "snr_db",
    "rise_ms",
    "pos_phase_ms",
    "polarity_asym",
    "decay_10db_ms",
    "decay_20db_ms",
    "decay_slope_db_per_s",
    "e_0_10ms_db",
    "e_10_50ms_db",
    "e_50_200ms_db",
    "e_200_900ms_db",
    "tail_to_noise_db",
    "centroid_hz",
    "bandwidth_hz",
    "rolloff85_hz",
    *(f"band_{int(lo)}_{int(hi)}_db" for lo, hi in BANDS_HZ),
    "flatness_db",
    "tonality_excess_db",
    "crest_db",
    "log_kurtosis",
    "duration_ms",
    "n_impulses",
    "impulse_interval_ms",
    "impulse_interval_cv",
    "zcr_20ms_per_ms",
    "periodicity_excess",
    "clip_fraction",
    "late_centroid_hz",
    "centroid_drop_hz",
    "pre_activity_db",
    "pos_phase_lf_ms",
    "pop_rate_per_s",
    "pop_share",
    *(f"snr_{int(lo)}_{int(hi)}_db" for lo, hi in SNR_BANDS_HZ),
)


def extract_snippet(x: np.ndarray, onset: int, rate_hz: int = ANALYSIS_RATE_HZ) -> np.ndarray:
    """The window [onset - PRE_S, onset + POST_S) of ``x``, zero-padded at the edges."""
    pre = round(PRE_S * rate_hz)
    post = round(POST_S * rate_hz)
    out = np.zeros(pre + post)
    a = onset - pre
    b = onset + post
    sa = max(a, 0)
    sb = min(b, len(x))
    if sb > sa:
        out[sa - a : sb - a] = x[sa:sb]
    return out


def _spectrum(
    seg: np.ndarray, rate_hz: int, noise_psd: np.ndarray | None, nfft: int
) -> tuple[np.ndarray, np.ndarray]:
    w = np.hanning(len(seg))
    spec = np.abs(np.fft.rfft(seg * w, nfft)) ** 2 / max(np.sum(w**2), 1e-12)
    if noise_psd is not None:
        spec = np.maximum(spec - noise_psd, 0.01 * spec)
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate_hz)
    return freqs, spec


def _flat_top_fraction(x: np.ndarray) -> float:
    """Share of samples in runs of 3+ samples stuck at the peak (clipping), when the peak is
    near full scale; a waveform that merely touches its peak once scores 0."""
    a = np.abs(x)
    peak = float(a.max()) if a.size else 0.0
    if peak < 0.5:
        return 0.0
    padded = np.concatenate([[0], (a >= 0.999 * peak).astype(np.int8), [0]])
    d = np.diff(padded)
    runs = np.flatnonzero(d == -1) - np.flatnonzero(d == 1)
    return float(runs[runs >= 3].sum()) / len(a)


def _periodicity(v: np.ndarray, lo_lag: int, hi_lag: int) -> float:
    """Largest normalised autocorrelation over lags [lo_lag, hi_lag) (voicing strength)."""
    v = v - v.mean()
    if len(v) <= hi_lag:
        return 0.0
    ac = np.correlate(v, v, mode="full")[len(v) - 1 :]
    return float(np.max(ac[lo_lag:hi_lag]) / ac[0]) if ac[0] > 0 else 0.0


def pulse_features(snippet: np.ndarray, rate_hz: int = ANALYSIS_RATE_HZ) -> np.ndarray:
    """Feature vector (order ``FEATURE_NAMES``) of a snippet made by :func:`extract_snippet`."""
    raw = np.asarray(snippet, dtype=np.float64)
    pre = round(PRE_S * rate_hz)
    ms = rate_hz / 1000.0
    clip_fraction = _flat_top_fraction(raw)
    x = highpass(raw, rate_hz, 20.0)
    y = highpass(raw, rate_hz, 100.0)
    post = y[pre:]
    noise = y[: pre - int(2 * ms)]
    nz = noise[noise != 0.0]
    # Noise from the pre-onset window; where that is missing (start of a file, digital
    # silence), from the quietest tenth of the snippet's 10-ms frames instead.
    quiet = float(np.percentile(frame_energy(y, int(10 * ms)), 10))
    noise_ms = float(np.mean(nz**2)) if nz.size > pre // 2 else quiet
    tiny = max(noise_ms, float(np.mean(post**2)) * 1e-6, 1e-16)

    # --- envelope (1 ms frames) and timing --------------------------------------------------
    f1 = int(ms)
    env = frame_energy(post, f1)  # 1-ms mean square
    env_db = db(env, tiny)
    peak_i = int(np.argmax(env[:30])) if env.size >= 30 else int(np.argmax(env))
    peak_e = float(env[peak_i])
    snr_db = float(db(peak_e, tiny) - db(tiny, tiny * 1e-3))

    early = np.abs(post[: int(30 * ms)])
    amp_peak_i = int(np.argmax(early))
    amp_peak = float(early[amp_peak_i]) + 1e-20
    start_i = int(np.argmax(early >= 0.1 * amp_peak))
    rise_i = int(np.argmax(early >= 0.9 * amp_peak))
    rise_ms = (rise_i - start_i) / ms
    # First lobe: from the start to the next zero crossing after the first big extremum.
    sgn = np.sign(post[rise_i])
    after = post[rise_i : rise_i + int(20 * ms)] * sgn
    zc = int(np.argmax(after <= 0)) if np.any(after <= 0) else len(after)
    pos_phase_ms = (rise_i - start_i + zc) / ms
    first = post[start_i : start_i + int(10 * ms)]
    mx, mn = float(np.max(first)), float(-np.min(first))
    polarity_asym = (mx - mn) / (mx + mn + 1e-20)
    if sgn < 0:
        polarity_asym = -polarity_asym

    smooth = np.convolve(env, np.ones(10) / 10.0, mode="same")  # 10-ms smoothing
    sm_db = db(smooth, tiny)
    top = float(sm_db[peak_i : peak_i + 30].max()) if sm_db.size > peak_i else float(sm_db.max())

    def _decay(drop_db: float) -> float:
        below = np.flatnonzero(sm_db[peak_i:] < top - drop_db)
        return float(below[0]) if below.size else float(len(sm_db) - peak_i)

    decay_10 = _decay(10.0)
    decay_20 = _decay(20.0)
    seg_db = env_db[peak_i : peak_i + 300]
    floor_db = float(db(tiny, tiny * 1e-3))
    keep = seg_db > floor_db + 3.0
    if np.count_nonzero(keep) >= 5:
        t_ms = np.flatnonzero(keep).astype(np.float64)
        slope = float(np.polyfit(t_ms, seg_db[keep], 1)[0]) * 1000.0
    else:
        slope = -1000.0
    slope = float(np.clip(slope, -2000.0, 100.0))

    # --- energy distribution over time (noise removed) --------------------------------------
    def _e(a_ms: float, b_ms: float) -> float:
        s = post[int(a_ms * ms) : int(b_ms * ms)]
        return max(float(np.sum(s**2)) - noise_ms * len(s), 0.0)

    parts = [_e(0, 10), _e(10, 50), _e(50, 200), _e(200, 900)]
    total = sum(parts) + 1e-20
    part_db = [float(db(p / total, 1e-6)) for p in parts]
    tail = post[int(300 * ms) :]
    tail_to_noise = float(db(np.mean(tail**2), tiny) - db(tiny, tiny * 1e-3))

    # --- spectrum of the first 50 ms, noise subtracted --------------------------------------
    nfft = 1024
    noise_seg = x[: int(50 * ms)]
    _, noise_psd = _spectrum(noise_seg, rate_hz, None, nfft)
    xpost = x[pre:]
    freqs, spec = _spectrum(xpost[: int(50 * ms)], rate_hz, noise_psd, nfft)
    band = (freqs >= 20.0) & (freqs <= 6000.0)
    f_b, s_b = freqs[band], spec[band]
    s_sum = float(s_b.sum()) + 1e-30
    centroid = float(np.sum(f_b * s_b) / s_sum)
    bandwidth = float(np.sqrt(np.sum(((f_b - centroid) ** 2) * s_b) / s_sum))
    cum = np.cumsum(s_b) / s_sum
    rolloff = float(f_b[min(int(np.searchsorted(cum, 0.85)), len(f_b) - 1)])
    band_db = []
    for lo, hi in BANDS_HZ:
        m = (f_b >= lo) & (f_b < hi)
        band_db.append(float(db(np.sum(s_b[m]) / s_sum, 1e-6)))

    _, spec100 = _spectrum(xpost[: int(100 * ms)], rate_hz, noise_psd, nfft)
    s100 = spec100[band] + 1e-30
    flatness = float(db(np.exp(np.mean(np.log(s100))) / np.mean(s100), 1e-12))
    _, spec200 = _spectrum(xpost[: int(200 * ms)], rate_hz, None, 4096)
    f200 = np.fft.rfftfreq(4096, 1.0 / rate_hz)
    m200 = (f200 >= 40.0) & (f200 <= 5000.0)
    s200 = spec200[m200] + 1e-30
    tonality_post = float(db(np.max(s200)) - db(np.median(s200)))
    # Tonality and voicing are measured as the excess over the noise before the onset, so a
    # humming or tonal background (HVAC, engines) is not mistaken for a ringing source.
    _, spec_pre = _spectrum(x[: pre - int(2 * ms)], rate_hz, None, 4096)
    s_pre = spec_pre[m200] + 1e-30
    tonality = tonality_post - float(db(np.max(s_pre)) - db(np.median(s_pre)))

    late = xpost[int(50 * ms) : int(300 * ms)]
    _, spec_late = _spectrum(late, rate_hz, None, nfft)
    sl = spec_late[band]
    late_centroid = float(np.sum(f_b * sl) / (np.sum(sl) + 1e-30))

    # --- impulsiveness ----------------------------------------------------------------------
    first100 = post[: int(100 * ms)]
    rms100 = float(np.sqrt(np.mean(first100**2))) + 1e-20
    crest = float(20.0 * np.log10(np.max(np.abs(first100)) / rms100 + 1e-20))
    c = first100 - first100.mean()
    kurt = float(np.mean(c**4) / (np.mean(c**2) ** 2 + 1e-30))
    log_kurt = float(np.log10(max(kurt, 1e-3)))
    above = sm_db > top - 20.0
    duration_ms = float(np.count_nonzero(above))

    # --- multi-impulse structure: further sharp onsets in the window ------------------------
    f2 = int(2 * ms)
    e2 = frame_energy(post, f2)
    e2_db = db(e2, tiny)
    ref = np.convolve(e2, np.ones(25) / 25.0, mode="full")[: len(e2)]  # previous 50 ms mean
    ref_prev = np.concatenate([[tiny], ref[:-1]])
    jump = e2_db - db(ref_prev, tiny)
    peak2_db = float(e2_db[:15].max())
    cand = np.flatnonzero((jump > 6.0) & (e2_db > peak2_db - 20.0))
    cand = cand[cand > 10]  # later than 20 ms after the onset
    onsets: list[int] = [0]
    for cidx in cand:
        if cidx - onsets[-1] >= 10:  # at least 20 ms apart
            onsets.append(int(cidx))
    n_imp = float(len(onsets) - 1)
    if len(onsets) >= 3:
        iv = np.diff(onsets).astype(np.float64) * 2.0
        interval = float(np.median(iv))
        interval_cv = float(np.std(iv) / (np.mean(iv) + 1e-9))
    elif len(onsets) == 2:
        interval = float(onsets[1] * 2.0)
        interval_cv = 0.0
    else:
        interval = 900.0
        interval_cv = 0.0

    z = post[: int(20 * ms)]
    zcr = float(np.count_nonzero(np.diff(np.signbit(z)))) / 20.0
    # Voicing: normalised autocorrelation peak over pitch lags 2.5-12.5 ms in 20-220 ms.
    v = post[int(20 * ms) : int(220 * ms)]
    lo_l, hi_l = int(2.5 * ms), int(12.5 * ms)
    periodicity = _periodicity(v, lo_l, hi_l) - _periodicity(y[: pre - int(2 * ms)], lo_l, hi_l)

    # Positive phase at low frequencies (20-Hz high-pass only): the long, low blast of a
    # fireworks shell (several ms) is cut short by the 100-Hz filter used above.
    xp = xpost[: int(60 * ms)]
    xi = int(np.argmax(np.abs(xp[: int(30 * ms)])))
    xs = np.sign(xp[xi]) if xp[xi] != 0 else 1.0
    x_start = xi - int(np.argmax((xp[xi::-1] * xs) <= 0)) if np.any(xp[xi::-1] * xs <= 0) else 0
    x_after = xp[xi:] * xs
    x_end = xi + (int(np.argmax(x_after <= 0)) if np.any(x_after <= 0) else len(x_after))
    pos_phase_lf = (x_end - x_start) / ms

    # Crackle: sharp pops riding on the 1-ms envelope, counted after the first 20 ms. A pop
    # is a frame 6 dB over both neighbours and within 30 dB of the main peak (so the measure
    # does not depend on level or distance). Fireworks crackle and firecracker strings give
    # dozens a second; a blast's reverberant tail gives few.
    e_db = env_db[int(20 * ms) // f1 :] if f1 > 0 else env_db
    if e_db.size >= 3:
        mid = e_db[1:-1]
        is_pop = (mid > e_db[:-2] + 6.0) & (mid > e_db[2:] + 6.0) & (mid > top - 30.0)
        n_pop = int(np.count_nonzero(is_pop))
        pop_share = float(np.sum(10 ** (mid[is_pop] / 10))) / float(np.sum(10 ** (mid / 10)))
    else:
        n_pop, pop_share = 0, 0.0
    pop_rate = n_pop / max(e_db.size * f1 / rate_hz, 1e-3)

    # Peak 2-ms energy of the first 20 ms over the median 2-ms energy before the onset, per band.
    band_snr = []
    for lo, hi in SNR_BANDS_HZ:
        e = frame_energy(bandpass(x, rate_hz, lo, hi), f2)
        n_pre = (pre - int(2 * ms)) // f2
        e_pre = e[:n_pre]
        e_pre = e_pre[e_pre > 0.0]
        noise_b = float(np.median(e_pre)) if e_pre.size >= 5 else float(np.percentile(e, 10))
        peak_b = float(e[pre // f2 : pre // f2 + 10].max()) if e.size > pre // f2 else 0.0
        noise_b = noise_b if noise_b > 1e-30 else 1e-30
        band_snr.append(float(db(peak_b, 1e-30) - db(noise_b, 1e-30)))

    pre_seg = y[: pre - int(2 * ms)]
    pre_e = frame_energy(pre_seg, int(10 * ms))
    pre_activity = (
        float(db(np.max(pre_e), tiny) - db(np.median(pre_e), tiny)) if pre_e.size else 0.0
    )

    vec = np.array(
        [
            snr_db,
            rise_ms,
            pos_phase_ms,
            polarity_asym,
            decay_10,
            decay_20,
            slope,
            *part_db,
            tail_to_noise,
            centroid,
            bandwidth,
            rolloff,
            *band_db,
            flatness,
            tonality,
            crest,
            log_kurt,
            duration_ms,
            n_imp,
            interval,
            interval_cv,
            zcr,
            periodicity,
            clip_fraction,
            late_centroid,
            centroid - late_centroid,
            pre_activity,
            pos_phase_lf,
            pop_rate,
            pop_share,
            *band_snr,
        ],
        dtype=np.float64,
    )
    return np.nan_to_num(vec, nan=0.0, posinf=1e6, neginf=-1e6)
