"""``shotwatch classify FILE... [--json]``: is there gunfire in these recordings?

Each file is decoded (WAV, FLAC, OGG; any rate; channels averaged), its impulses are found and
each is classified by the model shipped in the package. A file is a gunshot when any of its
events is. A file that cannot be judged (unreadable, empty, silent, heavily clipped, too short)
gets an error object naming the problem, the other files are still processed, and the exit
code is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from shotwatch.classification.model import PulseModel, default_model
from shotwatch.classification.pulse import classify_audio
from shotwatch.cli.common import add_config_option
from shotwatch.core.errors import InputError
from shotwatch.core.settings import load_settings
from shotwatch.io.audio import read_audio

MIN_DURATION_S = 0.2
#: Below this RMS (about -100 dBFS) a file is digital silence.
SILENT_RMS = 1e-5
#: Share of samples in flat-topped runs at the peak above which the waveform is destroyed.
#: Recorders near a shooter clip: a few shots each flat for 5-20 ms make several per cent of a
#: short file, and the model is trained on sources driven up to 20x into full scale (ADR 0045),
#: so only a file mostly stuck at full scale is refused; lighter clipping is a warning.
MAX_CLIPPED_FRACTION = 0.25


def clipped_fraction(x: np.ndarray) -> float:
    """Share of samples in runs of 3+ consecutive samples stuck at the file's peak level
    (only when that peak is near full scale: a quiet file cannot have clipped)."""
    a = np.abs(np.asarray(x, dtype=np.float64))
    peak = float(a.max()) if a.size else 0.0
    if peak < 0.5:
        return 0.0
    at = a >= 0.999 * peak
    if not np.any(at):
        return 0.0
    padded = np.concatenate([[False], at, [False]])
    d = np.diff(padded.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    runs = ends - starts
    return float(runs[runs >= 3].sum()) / len(a)


def judge_file(
    path: str, model: PulseModel, *, with_features: bool = False, trigger_db: float = 8.0
) -> dict[str, object]:
    """The JSON object for one file (raises InputError when it cannot be judged)."""
    audio = read_audio(path)
    x = np.asarray(audio.mono(), dtype=np.float64)
    rate = audio.sample_rate_hz
    duration = len(x) / rate
    if duration < MIN_DURATION_S:
        raise InputError(
            path, "duration", f"{duration:.3f} s is too short (need >= {MIN_DURATION_S} s)"
        )
    rms = float(np.sqrt(np.mean(x**2)))
    if rms < SILENT_RMS:
        raise InputError(path, "samples", f"silent (RMS {rms:.1e} of full scale)")
    clipped = clipped_fraction(x)
    if clipped > MAX_CLIPPED_FRACTION:
        raise InputError(
            path,
            "samples",
            f"clipped: {100 * clipped:.1f} % of samples are stuck at full scale "
            f"(more than {100 * MAX_CLIPPED_FRACTION:.0f} %), the waveform cannot be judged",
        )
    decisions = classify_audio(x, rate, model, trigger_db=trigger_db)
    gun = any(d.gunshot for d in decisions)
    best = max(decisions, key=lambda d: d.score, default=None)
    events: list[dict[str, object]] = []
    for d in decisions:
        ev: dict[str, object] = {
            "t_s": round(d.t_s, 4),
            "score": round(d.score, 4),
            "label": d.label,
        }
        if with_features:
            ev.update(d.to_dict(with_features=True))
        events.append(ev)
    out: dict[str, object] = {
        "file": path,
        "gunshot": gun,
        "score": round(best.score, 4) if best else 0.0,
        "label": "gunshot" if gun else (best.label if best else "other"),
        "events": events,
        "model_version": model.version,
        "threshold": model.threshold,
        "sample_rate_hz": rate,
        "channels": audio.channels,
        "duration_s": round(duration, 3),
    }
    if clipped > 0:
        out["warnings"] = [f"clipped: {100 * clipped:.2f} % of samples at full scale"]
    return out


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("classify", help="tell gunfire from other impulsive sounds in audio files")
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="WAV, FLAC or OGG; any rate, mono or stereo"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    p.add_argument(
        "--features",
        action="store_true",
        help="with --json: add each event's features, raw score and label scores (audit)",
    )
    p.add_argument("--model", default=None, help="a pulse-model .npz (default: the packaged one)")
    add_config_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config).classification
    model = PulseModel.load(Path(args.model)) if args.model else default_model()
    failed = 0
    for path in args.files:
        try:
            res = judge_file(
                path, model, with_features=args.features, trigger_db=settings.trigger_db
            )
        except InputError as exc:
            failed += 1
            err = {"file": path, "error": exc.to_dict()}
            if args.json:
                print(json.dumps(err))
            else:
                print(f"{path}: error: {exc.field}: {exc.reason}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps(res))
        else:
            n = len(res["events"])  # type: ignore[arg-type]
            verdict = "GUNSHOT" if res["gunshot"] else f"no gunshot (likely {res['label']})"
            print(f"{path}: {verdict}, score {res['score']:.2f}, {n} impulse(s)")
    return 1 if failed else 0
