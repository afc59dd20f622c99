"""Shots -> incidents (rounds, shooters, automatic fire, movement); review commands."""

from shotwatch.incidents.builder import IncidentBuilder, LineFit, fit_track, shot_sigma_m

__all__ = ["IncidentBuilder", "LineFit", "fit_track", "shot_sigma_m"]
