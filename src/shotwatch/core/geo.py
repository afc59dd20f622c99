"""Geodesy: deployments speak WGS84 latitude/longitude/ellipsoidal height; computation happens
in a local East-North-Up metric frame centred on the deployment.

The conversion is PROJ's exact geocentric -> topocentric pipeline (no flat-earth shortcut), so
round trips are millimetre-exact across a city.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from pyproj import Transformer

from shotwatch.core.errors import InputError


def check_latlon(lat_deg: float, lon_deg: float, where: str = "position") -> None:
    """Raise :class:`InputError` naming the field when a coordinate is out of range."""
    if not (math.isfinite(lat_deg) and -90.0 <= lat_deg <= 90.0):
        raise InputError(where, "latitude", f"must be within [-90, 90] degrees, got {lat_deg}")
    if not (math.isfinite(lon_deg) and -180.0 <= lon_deg <= 180.0):
        raise InputError(where, "longitude", f"must be within [-180, 180] degrees, got {lon_deg}")


@dataclass(frozen=True)
class LocalFrame:
    """East-North-Up frame (metres) with its origin at ``lat0_deg, lon0_deg, h0_m``."""

    lat0_deg: float
    lon0_deg: float
    h0_m: float = 0.0

    def __post_init__(self) -> None:
        check_latlon(self.lat0_deg, self.lon0_deg, "local frame origin")

    @cached_property
    def _fwd(self) -> Transformer:
        pipeline = (
            "+proj=pipeline +step +proj=axisswap +order=2,1 +step +proj=unitconvert "
            "+xy_in=deg +xy_out=rad +step +proj=cart +ellps=WGS84 "
            f"+step +proj=topocentric +ellps=WGS84 +lat_0={self.lat0_deg} "
            f"+lon_0={self.lon0_deg} +h_0={self.h0_m}"
        )
        return Transformer.from_pipeline(pipeline)

    def to_local(
        self, lat_deg: float, lon_deg: float, h_m: float = 0.0
    ) -> tuple[float, float, float]:
        """WGS84 (lat, lon, ellipsoidal height) -> local (east, north, up) metres."""
        check_latlon(lat_deg, lon_deg)
        e, n, u = self._fwd.transform(lat_deg, lon_deg, h_m)
        return (float(e), float(n), float(u))

    def to_geo(self, x_m: float, y_m: float, z_m: float = 0.0) -> tuple[float, float, float]:
        """Local (east, north, up) metres -> WGS84 (lat, lon, ellipsoidal height)."""
        lat, lon, h = self._fwd.transform(x_m, y_m, z_m, direction="INVERSE")
        return (float(lat), float(lon), float(h))

    @staticmethod
    def centred_on(points: list[tuple[float, float, float]]) -> LocalFrame:
        """A frame whose origin is the mean of (lat, lon, h) points (a deployment's centre)."""
        if not points:
            raise InputError("local frame", "points", "need at least one position")
        lat = sum(p[0] for p in points) / len(points)
        lon = sum(p[1] for p in points) / len(points)
        h = sum(p[2] for p in points) / len(points)
        return LocalFrame(lat, lon, h)
