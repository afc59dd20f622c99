"""What really happened in a simulated scene: read only by evaluation code (bench/, tests).

Product code never imports this module's data from files: the simulator's shell writes it as
``truth.json`` beside the pulses and audio, and only benchmarks and tests read it back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from shotwatch.core.model import iso_utc


class PathKind(enum.StrEnum):
    """How a pulse came about."""

    DIRECT = "direct"  # line of sight (possibly with its ground reflection merged in)
    NLOS = "nlos"  # direct path blocked: diffracted/reflected, late and attenuated
    ECHO = "echo"  # a later reflection off a building
    CRACK = "crack"  # supersonic bullet's Mach-cone arrival
    FALSE = "false"  # unrelated impulse (no simulated source)


@dataclass(frozen=True, slots=True)
class EventTruth:
    """One impulsive emission: a round fired, a firework burst or crackle, a door slam..."""

    event_id: str
    source_id: str
    kind: str
    is_gunshot: bool
    t_s: float
    x_m: float
    y_m: float
    z_m: float
    round_index: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "event_id": self.event_id,
            "source_id": self.source_id,
            "kind": self.kind,
            "is_gunshot": self.is_gunshot,
            "t_s": self.t_s,
            "time_utc": iso_utc(self.t_s),
            "x_m": self.x_m,
            "y_m": self.y_m,
            "z_m": self.z_m,
            "round_index": self.round_index,
        }


@dataclass(frozen=True, slots=True)
class SourceTruth:
    """One source of the scenario (a shooter, a fireworks show, a street of doors)."""

    source_id: str
    kind: str
    rounds: int
    automatic: bool
    cadence_rps: float | None
    speed_mps: float
    heading_deg: float | None
    start_s: float
    end_s: float
    x_m: float
    y_m: float
    z_m: float

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class PulseTruth:
    """Where one reported pulse came from."""

    pulse_id: str
    event_id: str | None
    path: PathKind
    true_arrival_s: float  # physical arrival, before clock offset and pick error

    def to_dict(self) -> dict[str, object]:
        return {
            "pulse_id": self.pulse_id,
            "event_id": self.event_id,
            "path": self.path.value,
            "true_arrival_s": self.true_arrival_s,
        }


@dataclass(slots=True)
class Truth:
    """Everything evaluation needs: events, sources, each pulse's origin, sensor clocks."""

    scenario: str
    seed: int
    start_s: float
    speed_of_sound_mps: float
    events: list[EventTruth] = field(default_factory=list)
    sources: list[SourceTruth] = field(default_factory=list)
    pulses: dict[str, PulseTruth] = field(default_factory=dict)
    clock_offset_s: dict[str, float] = field(default_factory=dict)
    masked_pulses: int = 0  # true arrivals hidden by a sensor's dead time

    def to_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "start_s": self.start_s,
            "start_utc": iso_utc(self.start_s),
            "speed_of_sound_mps": self.speed_of_sound_mps,
            "sources": [s.to_dict() for s in self.sources],
            "events": [e.to_dict() for e in self.events],
            "pulses": [p.to_dict() for p in self.pulses.values()],
            "clock_offset_s": self.clock_offset_s,
            "masked_pulses": self.masked_pulses,
        }
