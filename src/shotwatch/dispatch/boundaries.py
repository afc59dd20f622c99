"""Police boundaries: which precinct or district is responsible for a located shot.

Boundaries come from GeoJSON in WGS84 lon/lat. On load they are repaired (``make_valid``; only
the polygonal parts kept), projected once into a metric azimuthal-equidistant frame centred on
the boundary set (so distances are metres, not degrees) and put in an STRtree.

Routing rules, all deterministic (ADR 0090):

1. The point lies in exactly one patrolled area -> that area (``contains``).
2. The point lies on an edge shared by several patrolled areas -> the lowest unit id in natural
   order (``shared_edge``); the other candidates are kept on the result.
3. The point lies in an area that nobody patrols (Chicago's "31" pieces) -> the nearest
   patrolled area, however far (``nearest_from_unpatrolled``): the place is inside the city.
4. The point lies outside every area -> the nearest patrolled area if it is within
   ``max_snap_m`` (``nearest``), otherwise no unit (``unrouted``) with the reason stated.

This module is a pure core: :func:`BoundarySet.from_geojson` takes parsed JSON;
:func:`load_boundaries` is the thin file shell.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from shotwatch.core.errors import InputError
from shotwatch.core.geo import check_latlon


class RoutingMethod(enum.StrEnum):
    CONTAINS = "contains"
    SHARED_EDGE = "shared_edge"
    NEAREST_FROM_UNPATROLLED = "nearest_from_unpatrolled"
    NEAREST = "nearest"
    UNROUTED = "unrouted"


@dataclass(frozen=True, slots=True)
class BoundarySpec:
    """How to read one city's boundary file: which property is the unit id, which the label,
    and which ids nobody patrols."""

    name: str
    id_property: str
    label_property: str | None = None
    label_format: str = "{id}"
    agency: str = ""
    unpatrolled_ids: frozenset[str] = frozenset()


#: The specs of the real boundary files this project is tested on.
PRESETS: dict[str, BoundarySpec] = {
    "nypd-precincts": BoundarySpec(
        "nypd-precincts", "precinct", None, "Precinct {id}", agency="NYPD"
    ),
    "chicago-police-districts": BoundarySpec(
        "chicago-police-districts",
        "dist_num",
        "dist_label",
        "District {label}",
        agency="CPD",
        unpatrolled_ids=frozenset({"31"}),
    ),
    "sfpd-districts": BoundarySpec(
        "sfpd-districts", "district", "district", "{label} Station", agency="SFPD"
    ),
}


@dataclass(frozen=True, slots=True)
class Boundary:
    """One polygonal area with its unit id; ``geometry`` is repaired WGS84 lon/lat."""

    unit_id: str
    label: str
    patrolled: bool
    geometry: BaseGeometry
    repaired: bool = False


@dataclass(frozen=True, slots=True)
class Routing:
    """Where a call goes and why."""

    unit_id: str | None
    label: str | None
    method: RoutingMethod
    distance_m: float = 0.0
    candidates: tuple[str, ...] = ()
    reason: str = ""

    @property
    def routed(self) -> bool:
        return self.unit_id is not None


def natural_key(unit_id: str) -> tuple[int, int, str]:
    """Numbers sort as numbers ("9" < "10"), names alphabetically after numbers."""
    m = re.fullmatch(r"0*(\d+)", unit_id)
    if m:
        return (0, int(m.group(1)), unit_id)
    return (1, 0, unit_id)


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Only the polygonal parts of a (possibly mixed) geometry, as one (Multi)Polygon."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    polys: list[Polygon] = []
    for part in getattr(geom, "geoms", []):
        if isinstance(part, Polygon):
            polys.append(part)
        elif isinstance(part, MultiPolygon):
            polys.extend(part.geoms)
    return MultiPolygon(polys)


def _build_geometry(raw: Mapping[str, Any], where: str) -> tuple[BaseGeometry, bool]:
    try:
        geom = shape(raw)
    except Exception as exc:  # shapely raises several kinds for malformed coordinates
        raise InputError(where, "geometry", f"not a valid GeoJSON geometry: {exc}") from exc
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(where, "geometry", f"expected (Multi)Polygon, got {geom.geom_type}")
    if geom.is_valid:
        return geom, False
    fixed = _polygonal(shapely.make_valid(geom))
    if fixed.is_empty:
        raise InputError(where, "geometry", "no area left after repairing the rings")
    return fixed, True


class BoundarySet:
    """A city's police areas, indexed for routing."""

    def __init__(
        self,
        boundaries: Sequence[Boundary],
        *,
        agency: str = "",
        max_snap_m: float = 250.0,
        errors: Sequence[InputError] = (),
    ) -> None:
        if not boundaries:
            raise InputError("boundaries", "features", "no usable polygon")
        if not any(b.patrolled for b in boundaries):
            raise InputError("boundaries", "features", "no patrolled area")
        self.boundaries = tuple(boundaries)
        self.agency = agency
        self.max_snap_m = float(max_snap_m)
        self.errors = tuple(errors)
        minx, miny, maxx, maxy = shapely.total_bounds([b.geometry for b in boundaries])
        lat0, lon0 = (miny + maxy) / 2.0, (minx + maxx) / 2.0
        self._to_m = Transformer.from_crs(
            "EPSG:4326",
            f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m",
            always_xy=True,
        )
        projected = [self._project(b.geometry) for b in boundaries]
        self._geoms_m = np.array(projected, dtype=object)
        self._tree = STRtree(self._geoms_m)
        self._patrolled_idx = np.array([i for i, b in enumerate(boundaries) if b.patrolled])
        self._patrolled_tree = STRtree(self._geoms_m[self._patrolled_idx])

    def _project(self, geom: BaseGeometry) -> BaseGeometry:
        def fwd(coords: np.ndarray) -> np.ndarray:
            x, y = self._to_m.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geom, fwd)

    @classmethod
    def from_geojson(
        cls, data: Mapping[str, Any], spec: BoundarySpec, *, max_snap_m: float = 250.0
    ) -> BoundarySet:
        """Build from a parsed FeatureCollection. Bad features are collected in ``errors``
        (each an :class:`InputError` naming the feature and field); the rest are used."""
        where0 = f"boundaries {spec.name}"
        if data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
            raise InputError(where0, "type", "expected a GeoJSON FeatureCollection")
        out: list[Boundary] = []
        errors: list[InputError] = []
        for i, feat in enumerate(data["features"]):
            where = f"{where0} feature[{i}]"
            try:
                props = feat.get("properties") or {}
                raw_id = props.get(spec.id_property)
                if raw_id is None or str(raw_id).strip() == "":
                    raise InputError(where, spec.id_property, "missing unit id")
                unit_id = str(raw_id).strip()
                raw_label = props.get(spec.label_property) if spec.label_property else None
                label = spec.label_format.format(
                    id=unit_id, label=str(raw_label if raw_label is not None else unit_id)
                )
                geom, repaired = _build_geometry(feat.get("geometry") or {}, where)
                out.append(
                    Boundary(unit_id, label, unit_id not in spec.unpatrolled_ids, geom, repaired)
                )
            except InputError as exc:
                errors.append(exc)
        return cls(out, agency=spec.agency, max_snap_m=max_snap_m, errors=errors)

    def units(self) -> list[tuple[str, str]]:
        """Distinct patrolled (unit id, label) pairs in natural order."""
        seen = {b.unit_id: b.label for b in self.boundaries if b.patrolled}
        return sorted(seen.items(), key=lambda kv: natural_key(kv[0]))

    def boundary(self, unit_id: str) -> Boundary:
        for b in self.boundaries:
            if b.unit_id == unit_id:
                return b
        raise KeyError(unit_id)

    def route(self, lat_deg: float, lon_deg: float) -> Routing:
        """The responsible unit for a point (rules in the module docstring)."""
        check_latlon(lat_deg, lon_deg, "call location")
        x, y = self._to_m.transform(lon_deg, lat_deg)
        pt = Point(float(x), float(y))
        hits = self._tree.query(pt, predicate="covered_by")
        patrolled = sorted(
            {self.boundaries[i].unit_id for i in hits if self.boundaries[i].patrolled},
            key=natural_key,
        )
        if patrolled:
            uid = patrolled[0]
            method = RoutingMethod.CONTAINS if len(patrolled) == 1 else RoutingMethod.SHARED_EDGE
            return Routing(uid, self._label(uid), method, 0.0, tuple(patrolled))
        unpatrolled = sorted({self.boundaries[i].unit_id for i in hits}, key=natural_key)
        near_i, dist_m = self._nearest_patrolled(pt)
        near = self.boundaries[near_i]
        if unpatrolled:
            return Routing(
                near.unit_id,
                near.label,
                RoutingMethod.NEAREST_FROM_UNPATROLLED,
                dist_m,
                (near.unit_id,),
                f"inside unpatrolled area {', '.join(unpatrolled)}; nearest patrolled area",
            )
        if dist_m <= self.max_snap_m:
            return Routing(
                near.unit_id,
                near.label,
                RoutingMethod.NEAREST,
                dist_m,
                (near.unit_id,),
                f"outside every area, {dist_m:.0f} m from the nearest",
            )
        return Routing(
            None,
            None,
            RoutingMethod.UNROUTED,
            dist_m,
            (near.unit_id,),
            f"outside every area: {dist_m:.0f} m from {near.label}, beyond the "
            f"{self.max_snap_m:.0f} m snap distance",
        )

    def _nearest_patrolled(self, pt: Point) -> tuple[int, float]:
        idx, dist = self._patrolled_tree.query_nearest(pt, return_distance=True, all_matches=True)
        cands = sorted(
            (int(self._patrolled_idx[j]) for j in np.atleast_1d(idx)),
            key=lambda i: natural_key(self.boundaries[i].unit_id),
        )
        return cands[0], float(np.atleast_1d(dist)[0])

    def distance_to_unit_m(self, lat_deg: float, lon_deg: float, unit_id: str) -> float:
        """Metres from a point to the nearest of ``unit_id``'s polygons (0 inside)."""
        x, y = self._to_m.transform(lon_deg, lat_deg)
        pt = Point(float(x), float(y))
        ds = [
            float(self._geoms_m[i].distance(pt))
            for i, b in enumerate(self.boundaries)
            if b.unit_id == unit_id
        ]
        if not ds:
            raise KeyError(unit_id)
        return min(ds)

    def _label(self, unit_id: str) -> str:
        return self.boundary(unit_id).label

    def to_geojson(self) -> dict[str, Any]:
        """The repaired boundaries as a FeatureCollection (for the map's base layer)."""
        feats = []
        for b in self.boundaries:
            feats.append(
                {
                    "type": "Feature",
                    "properties": {
                        "unit_id": b.unit_id,
                        "label": b.label,
                        "patrolled": b.patrolled,
                    },
                    "geometry": shapely.geometry.mapping(b.geometry),
                }
            )
        return {"type": "FeatureCollection", "features": feats}

    def distance_m(self, lat1: float, lon1: float, lat2: float, lon2: float) -> float:
        """Planar distance in the set's metric frame (accurate to well under 0.1 % in a city)."""
        x1, y1 = self._to_m.transform(lon1, lat1)
        x2, y2 = self._to_m.transform(lon2, lat2)
        return math.hypot(x2 - x1, y2 - y1)


def spec_for(path: Path, overrides: Mapping[str, Any] | None = None) -> BoundarySpec:
    """The preset matching a file's stem, or a spec from ``overrides``
    (keys of :class:`BoundarySpec`)."""
    base = PRESETS.get(path.stem.removesuffix(".geojson"))
    if overrides:
        kw: dict[str, Any] = {}
        if base is not None:
            kw = {
                "name": base.name,
                "id_property": base.id_property,
                "label_property": base.label_property,
                "label_format": base.label_format,
                "agency": base.agency,
                "unpatrolled_ids": base.unpatrolled_ids,
            }
        kw.setdefault("name", path.stem)
        for k, v in overrides.items():
            kw[k] = frozenset(v) if k == "unpatrolled_ids" else v
        if "id_property" not in kw:
            raise InputError(str(path), "id_property", "no preset for this file; name one")
        return BoundarySpec(**kw)
    if base is None:
        raise InputError(
            str(path), "id_property", f"no preset for {path.stem!r}; known: {sorted(PRESETS)}"
        )
    return base


def load_boundaries(
    path: str | Path,
    *,
    spec: BoundarySpec | None = None,
    max_snap_m: float = 250.0,
) -> BoundarySet:
    """Read a boundary GeoJSON file (I/O shell around :meth:`BoundarySet.from_geojson`)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(str(p), "file", "not found") from exc
    except json.JSONDecodeError as exc:
        raise InputError(str(p), "file", f"not valid JSON: {exc}") from exc
    return BoundarySet.from_geojson(data, spec or spec_for(p), max_snap_m=max_snap_m)
