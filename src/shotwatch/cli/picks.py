"""``shotwatch picks DIR``: pick impulses in a folder of sensor recordings and print them.

DIR holds recordings in either layout :func:`shotwatch.io.audio_pulses.pulses_from_audio_dir`
reads (WAVs with an ``smj0`` chunk, or WAV + JSON sidecar); ``--recursive`` walks every folder
below it that holds audio. Bad files are reported on stderr and the rest is still picked.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from shotwatch.cli.common import add_config_option
from shotwatch.core.errors import InputError
from shotwatch.core.model import iso_utc
from shotwatch.core.settings import Settings, load_settings
from shotwatch.io.audio_pulses import find_audio_dirs, pulses_from_audio_dir


def register(sub: Any) -> None:
    p = sub.add_parser(
        "picks", help="pick impulses in sensor recordings (WAV/FLAC/OGG)", description=__doc__
    )
    p.add_argument("dir", type=Path, help="folder of recordings")
    p.add_argument("--recursive", action="store_true", help="also every folder below DIR")
    p.add_argument("--json", action="store_true", help="one JSON object per pulse")
    add_config_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config) if args.config else Settings()
    root: Path = args.dir
    if not root.is_dir():
        raise InputError(str(root), "path", "no such folder")
    dirs = list(find_audio_dirs(root)) if args.recursive else [root]
    n_pulses = n_errors = 0
    if not args.json:
        print(f"{'folder':<24} {'sensor':<18} {'time (UTC)':<28} {'snr_db':>7} {'spl_db':>7}")
    for d in dirs:
        res = pulses_from_audio_dir(d, picker_settings=settings.picker)
        for err in res.errors:
            n_errors += 1
            print(f"shotwatch picks: warning: {err}", file=sys.stderr)
        rel = d.relative_to(root).as_posix()
        for p in res.pulses:
            n_pulses += 1
            rec = {
                "folder": rel,
                "sensor": p.sensor,
                "time_utc": iso_utc(p.t_s),
                "t_s": round(p.t_s, 6),
                "x_m": round(p.x_m, 2),
                "y_m": round(p.y_m, 2),
                "z_m": round(p.z_m, 2),
                "snr_db": round(p.snr_db, 1),
                "level_db_spl": round(p.level_db_spl, 1) if math.isfinite(p.level_db_spl) else None,
                "clock_error_s": p.clock_error_s,
            }
            if args.json:
                print(json.dumps(rec))
            else:
                spl = rec["level_db_spl"]
                print(
                    f"{rel:<24} {p.sensor:<18} {rec['time_utc']:<28} {p.snr_db:>7.1f} "
                    f"{'-' if spl is None else f'{spl:.1f}':>7}"
                )
    print(
        f"shotwatch picks: {n_pulses} pulses in {len(dirs)} folders; "
        f"{n_errors} input problems reported above",
        file=sys.stderr,
    )
    return 0
