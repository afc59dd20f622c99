"""``shotwatch sim``: run a simulated scenario and write pulses, audio and truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from shotwatch.core.errors import InputError
from shotwatch.sim.audio import simulate_audio
from shotwatch.sim.engine import build_scene, simulate_pulses
from shotwatch.sim.output import write_run
from shotwatch.sim.scenario import example_scenarios, load_scenario


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim", help="run the seeded scenario simulator")
    actions = p.add_subparsers(dest="sim_action", metavar="ACTION", required=True)
    run_p = actions.add_parser("run", help="simulate a scenario file (or a shipped example)")
    run_p.add_argument("scenario", help="scenario TOML file, or the name of a shipped example")
    run_p.add_argument("--out", required=True, help="output folder")
    run_p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    run_p.add_argument("--audio", action="store_true", help="also write sensor audio (WAV)")
    run_p.set_defaults(func=run)
    list_p = actions.add_parser("list", help="list the shipped example scenarios")
    list_p.set_defaults(func=run_list)


def resolve_scenario(name_or_path: str) -> Path:
    """A scenario path, or the shipped example of that name."""
    p = Path(name_or_path)
    if p.exists():
        return p
    examples = example_scenarios()
    if name_or_path in examples:
        return examples[name_or_path]
    raise InputError(
        name_or_path, "scenario", f"no such file or example (examples: {', '.join(examples)})"
    )


def run(args: argparse.Namespace) -> int:
    path = resolve_scenario(args.scenario)
    scenario = load_scenario(path)
    scene = build_scene(scenario, args.seed)
    result = simulate_pulses(scenario, args.seed, scene)
    audio = simulate_audio(scene) if args.audio else None
    written = write_run(result, args.out, audio)
    n_gun = sum(1 for e in result.truth.events if e.is_gunshot)
    print(
        f"{scenario.name} (seed {args.seed}): {len(result.sensors)} sensors, "
        f"{len(result.truth.events)} emissions ({n_gun} gunshots), {len(result.pulses)} pulses"
        + (f", {len(audio)} audio files" if audio else "")
    )
    print(f"pulses: {written['pulses']}")
    print(f"truth:  {written['truth']} (evaluation only)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    for name, path in example_scenarios().items():
        scenario = load_scenario(path)
        print(f"{name:24s} {scenario.description}")
    return 0
