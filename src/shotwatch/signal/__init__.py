"""Pure signal processing on arrays: impulse picking (streaming, sub-sample onsets) and features."""
