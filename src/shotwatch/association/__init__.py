"""Pulses from many sensors -> shot candidates (pulse sets consistent with one source)."""

from shotwatch.association.associator import Associator, AssociatorStats, associate_all

__all__ = ["Associator", "AssociatorStats", "associate_all"]
