"""Seeded physical scenario simulator (sensors, gunshots, confusers, propagation).

Pure core: ``simulate_pulses(scenario, seed)`` returns sensors, the pulses they would report
and the truth; ``simulate_audio(build_scene(scenario, seed))`` returns their recordings. The
shell :mod:`shotwatch.sim.output` writes files; only evaluation code reads the truth.
"""

from shotwatch.sim.audio import SensorAudio, simulate_audio
from shotwatch.sim.engine import Scene, SimResult, build_scene, simulate_pulses
from shotwatch.sim.scenario import Scenario, example_scenarios, load_scenario, parse_scenario
from shotwatch.sim.truth import EventTruth, PathKind, PulseTruth, SourceTruth, Truth

__all__ = [
    "EventTruth",
    "PathKind",
    "PulseTruth",
    "Scenario",
    "Scene",
    "SensorAudio",
    "SimResult",
    "SourceTruth",
    "Truth",
    "build_scene",
    "example_scenarios",
    "load_scenario",
    "parse_scenario",
    "simulate_audio",
    "simulate_pulses",
]
