"""The call for service: what dispatch receives about a confirmed incident.

A call is built from one *version* of an incident (its id and version number travel with it),
so a later review that changes rounds or location produces a new call version rather than
editing the one already sent. Pure data; no I/O.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from shotwatch.core.errors import InputError
from shotwatch.core.geo import check_latlon
from shotwatch.core.ids import stable_id
from shotwatch.core.model import Incident, iso_utc
from shotwatch.dispatch.boundaries import BoundarySet, Routing, RoutingMethod


class CallStatus(enum.StrEnum):
    """Life of a call on the dispatch board."""

    PENDING_CAD = "pending_cad"  # SF DEM: a supervisor has to enter it into CAD
    IN_CAD = "in_cad"  # a CAD job exists (created automatically, NYPD, or by a supervisor)
    UNROUTED = "unrouted"  # no unit is responsible: needs a person to route it


@dataclass(frozen=True, slots=True)
class CallForService:
    """One version of a call for service about one version of an incident."""

    call_id: str
    incident_id: str
    incident_version: int
    created_s: float
    event_time_s: float
    lat_deg: float
    lon_deg: float
    uncertainty_m: float | None
    rounds: int
    shooters: int
    automatic: bool
    moving: bool
    heading_deg: float | None
    speed_mps: float | None
    confidence: float
    agency: str
    unit_id: str | None
    unit_label: str | None
    routing_method: RoutingMethod
    routing_distance_m: float
    routing_reason: str
    status: CallStatus
    cad_job_id: str | None = None
    confirmed_by: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        where = f"call {self.call_id}"
        check_latlon(self.lat_deg, self.lon_deg, where)
        if self.rounds < 0:
            raise InputError(where, "rounds", f"must be >= 0, got {self.rounds}")
        if self.shooters < 0:
            raise InputError(where, "shooters", f"must be >= 0, got {self.shooters}")
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise InputError(where, "confidence", f"must be in [0, 1], got {self.confidence}")
        if self.heading_deg is not None and not (0.0 <= self.heading_deg < 360.0):
            raise InputError(where, "heading_deg", f"must be in [0, 360), got {self.heading_deg}")

    @property
    def idempotency_key(self) -> str:
        """Same call version -> same key: receivers drop duplicates of a retried delivery."""
        return f"{self.call_id}:v{self.incident_version}"

    @property
    def direction_text(self) -> str:
        if not self.moving:
            return "stationary"
        if self.heading_deg is None:
            return "moving (direction unknown)"
        return f"moving {compass_point(self.heading_deg)} ({self.heading_deg:.0f}°)"

    def summary(self) -> str:
        """One line a dispatcher can read aloud."""
        parts = [
            f"{self.rounds} round{'s' if self.rounds != 1 else ''}",
            f"{self.shooters} shooter{'s' if self.shooters != 1 else ''}",
        ]
        if self.automatic:
            parts.append("AUTOMATIC FIRE")
        parts.append(self.direction_text)
        where = self.unit_label or "UNROUTED"
        return f"Gunfire: {', '.join(parts)} — {where}"

    def with_status(self, status: CallStatus, cad_job_id: str | None = None) -> CallForService:
        return replace(self, status=status, cad_job_id=cad_job_id or self.cad_job_id)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["routing_method"] = self.routing_method.value
        d["status"] = self.status.value
        d["event_time_utc"] = iso_utc(self.event_time_s)
        d["created_utc"] = iso_utc(self.created_s)
        d["summary"] = self.summary()
        d["idempotency_key"] = self.idempotency_key
        return d


_POINTS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def compass_point(heading_deg: float) -> str:
    return _POINTS[round((heading_deg % 360.0) / 45.0) % 8]


def build_call(
    incident: Incident,
    version: int,
    boundaries: BoundarySet,
    *,
    created_s: float,
    require_cad_entry: bool,
    confirmed_by: str = "",
    uncertainty_m: float | None = None,
    notes: str = "",
) -> CallForService:
    """A call for ``incident`` (one of its versions), routed by ``boundaries``.

    ``require_cad_entry`` is the SF DEM mode: the call waits for a supervisor to enter it
    into CAD; otherwise (NYPD mode) it is a CAD job the moment it is created.
    """
    where = f"incident {incident.incident_id} v{version}"
    if incident.lat_deg is None or incident.lon_deg is None:
        raise InputError(where, "lat_deg/lon_deg", "incident has no geographic position")
    routing: Routing = boundaries.route(incident.lat_deg, incident.lon_deg)
    mv = incident.movement
    moving = mv is not None and mv.speed_mps > 0.0
    if not routing.routed:
        status = CallStatus.UNROUTED
    elif require_cad_entry:
        status = CallStatus.PENDING_CAD
    else:
        status = CallStatus.IN_CAD
    call_id = stable_id("cfs", incident.incident_id)
    prob = incident.gunfire_probability
    return CallForService(
        call_id=call_id,
        incident_id=incident.incident_id,
        incident_version=version,
        created_s=created_s,
        event_time_s=incident.start_s,
        lat_deg=float(incident.lat_deg),
        lon_deg=float(incident.lon_deg),
        uncertainty_m=uncertainty_m,
        rounds=incident.rounds,
        shooters=incident.shooters,
        automatic=incident.automatic,
        moving=moving,
        heading_deg=(
            mv.heading_deg % 360.0
            if (mv is not None and moving and math.isfinite(mv.heading_deg))
            else None
        ),
        speed_mps=mv.speed_mps if (mv is not None and moving) else None,
        confidence=float(prob) if prob is not None and math.isfinite(prob) else 0.0,
        agency=boundaries.agency,
        unit_id=routing.unit_id,
        unit_label=routing.label,
        routing_method=routing.method,
        routing_distance_m=routing.distance_m,
        routing_reason=routing.reason,
        status=status,
        cad_job_id=(stable_id("cad", call_id, version) if status is CallStatus.IN_CAD else None),
        confirmed_by=confirmed_by,
        notes=notes,
    )
