"""TDOA multilateration in 2-D and 3-D with robust weighting, uncertainty and quality."""

from shotwatch.location.locate import ALGORITHM, VERSION, earliest_per_sensor, locate
from shotwatch.location.solver import SolverConfig, TdoaSolution, solve_tdoa

__all__ = [
    "ALGORITHM",
    "VERSION",
    "SolverConfig",
    "TdoaSolution",
    "earliest_per_sensor",
    "locate",
    "solve_tdoa",
]
