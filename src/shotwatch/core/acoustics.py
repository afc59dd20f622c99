"""Physical acoustics shared by the simulator, the associator and the locator."""

from __future__ import annotations

import math

from shotwatch.core.errors import InputError

#: Temperatures the speed-of-sound model accepts, degrees Celsius.
MIN_TEMPERATURE_C = -60.0
MAX_TEMPERATURE_C = 60.0


def speed_of_sound_mps(temperature_c: float, relative_humidity: float = 0.5) -> float:
    """Speed of sound in air (m/s) from temperature, with a small humidity term.

    Uses c = 331.3 * sqrt(1 + T/273.15) plus ~0.6 m/s per unit humidity near 20 C (Cramer's
    humidity dependence, linearised): accurate to ~0.2 m/s over outdoor conditions.
    """
    if not math.isfinite(temperature_c) or not (
        MIN_TEMPERATURE_C <= temperature_c <= MAX_TEMPERATURE_C
    ):
        raise InputError(
            "weather",
            "temperature_c",
            f"must be within [{MIN_TEMPERATURE_C}, {MAX_TEMPERATURE_C}] C, got {temperature_c}",
        )
    rh = min(max(relative_humidity, 0.0), 1.0)
    c_dry = 331.3 * math.sqrt(1.0 + temperature_c / 273.15)
    return c_dry + 0.6 * rh * max(0.0, 1.0 + temperature_c / 40.0)


#: The slowest sound the model admits (dry air at MIN_TEMPERATURE_C): bounds travel times.
MIN_SOUND_SPEED_MPS = 331.3 * math.sqrt(1.0 + MIN_TEMPERATURE_C / 273.15)
