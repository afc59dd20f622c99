"""``shotwatch calibrate``: measure ``association.propagation_error`` from stored shots.

Reads the current version of every shot in the window (and the sensor registry) from the
database, takes those located with six or more inlier sensors, and reports the share of the
travel time between two sensors by which this network's arrivals disagree with the
straight-ray model beyond the pick tolerance (ADR 0018). No ground truth is involved: it is
the network's own history. Set the value in the settings file (``[association]
propagation_error``) or as ``SHOTWATCH_ASSOCIATION__PROPAGATION_ERROR``.
"""

from __future__ import annotations

import argparse
import json
import sys

from shotwatch.association.calibration import pooled_excess, propagation_error_from
from shotwatch.cli.common import add_config_option, add_db_option
from shotwatch.core.errors import InputError
from shotwatch.core.model import parse_utc
from shotwatch.core.settings import load_settings
from shotwatch.storage.db import make_engine, resolve_url, session_factory
from shotwatch.storage.service import load_sensors, load_shots


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "calibrate",
        help="measure the propagation model's error from the stored shots (ADR 0018)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--since", metavar="ISO", default=None, help="shots from this time (UTC)")
    p.add_argument("--until", metavar="ISO", default=None, help="shots before this time (UTC)")
    p.add_argument(
        "--quantile",
        type=float,
        default=0.95,
        help="share of sensor pairs the window must hold (default 0.95)",
    )
    p.add_argument("--min-inliers", type=int, default=6, help="sensors a shot needs to count")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_db_option(p)
    add_config_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        since = None if args.since is None else parse_utc(args.since, where="--since")
        until = None if args.until is None else parse_utc(args.until, where="--until")
        if not 0.0 < args.quantile < 1.0:
            raise InputError("--quantile", "value", f"must be in (0, 1), got {args.quantile}")
        if args.min_inliers < 4:
            raise InputError("--min-inliers", "value", f"must be 4 or more, got {args.min_inliers}")
    except InputError as exc:
        print(f"shotwatch calibrate: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(args.config)
    tol = settings.association.pick_tolerance_s
    engine = make_engine(resolve_url(args.db))
    try:
        with session_factory(engine)() as session:
            sensors = {s.serial: s for s in load_sensors(session=session)}
            shots = load_shots(session=session, start_s=since, end_s=until)
    finally:
        engine.dispose()
    excess, used = pooled_excess(
        shots, sensors, c_mps=None, pick_tolerance_s=tol, min_inliers=args.min_inliers
    )
    cal = propagation_error_from(excess, shots=used, quantile=args.quantile)
    if cal is None:
        print(
            f"shotwatch calibrate: not enough located shots: {len(excess)} sensor pairs from "
            f"{used} of {len(shots)} stored shots with >= {args.min_inliers} inliers "
            "(need 50 pairs)",
            file=sys.stderr,
        )
        return 1
    out = {
        "propagation_error": cal.propagation_error,
        "shots": cal.shots,
        "shots_stored": len(shots),
        "pairs": cal.pairs,
        "inside_pick_tolerance": round(cal.inside_pick_tolerance, 4),
        "pick_tolerance_s": tol,
        "quantile": args.quantile,
        "current_setting": settings.association.propagation_error,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"propagation_error = {cal.propagation_error} (from {cal.shots} shots, "
            f"{cal.pairs} sensor pairs; {100 * cal.inside_pick_tolerance:.0f} % already within "
            f"the {1000 * tol:.0f} ms pick tolerance; current setting "
            f"{settings.association.propagation_error})\n"
            f"SHOTWATCH_ASSOCIATION__PROPAGATION_ERROR={cal.propagation_error}"
        )
    return 0
