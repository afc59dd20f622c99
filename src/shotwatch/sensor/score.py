"""First-stage score on the sensor, in [0, 1] (ADR 0065).

:func:`classifier_score` is the default: the pulse-level gunfire probability of the
classifier of issue 3 (``shotwatch.classification``), computed on the report's own snippet.
:func:`impulsiveness_score` is a deliberately simple, documented alternative (``score =
"impulsiveness"`` in the agent config) for sensors that must not carry the model; the pipeline
takes any ``Scorer`` callable.

Three measurements on the 2-s snippet around the pick, each mapped to [0, 1] and averaged:

* **onset contrast**: peak level in the 10 ms after the onset over the RMS of the second before
  it (a muzzle blast rises 20-50 dB above street noise within a millisecond);
* **rise time**: samples from the onset to the envelope peak (short for impulses, long for a
  door slam's or a voice's build-up);
* **decay**: energy in the first 50 ms after the onset over the energy of the next 250 ms
  (impulses die away; engines and speech do not).

The weights are round numbers, not fitted to any recording (nothing here is tuned to a data
set): it ranks, it does not decide. Decisions belong to the server's classifier and a person.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Scorer = Callable[[np.ndarray, int, int], float]


def _squash(x: float, mid: float, width: float) -> float:
    return 1.0 / (1.0 + math.exp(-(x - mid) / width))


def impulsiveness_score(snippet: np.ndarray, sample_rate_hz: int, onset_index: int) -> float:
    """Score of the snippet whose onset is at sample ``onset_index``."""
    x = np.asarray(snippet, dtype=np.float64)
    sr = int(sample_rate_hz)
    i = min(max(int(onset_index), 1), x.size - 1)
    pre = x[max(0, i - sr) : i]
    n10 = max(1, sr // 100)
    after = x[i : i + n10]
    if after.size == 0:
        return 0.0
    noise_rms = float(np.sqrt(np.mean(pre * pre))) if pre.size else 0.0
    peak = float(np.max(np.abs(after)))
    contrast_db = 20.0 * math.log10(max(peak, 1e-9) / max(noise_rms, 1e-9))
    rise_s = int(np.argmax(np.abs(after))) / sr
    e_head = float(np.sum(x[i : i + sr // 20] ** 2))
    tail = x[i + sr // 20 : i + 3 * sr // 10]
    e_tail = float(np.sum(tail**2)) if tail.size else 0.0
    decay_db = 10.0 * math.log10(max(e_head, 1e-12) / max(e_tail * (50 / 250), 1e-12))
    s_contrast = _squash(contrast_db, 20.0, 4.0)
    s_rise = _squash(-rise_s * 1000.0, -2.0, 0.8)
    s_decay = _squash(decay_db, 6.0, 3.0)
    return float(np.clip((s_contrast + s_rise + s_decay) / 3.0, 0.0, 1.0))


def _analysis_window(
    snippet: np.ndarray, sample_rate_hz: int, onset_index: int
) -> tuple[np.ndarray, int]:
    """The snippet resampled to the analysis rate, cut to what the pulse features read
    (``PRE_S`` before to ``POST_S`` after the onset, plus the resampling filter's reach), and
    the onset's index in it. The cut starts on a multiple of the decimation factor, so every
    kept output sample is computed from exactly the same input samples and filter phase as
    when the whole snippet is resampled: the features are the same (tested)."""
    from fractions import Fraction

    from shotwatch.classification.dsp import ANALYSIS_RATE_HZ, resample
    from shotwatch.classification.features import POST_S, PRE_S

    x = np.asarray(snippet, dtype=np.float64) / 32768.0
    onset = round(onset_index / sample_rate_hz * ANALYSIS_RATE_HZ)
    sr = int(sample_rate_hz)
    if sr == ANALYSIS_RATE_HZ:
        return x, onset
    ratio = Fraction(ANALYSIS_RATE_HZ, sr).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    # scipy's resample_poly filter spans 10 * max(up, down) upsampled samples each side.
    reach = -(-10 * max(up, down) // up) + 2 * down
    lo_out = onset - round(PRE_S * ANALYSIS_RATE_HZ)
    hi_out = onset + round(POST_S * ANALYSIS_RATE_HZ)
    lo_in = (lo_out * down) // up - reach
    hi_in = -(-hi_out * down // up) + reach
    if lo_in <= 0 and hi_in >= x.size:
        return resample(x, float(sample_rate_hz), ANALYSIS_RATE_HZ), onset
    lo_in = max(0, lo_in // down * down)
    hi_in = x.size if hi_in >= x.size else hi_in
    y = resample(x[lo_in:hi_in], float(sample_rate_hz), ANALYSIS_RATE_HZ)
    offset = lo_in // down * up
    return y, onset - offset


def classifier_score(snippet: np.ndarray, sample_rate_hz: int, onset_index: int) -> float:
    """Gunfire probability of the impulse at ``onset_index`` (issue 3's pulse model)."""
    from shotwatch.classification.model import default_model
    from shotwatch.classification.pulse import inputs_at

    x, onset = _analysis_window(snippet, sample_rate_hz, onset_index)
    # Only the calibrated probability: the label breakdown is the server's business.
    m = default_model()
    return float(m.probability(*inputs_at(x, [onset], m))[0])


SCORERS: dict[str, Scorer] = {
    "classifier": classifier_score,
    "impulsiveness": impulsiveness_score,
}
