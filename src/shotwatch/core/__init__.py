"""Shared data model with provenance, clock, geodesy, units and the settings schema. Depends on
nothing else in ShotWatch.
"""
