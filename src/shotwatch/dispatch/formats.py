"""Wire formats for a call for service: OASIS CAP 1.2 XML and NENA EIDO JSON. Pure functions.

CAP 1.2 (OASIS Common Alerting Protocol): element order follows the CAP 1.2 XML schema;
``sent`` is a dateTime with an explicit offset and no fractional seconds, UTC written as
``-00:00`` (the standard forbids ``Z``); the area is a ``circle`` "lat,lon radius" with the
radius in kilometres (WGS84).

EIDO (NENA-STA-021 Emergency Incident Data Object, conveyed per NENA-STA-024): a JSON
object with ``$id``, ``eidoVersion``, ``lastUpdateTimeStamp`` and component arrays
(``incidentComponent``, ``locationComponent``, ``agencyComponent``,
``additionalDataComponent``) linked by ``$ref``; the location is a PIDF-LO document by value
with a GML circle (geopriv shapes, RFC 5491).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from shotwatch.core.model import iso_utc
from shotwatch.dispatch.models import CallForService, CallStatus

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
DEFAULT_CAP_RADIUS_M = 100.0


def cap_datetime(t_s: float) -> str:
    """POSIX seconds -> CAP dateTime (``2026-11-23T09:10:35-00:00``)."""
    dt = datetime.fromtimestamp(int(t_s), tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def cap_identifier(call: CallForService) -> str:
    """Unique per call version; CAP forbids spaces, commas and the XML specials."""
    return f"{call.call_id}.v{call.incident_version}"


def to_cap_xml(
    call: CallForService,
    *,
    sender: str,
    sent_s: float,
    status: str = "Actual",
    restriction: str = "Law enforcement dispatch only",
    references: str | None = None,
    radius_m: float | None = None,
) -> bytes:
    """CAP 1.2 ``alert`` for a call (``Update`` when ``references`` names the earlier one,
    as "sender,identifier,sent")."""
    ET.register_namespace("", CAP_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
        if text is not None:
            el.text = text
        return el

    alert = ET.Element(f"{{{CAP_NS}}}alert")
    sub(alert, "identifier", cap_identifier(call))
    sub(alert, "sender", sender)
    sub(alert, "sent", cap_datetime(sent_s))
    sub(alert, "status", status)
    sub(alert, "msgType", "Update" if references else "Alert")
    sub(alert, "source", call.confirmed_by or "shotwatch")
    sub(alert, "scope", "Restricted")
    sub(alert, "restriction", restriction)
    if references:
        sub(alert, "references", references)
    sub(alert, "incidents", call.incident_id)
    info = sub(alert, "info")
    sub(info, "language", "en-US")
    sub(info, "category", "Security")
    sub(info, "event", "Gunfire")
    sub(info, "responseType", "Monitor")
    sub(info, "urgency", "Immediate")
    sub(info, "severity", "Extreme" if call.automatic or call.shooters > 1 else "Severe")
    sub(info, "certainty", "Observed")
    sub(info, "eventCode")
    code = info[-1]
    ET.SubElement(code, f"{{{CAP_NS}}}valueName").text = "shotwatch"
    ET.SubElement(code, f"{{{CAP_NS}}}value").text = "gunfire"
    sub(info, "onset", cap_datetime(call.event_time_s))
    sub(info, "senderName", call.agency or sender)
    sub(info, "headline", call.summary()[:160])
    sub(
        info,
        "description",
        f"Acoustic gunfire detection confirmed by a reviewer at {iso_utc(call.created_s)}. "
        f"{call.summary()}. Confidence {call.confidence:.2f}. "
        f"Routing: {call.routing_method.value}"
        + (f" ({call.routing_reason})" if call.routing_reason else ""),
    )
    for name, value in (
        ("rounds", str(call.rounds)),
        ("shooters", str(call.shooters)),
        ("automaticFire", "true" if call.automatic else "false"),
        ("moving", "true" if call.moving else "false"),
        ("headingDeg", "" if call.heading_deg is None else f"{call.heading_deg:.0f}"),
        ("confidence", f"{call.confidence:.3f}"),
        ("unit", call.unit_id or ""),
        ("incidentVersion", str(call.incident_version)),
    ):
        p = sub(info, "parameter")
        ET.SubElement(p, f"{{{CAP_NS}}}valueName").text = name
        ET.SubElement(p, f"{{{CAP_NS}}}value").text = value
    area = sub(info, "area")
    sub(area, "areaDesc", call.unit_label or "unrouted")
    r_m = radius_m if radius_m is not None else (call.uncertainty_m or DEFAULT_CAP_RADIUS_M)
    sub(area, "circle", f"{call.lat_deg:.6f},{call.lon_deg:.6f} {max(r_m, 1.0) / 1000.0:.3f}")
    if call.unit_id:
        g = sub(area, "geocode")
        ET.SubElement(g, f"{{{CAP_NS}}}valueName").text = f"{call.agency or 'police'}-unit"
        ET.SubElement(g, f"{{{CAP_NS}}}value").text = call.unit_id
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)


def _pidf_circle(call: CallForService, radius_m: float, ts: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        'xmlns:gml="http://www.opengis.net/gml" '
        'xmlns:gs="http://www.opengis.net/pidflo/1.0" '
        'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        f'entity="pres:{escape(call.call_id)}@shotwatch">'
        f'<dm:device id="{escape(call.incident_id)}"><gp:geopriv><gp:location-info>'
        '<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">'
        f"<gml:pos>{call.lat_deg:.6f} {call.lon_deg:.6f}</gml:pos>"
        f'<gs:radius uom="urn:ogc:def:uom:EPSG::9001">{radius_m:.1f}</gs:radius>'
        "</gs:Circle></gp:location-info><gp:usage-rules/>"
        "<gp:method>Acoustic</gp:method></gp:geopriv>"
        f"<dm:timestamp>{ts}</dm:timestamp></dm:device></presence>"
    )


def to_eido(
    call: CallForService,
    *,
    agency_id: str,
    issuing_element: str,
    updated_s: float,
    radius_m: float | None = None,
) -> dict[str, Any]:
    """EIDO JSON object for a call (incident, location, agency, additional-data components)."""
    ts = iso_utc(updated_s)
    base = f"urn:emergency:uid:incidentid:{call.call_id}:{agency_id}"
    inc_id, loc_id, ad_id = f"{base}:incident", f"{base}:location", f"{base}:shotdata"
    agency_ref = {"$ref": agency_id}
    status_text = {
        CallStatus.IN_CAD: "Dispatched",
        CallStatus.PENDING_CAD: "Received",
        CallStatus.UNROUTED: "Received",
    }[call.status]
    r_m = radius_m if radius_m is not None else (call.uncertainty_m or DEFAULT_CAP_RADIUS_M)
    details = {
        "rounds": call.rounds,
        "shooters": call.shooters,
        "automaticFire": call.automatic,
        "moving": call.moving,
        "headingDeg": call.heading_deg,
        "speedMps": call.speed_mps,
        "confidence": call.confidence,
        "eventTime": iso_utc(call.event_time_s),
        "incidentVersion": call.incident_version,
        "routedUnit": call.unit_id,
        "routingMethod": call.routing_method.value,
    }
    return {
        "$id": base,
        "eidoVersion": "1.0",
        "lastUpdateTimeStamp": ts,
        "updatedByAgencyReference": agency_ref,
        "issuingElementIdentification": issuing_element,
        "incidentComponent": [
            {
                "$id": inc_id,
                "lastUpdateTimeStamp": ts,
                "updatedByAgencyReference": agency_ref,
                "incidentTrackingIdentifier": f"urn:emergency:uid:incidentid:"
                f"{call.incident_id}:{agency_id}",
                "localIncidentIdentifier": call.cad_job_id or call.call_id,
                "incidentTypeCommonRegistryText": "Gunfire",
                "incidentTypeInternalText": call.summary(),
                "incidentStatusCommonRegistryText": [status_text],
                "incidentCommonPriorityNumber": 1,
                "locationReference": [{"$ref": loc_id}],
                "additionalDataReference": [{"$ref": ad_id}],
                "dispatchOrganizationIdentifier": call.unit_id,
            }
        ],
        "locationComponent": [
            {
                "$id": loc_id,
                "lastUpdateTimeStamp": ts,
                "updatedByAgencyReference": agency_ref,
                "locationTypeDescriptionRegistryText": "IncidentLocation",
                "locationByValue": _pidf_circle(call, r_m, ts),
            }
        ],
        "agencyComponent": [
            {
                "$id": agency_id,
                "lastUpdateTimeStamp": ts,
                "agencyRoleDescriptionRegistryText": ["Dispatch"],
                "agencyType": ["Law Enforcement"],
                "agencyName": call.agency,
            }
        ],
        "additionalDataComponent": [
            {
                "$id": ad_id,
                "lastUpdateTimeStamp": ts,
                "updatedByAgencyReference": agency_ref,
                "additionalDataByValue": json.dumps(details, sort_keys=True),
            }
        ],
    }
