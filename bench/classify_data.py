"""Training and evaluation data for the pulse classifier (evaluation-side code).

Reads the Pittsburgh live-fire ground truth (the vendor's grouping of pulses into shots in
``nlos-tuples.json``) to know which pulses are gunfire, so it lives here, outside the product.

- gunfire: every pulse of a vendor shot tuple heard by a sensor whose WAV was released;
- real urban background: stretches of real (non-zero-padded) audio at least ``GUARD_S`` away
  from every pulse any sensor reported;
- synthetic sources: :mod:`shotwatch.classification.synth`, mixed into real background.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from shotwatch.classification.dsp import ANALYSIS_RATE_HZ, highpass, resample
from shotwatch.classification.features import FEATURE_NAMES
from shotwatch.classification.impulses import find_impulses
from shotwatch.classification.patch import PATCH_BANDS, PATCH_FRAMES
from shotwatch.classification.pulse import features_at, patches_at
from shotwatch.classification.synth import FAMILY_LABEL, SYNTH_RATE_HZ, render

GUARD_S = 0.5
#: Urban reverberation and hill echoes of a shot last seconds: audio within this long after a
#: reported pulse is neither clean background nor a fresh impulse.
GUARD_AFTER_S = 2.0
MATCH_S = 0.02
#: Share of augmented copies and synthetic mixes given a random spectral tilt (:func:`augment`).
TILT_P = 0.5
#: The issue measures fireworks on 1-s segments of a display: training clips of fireworks
#: keep the impulses of the first second of the source only, so a clip is such a segment.
SEGMENT_S = {"fireworks": 1.0}
#: A 2-s evaluation clip around a shot pulse holds, on average, the impulses within 1 s of it.
CONTEXT_S = 1.0
TRIGGER_DB = 8.0
ALL_FPS = ("FP1", "FP2", "FP3", "FP4", "FP5", "FP6")


def utc_s(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Recording:
    fp: str
    test: str
    serial: str
    x: np.ndarray
    shot_s: list[float]
    pulse_s: list[float]
    valid: tuple[int, int] = (0, 0)

    def background_stretches(
        self, guard_s: float = GUARD_S, guard_after_s: float = GUARD_AFTER_S
    ) -> list[tuple[int, int]]:
        """Sample ranges of real audio with no reported pulse within ``guard_s`` before or
        ``guard_after_s`` after."""
        a, b = self.valid
        out = []
        start = a / ANALYSIS_RATE_HZ
        for t in [*sorted(self.pulse_s), b / ANALYSIS_RATE_HZ + guard_s]:
            end = t - guard_s
            if end - start > 0.3:
                out.append((int(start * ANALYSIS_RATE_HZ), int(end * ANALYSIS_RATE_HZ)))
            start = max(start, t + guard_after_s)
        return out

    def is_background(self, t_s: float) -> bool:
        return all(not (p - GUARD_S <= t_s <= p + GUARD_AFTER_S) for p in self.pulse_s)


def load_pittsburgh(data_dir: Path, fps: tuple[str, ...]) -> list[Recording]:
    root = Path(data_dir) / "pittsburgh-2018"
    recs: list[Recording] = []
    for fp in fps:
        for td in sorted((root / fp).glob("test_*")):
            name = td.name
            pulses = json.loads((td / f"{name}.allpulses.json").read_text())
            tuples = json.loads((td / f"{name}.nlos-tuples.json").read_text())
            shot_ids = {u for s in tuples for u in s["pulse_uuids"]}
            for meta_path in sorted(td.glob(f"{name}.audio.*.json")):
                meta = json.loads(meta_path.read_text())
                serial = meta["serial_number"]
                t0 = utc_s(meta["timestamp"])
                x, sr = sf.read(meta_path.with_suffix(".wav"), dtype="float64", always_2d=True)
                x = resample(x.mean(axis=1), sr)
                nz = np.flatnonzero(x != 0.0)
                mine = [p for p in pulses if p["serial_number"] == serial]
                recs.append(
                    Recording(
                        fp=fp,
                        test=name,
                        serial=serial,
                        x=x,
                        shot_s=[
                            utc_s(p["arrival_time_utc"]) - t0
                            for p in mine
                            if p["pulse_uuid"] in shot_ids
                        ],
                        pulse_s=[utc_s(p["arrival_time_utc"]) - t0 for p in mine],
                        valid=(int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0),
                    )
                )
    return recs


@dataclass
class Examples:
    X: list[np.ndarray] = field(default_factory=list)
    family: list[str] = field(default_factory=list)
    group: list[str] = field(default_factory=list)
    #: Which clip each row came from: the issue's targets are per clip (a clip is flagged when
    #: any impulse in it is), so the threshold is chosen on clip-level rates.
    clip: list[str] = field(default_factory=list)
    #: Time-frequency picture of each row (:mod:`shotwatch.classification.patch`), float16.
    P: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        feats: np.ndarray,
        family: str,
        group: str,
        clip: str = "",
        patches: np.ndarray | None = None,
    ) -> None:
        rows = np.atleast_2d(feats)
        pics = (
            np.zeros((len(rows), PATCH_BANDS, PATCH_FRAMES), np.float16)
            if patches is None
            else patches.astype(np.float16)
        )
        for row, pic in zip(rows, pics, strict=True):
            self.X.append(row)
            self.family.append(family)
            self.group.append(group)
            self.clip.append(clip or f"{family}-{len(self.clip)}")
            self.P.append(pic)

    def add_at(self, x: np.ndarray, onsets: list[int], family: str, group: str, clip: str) -> None:
        """Rows (features and picture) of the impulses at ``onsets`` of 12-kHz audio ``x``."""
        if onsets:
            self.add(features_at(x, onsets), family, group, clip, patches_at(x, onsets))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = np.vstack(self.X) if self.X else np.zeros((0, len(FEATURE_NAMES)))
        return X, np.array(self.family), np.array(self.group)

    def clips(self) -> np.ndarray:
        return np.array(self.clip)

    def patches(self) -> np.ndarray:
        if not self.P:
            return np.zeros((0, PATCH_BANDS, PATCH_FRAMES), np.float16)
        return np.stack(self.P)


def is_augmented_copy(clip: str) -> bool:
    """Whether a real clip id (``g<recording>-<copy>-<pulse>`` for gunshots,
    ``b<recording>-<copy>-<2-s slot>`` for background) names an augmented copy (copy > 0)."""
    parts = clip.split("-")
    return clip[:1] in ("g", "b") and len(parts) == 3 and parts[1] != "0"


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Spectral tilt, sample-rate round trip, gain and clipping, as a different sensor on a
    different path would record it.

    The tilt is a first-order high shelf of -8..+8 dB above 0.4-3 kHz: distance, ground and
    buildings set how bright a shot sounds, and the training positions' sensors (100-800 m)
    hear it duller than a nearer or clearer one does (one held-out FP6 sensor at 222 m is
    brighter than every training pulse, and its shots scored low): the model must not learn
    that gunfire is dull."""
    y = x.copy()
    if rng.random() < TILT_P:
        fc = float(np.exp(rng.uniform(np.log(400.0), np.log(3000.0))))
        g = 10 ** (rng.uniform(-8.0, 8.0) / 20.0) - 1.0
        y = y + g * highpass(y, ANALYSIS_RATE_HZ, fc, order=1)
    if rng.random() < 0.35:
        other = float(rng.choice([8000, 16000, 22050, 44100, 48000]))
        y = resample(resample(y, ANALYSIS_RATE_HZ, other), other, ANALYSIS_RATE_HZ)[: len(x)]
        y = np.pad(y, (0, len(x) - len(y)))
    if rng.random() < 0.2:
        peak = float(np.max(np.abs(y))) + 1e-12
        y = np.clip(y * rng.uniform(1.5, 6.0) / peak, -1.0, 1.0)
    return y


def real_gunshot_examples(
    recs: list[Recording],
    ex: Examples,
    rng: np.random.Generator,
    n_aug: int = 1,
    guard_after_s: float = GUARD_AFTER_S,
) -> int:
    """Features of the detected impulse at each labelled shot pulse (plus augmented copies);
    returns how many labelled pulses the impulse finder missed.

    Background negatives are detector events at least ``GUARD_S`` before and ``guard_after_s``
    after every reported pulse, grouped into 2-s clips (one clip id per 2 s of recording)."""
    missed = 0
    for r_i, rec in enumerate(recs):
        for k in range(1 + n_aug):
            x = rec.x if k == 0 else augment(rec.x, rng)
            if k > 0 and rng.random() < 0.5:  # bury in more real noise from another sensor
                other = recs[int(rng.integers(len(recs)))]
                stretches = other.background_stretches()
                if stretches:
                    a, b = stretches[int(rng.integers(len(stretches)))]
                    noise = np.resize(other.x[a:b], len(x))
                    gain = rng.uniform(0.5, 4.0) * (np.std(x[x != 0]) / (np.std(noise) + 1e-12))
                    x = x + np.where(x != 0, noise * gain, 0.0)
            imps = find_impulses(x, ANALYSIS_RATE_HZ, threshold_db=TRIGGER_DB)
            times = np.array([i.t_s for i in imps])
            matched: dict[int, int] = {}  # impulse -> first shot pulse it matches
            for j, s in enumerate(rec.shot_s):
                if times.size and np.min(np.abs(times - s)) <= MATCH_S:
                    matched.setdefault(int(np.argmin(np.abs(times - s))), j)
                elif k == 0:
                    missed += 1
            for i_imp, j in sorted(matched.items()):
                ex.add_at(x, [imps[i_imp].index], "real_gunshot", rec.fp, f"g{r_i}-{k}-{j}")
            # Context of each shot pulse's clip: the other impulses within CONTEXT_S of it
            # (further rounds, echoes, street noise). They are not trained on, but scored
            # out of fold, so the clip recall the threshold rule sees is the issue's: a clip
            # is a hit when any impulse in it is.
            for j, s in enumerate(rec.shot_s):
                near = [
                    imps[i].index
                    for i in range(len(imps))
                    if abs(times[i] - s) <= CONTEXT_S and matched.get(i) != j
                ]
                ex.add_at(x, near, "real_gunshot_context", rec.fp, f"g{r_i}-{k}-{j}")
            # Background negatives: detector events far from every reported pulse.
            bg = [
                i
                for i in imps
                if all(not (p - GUARD_S <= i.t_s <= p + guard_after_s) for p in rec.pulse_s)
            ]
            for i in bg:
                clip = f"b{r_i}-{k}-{int(i.t_s // 2.0)}"
                ex.add_at(x, [i.index], "real_background", rec.fp, clip)
    return missed


def background_pool(recs: list[Recording], min_s: float = 1.0) -> list[np.ndarray]:
    """Stretches of real background to mix synthetic sources into. Stretches that are mostly
    digital silence (dropouts inside a recording: 11 of 241 on FP1-FP4, 2 of 193 on FP5-FP6)
    are left out: a source mixed into them is scaled to the silence and never heard."""
    out = []
    for rec in recs:
        for a, b in rec.background_stretches():
            if (b - a) >= min_s * ANALYSIS_RATE_HZ and np.mean(rec.x[a:b] == 0.0) < 0.5:
                out.append(rec.x[a:b])
    return out


def mix_synthetic(
    family: str,
    rng: np.random.Generator,
    pool: list[np.ndarray],
    variant: str,
    *,
    clip_s: float = 2.0,
    onset_s: float = 0.4,
    snr_db: tuple[float, float] = (6.0, 45.0),
    full_scale_clip: float = 0.0,
) -> np.ndarray:
    """A ``clip_s`` clip of real background with a propagated ``family`` source at ``onset_s``.

    With probability ``full_scale_clip`` the mix is then driven into a recorder's full scale
    (peak 1.2-20x over it, hard clipped), as a loud nearby source is recorded."""
    n = int(clip_s * ANALYSIS_RATE_HZ)
    bg = pool[int(rng.integers(len(pool)))]
    start = int(rng.integers(0, max(1, len(bg) - n)))
    noise = np.resize(bg[start:], n).astype(np.float64)
    src = resample(render(family, rng, variant), SYNTH_RATE_HZ, ANALYSIS_RATE_HZ)
    at = int(onset_s * ANALYSIS_RATE_HZ)
    ev = np.zeros(n)
    m = min(len(src), n - at)
    ev[at : at + m] = src[:m]
    rms = float(np.sqrt(np.mean(noise**2))) + 1e-9
    gain = 10 ** (rng.uniform(*snr_db) / 20.0) * rms / (float(np.max(np.abs(ev))) + 1e-20)
    y = noise + gain * ev
    if full_scale_clip > 0 and rng.random() < full_scale_clip:
        y = np.clip(y * rng.uniform(1.2, 20.0) / (float(np.max(np.abs(y))) + 1e-20), -1.0, 1.0)
    return augment(y, rng)


def synthetic_examples(
    ex: Examples,
    rng: np.random.Generator,
    pool: list[np.ndarray],
    per_family: int,
    variant: str = "train",
    *,
    snr_db: tuple[float, float] = (6.0, 45.0),
    full_scale_clip: float = 0.0,
) -> None:
    """``per_family`` mixed clips of every synthetic family. The same level range and
    clipping apply to every family, so loudness or clipping cannot stand in for the class."""
    for family in FAMILY_LABEL:
        positive = FAMILY_LABEL[family] == "gunshot"
        for n in range(per_family):
            clip = f"{family}-{variant}-{n}"
            x = mix_synthetic(
                family, rng, pool, variant, snr_db=snr_db, full_scale_clip=full_scale_clip
            )
            imps = find_impulses(x, ANALYSIS_RATE_HZ, threshold_db=TRIGGER_DB)
            end_s = 0.39 + SEGMENT_S.get(family, 1.21)
            inside = [i for i in imps if 0.39 <= i.t_s <= end_s]
            if not inside:
                continue
            if positive:
                first = min(inside, key=lambda i: abs(i.t_s - 0.4))
                if abs(first.t_s - 0.4) <= MATCH_S:
                    ex.add_at(x, [first.index], family, f"synth-{variant}", clip)
            else:
                ex.add_at(x, [i.index for i in inside], family, f"synth-{variant}", clip)
