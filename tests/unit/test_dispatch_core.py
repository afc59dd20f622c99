"""Dispatch core: routing on the real police boundaries, call model, CAP / EIDO shape,
webhook signatures and retries."""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from shotwatch.core.clock import ReplayClock
from shotwatch.core.errors import InputError
from shotwatch.core.model import Incident, Movement
from shotwatch.dispatch.boundaries import (
    PRESETS,
    BoundarySet,
    RoutingMethod,
    load_boundaries,
    natural_key,
)
from shotwatch.dispatch.channels import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    CapChannel,
    EidoChannel,
    FakeChannel,
    HttpSender,
    RetryPolicy,
    WebhookChannel,
    sign,
    verify_signature,
)
from shotwatch.dispatch.formats import CAP_NS, cap_datetime, to_cap_xml, to_eido
from shotwatch.dispatch.models import CallStatus, build_call, compass_point

T0 = 1_790_000_000.0


@pytest.fixture(scope="module")
def nypd(boundaries_dir: Path) -> BoundarySet:
    return load_boundaries(boundaries_dir / "nypd-precincts.geojson")


@pytest.fixture(scope="module")
def chicago(boundaries_dir: Path) -> BoundarySet:
    return load_boundaries(boundaries_dir / "chicago-police-districts.geojson")


@pytest.fixture(scope="module")
def sf(boundaries_dir: Path) -> BoundarySet:
    return load_boundaries(boundaries_dir / "sfpd-districts.geojson")


# --- routing on real boundaries ---------------------------------------------------------


def test_every_nypd_precinct_routes_its_own_interior_point(nypd: BoundarySet) -> None:
    assert len({b.unit_id for b in nypd.boundaries}) == 77
    for b in nypd.boundaries:
        p = b.geometry.representative_point()
        r = nypd.route(p.y, p.x)
        assert r.unit_id == b.unit_id, (b.unit_id, r)
        assert r.method is RoutingMethod.CONTAINS
        assert r.label == f"Precinct {b.unit_id}"


def test_degenerate_precincts_are_repaired_not_dropped(nypd: BoundarySet) -> None:
    repaired = sorted((b.unit_id for b in nypd.boundaries if b.repaired), key=natural_key)
    assert repaired == ["61", "113"]
    for uid in repaired:
        g = nypd.boundary(uid).geometry
        assert g.is_valid and g.area > 0


def test_chicago_unpatrolled_pieces_never_receive_calls(chicago: BoundarySet) -> None:
    units = [u for u, _ in chicago.units()]
    assert "31" not in units and len(units) == 22
    pieces = [b for b in chicago.boundaries if b.unit_id == "31"]
    assert len(pieces) == 3
    for b in pieces:
        p = b.geometry.representative_point()
        r = chicago.route(p.y, p.x)
        assert r.unit_id != "31" and r.unit_id in units
        assert r.method is RoutingMethod.NEAREST_FROM_UNPATROLLED
        assert "unpatrolled area 31" in r.reason
        # the unit chosen is truly the nearest patrolled one
        dists = {u: chicago.distance_to_unit_m(p.y, p.x, u) for u in units}
        assert r.distance_m == pytest.approx(min(dists.values()), abs=0.01)
        assert dists[r.unit_id] == pytest.approx(r.distance_m, abs=0.01)


def test_chicago_districts_and_labels(chicago: BoundarySet) -> None:
    b = next(x for x in chicago.boundaries if x.unit_id == "7")
    p = b.geometry.representative_point()
    r = chicago.route(p.y, p.x)
    assert (r.unit_id, r.label) == ("7", "District 7TH")


def test_sf_districts_and_outside_points(sf: BoundarySet) -> None:
    for b in sf.boundaries:
        p = b.geometry.representative_point()
        assert sf.route(p.y, p.x).unit_id == b.unit_id
    # Mid-Pacific: far outside, explicitly unrouted with the reason
    r = sf.route(37.0, -125.0)
    assert r.unit_id is None and r.method is RoutingMethod.UNROUTED
    assert "beyond" in r.reason and r.distance_m > 100_000


def test_point_just_outside_snaps_to_nearest_within_limit(sf: BoundarySet) -> None:
    # the westernmost vertex of the whole set: anything due west of it is outside every area
    lon0, lat0 = min(
        (c for b in sf.boundaries for poly in b.geometry.geoms for c in poly.exterior.coords),
        key=lambda c: c[0],
    )
    near = sf.route(lat0, lon0 - 0.00114)  # ~100 m west at this latitude
    assert near.method is RoutingMethod.NEAREST and near.routed
    assert 90.0 < near.distance_m <= 101.0
    far = sf.route(lat0, lon0 - 0.02)  # ~1.8 km: beyond the 250 m snap distance
    assert far.method is RoutingMethod.UNROUTED and far.unit_id is None
    assert far.candidates == (near.unit_id,)


def test_shared_vertex_is_routed_deterministically(sf: BoundarySet) -> None:
    """A point exactly on a border shared by two districts goes to the lowest id, every time,
    and both candidates are reported."""
    a, b = sf.boundary("MISSION").geometry, sf.boundary("SOUTHERN").geometry

    def coords(g: object) -> set[tuple[float, float]]:
        out: set[tuple[float, float]] = set()
        for poly in getattr(g, "geoms", [g]):
            out.update(poly.exterior.coords)  # type: ignore[attr-defined]
        return out

    shared = sorted(coords(a) & coords(b))
    assert shared, "MISSION and SOUTHERN share border vertices"
    lon, lat = shared[len(shared) // 2]
    results = {sf.route(lat, lon) for _ in range(3)}
    assert len(results) == 1
    r = results.pop()
    assert r.method is RoutingMethod.SHARED_EDGE
    assert set(r.candidates) >= {"MISSION", "SOUTHERN"}
    assert r.unit_id == sorted(r.candidates, key=natural_key)[0] == "MISSION"


def test_bad_features_are_reported_and_the_rest_used() -> None:
    square = {
        "type": "Polygon",
        "coordinates": [[[0, 0], [0, 0.01], [0.01, 0.01], [0.01, 0], [0, 0]]],
    }
    data = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"precinct": "1"}, "geometry": square},
            {"type": "Feature", "properties": {}, "geometry": square},
            {"type": "Feature", "properties": {"precinct": "2"}, "geometry": {"type": "Point"}},
        ],
    }
    bs = BoundarySet.from_geojson(data, PRESETS["nypd-precincts"])
    assert [b.unit_id for b in bs.boundaries] == ["1"]
    assert [(e.where, e.field) for e in bs.errors] == [
        ("boundaries nypd-precincts feature[1]", "precinct"),
        ("boundaries nypd-precincts feature[2]", "geometry"),
    ]
    with pytest.raises(InputError, match="latitude"):
        bs.route(95.0, 0.0)


def test_natural_key_orders_numbers_numerically() -> None:
    assert sorted(["10", "9", "100", "B", "A"], key=natural_key) == ["9", "10", "100", "A", "B"]


# --- call model and formats ---------------------------------------------------------


def _incident(lat: float, lon: float, **kw: object) -> Incident:
    base: dict[str, object] = {
        "incident_id": "inc-1",
        "shot_ids": ("s1", "s2", "s3"),
        "start_s": T0,
        "end_s": T0 + 1.5,
        "x_m": 0.0,
        "y_m": 0.0,
        "rounds": 3,
        "shooters": 1,
        "shooter_positions": ((0.0, 0.0),),
        "automatic": False,
        "cadence_rps": 2.0,
        "movement": Movement(speed_mps=1.5, heading_deg=92.0, distance_m=2.0),
        "lat_deg": lat,
        "lon_deg": lon,
        "gunfire_probability": 0.93,
    }
    base.update(kw)
    return Incident(**base)  # type: ignore[arg-type]


def test_build_call_nypd_mode_is_a_cad_job(nypd: BoundarySet) -> None:
    p = nypd.boundary("75").geometry.representative_point()
    call = build_call(_incident(p.y, p.x), 2, nypd, created_s=T0 + 20, require_cad_entry=False)
    assert call.unit_id == "75" and call.agency == "NYPD"
    assert call.status is CallStatus.IN_CAD and call.cad_job_id
    assert call.moving and call.heading_deg == 92.0 and compass_point(92.0) == "E"
    assert call.idempotency_key == f"{call.call_id}:v2"
    assert "3 rounds" in call.summary() and "moving E" in call.summary()


def test_build_call_sf_mode_waits_for_cad_entry(sf: BoundarySet) -> None:
    p = sf.boundary("MISSION").geometry.representative_point()
    call = build_call(_incident(p.y, p.x), 1, sf, created_s=T0, require_cad_entry=True)
    assert call.status is CallStatus.PENDING_CAD and call.cad_job_id is None
    far = build_call(_incident(37.0, -125.0), 1, sf, created_s=T0, require_cad_entry=False)
    assert far.status is CallStatus.UNROUTED and far.unit_id is None


def test_build_call_needs_a_position(sf: BoundarySet) -> None:
    with pytest.raises(InputError, match="geographic position"):
        build_call(_incident(0, 0, lat_deg=None), 1, sf, created_s=T0, require_cad_entry=False)


CAP_DT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
CAP_ORDER_ALERT = [
    "identifier",
    "sender",
    "sent",
    "status",
    "msgType",
    "source",
    "scope",
    "restriction",
    "addresses",
    "code",
    "note",
    "references",
    "incidents",
    "info",
]
CAP_ORDER_INFO = [
    "language",
    "category",
    "event",
    "responseType",
    "urgency",
    "severity",
    "certainty",
    "audience",
    "eventCode",
    "effective",
    "onset",
    "expires",
    "senderName",
    "headline",
    "description",
    "instruction",
    "web",
    "contact",
    "parameter",
    "resource",
    "area",
]


def _local(el: ET.Element) -> str:
    return el.tag.split("}", 1)[1]


def _in_schema_order(children: list[str], order: list[str]) -> bool:
    idx = [order.index(c) for c in children]
    return idx == sorted(idx)


def test_cap_alert_structure(nypd: BoundarySet) -> None:
    p = nypd.boundary("75").geometry.representative_point()
    call = build_call(
        _incident(p.y, p.x, automatic=True),
        1,
        nypd,
        created_s=T0,
        require_cad_entry=False,
        uncertainty_m=25.0,
    )
    xml = to_cap_xml(call, sender="shotwatch@nypd.example", sent_s=T0 + 0.75)
    root = ET.fromstring(xml)
    assert root.tag == f"{{{CAP_NS}}}alert"
    names = [_local(c) for c in root]
    for req in ("identifier", "sender", "sent", "status", "msgType", "scope", "info"):
        assert req in names
    assert _in_schema_order(names, CAP_ORDER_ALERT)
    ns = {"c": CAP_NS}
    assert root.findtext("c:status", namespaces=ns) == "Actual"
    assert root.findtext("c:msgType", namespaces=ns) == "Alert"
    assert root.findtext("c:scope", namespaces=ns) == "Restricted"
    assert root.findtext("c:restriction", namespaces=ns)  # required with Restricted
    sent = root.findtext("c:sent", namespaces=ns) or ""
    assert CAP_DT.match(sent) and sent.endswith("-00:00") and sent == cap_datetime(T0)
    ident = root.findtext("c:identifier", namespaces=ns) or ""
    assert ident and not re.search(r"[\s,<&]", ident)
    info = root.find("c:info", ns)
    assert info is not None
    assert _in_schema_order([_local(c) for c in info], CAP_ORDER_INFO)
    assert info.findtext("c:category", namespaces=ns) == "Security"
    assert info.findtext("c:event", namespaces=ns) == "Gunfire"
    assert info.findtext("c:urgency", namespaces=ns) == "Immediate"
    assert info.findtext("c:severity", namespaces=ns) == "Extreme"  # automatic fire
    assert info.findtext("c:certainty", namespaces=ns) == "Observed"
    params = {
        p.findtext("c:valueName", namespaces=ns): p.findtext("c:value", namespaces=ns)
        for p in info.findall("c:parameter", ns)
    }
    assert params["rounds"] == "3" and params["automaticFire"] == "true"
    assert params["unit"] == "75"
    circle = info.findtext("c:area/c:circle", namespaces=ns) or ""
    m = re.fullmatch(r"(-?\d+\.\d+),(-?\d+\.\d+) (\d+\.\d+)", circle)
    assert m, circle
    assert abs(float(m.group(1)) - p.y) < 1e-5 and abs(float(m.group(2)) - p.x) < 1e-5
    assert float(m.group(3)) == pytest.approx(0.025)  # km
    assert info.findtext("c:area/c:areaDesc", namespaces=ns) == "Precinct 75"
    upd = ET.fromstring(
        to_cap_xml(call, sender="s", sent_s=T0, references="s,cfs-x.v1,2026-01-01T00:00:00-00:00")
    )
    assert upd.findtext("c:msgType", namespaces=ns) == "Update"
    assert _in_schema_order([_local(c) for c in upd], CAP_ORDER_ALERT)


def test_eido_shape(sf: BoundarySet) -> None:
    p = sf.boundary("MISSION").geometry.representative_point()
    call = build_call(_incident(p.y, p.x), 1, sf, created_s=T0, require_cad_entry=False)
    eido = to_eido(call, agency_id="sfdem.example", issuing_element="sw", updated_s=T0)
    json.dumps(eido)  # serialisable
    assert eido["eidoVersion"] == "1.0"
    for comp in ("incidentComponent", "locationComponent", "agencyComponent"):
        assert isinstance(eido[comp], list) and eido[comp]
        for c in eido[comp]:
            assert c["$id"] and c["lastUpdateTimeStamp"].endswith("Z")
    inc = eido["incidentComponent"][0]
    assert inc["incidentTypeCommonRegistryText"] == "Gunfire"
    assert inc["incidentTrackingIdentifier"].startswith("urn:emergency:uid:incidentid:")
    # references resolve to components in the same object
    ids = {c["$id"] for k, v in eido.items() if k.endswith("Component") for c in v}
    for ref in inc["locationReference"] + inc["additionalDataReference"]:
        assert ref["$ref"] in ids
    pidf = ET.fromstring(eido["locationComponent"][0]["locationByValue"])
    pos = pidf.find(".//{http://www.opengis.net/gml}pos")
    assert pos is not None and pos.text
    lat, lon = map(float, pos.text.split())
    assert (lat, lon) == (pytest.approx(p.y, abs=1e-6), pytest.approx(p.x, abs=1e-6))
    details = json.loads(eido["additionalDataComponent"][0]["additionalDataByValue"])
    assert details["rounds"] == 3 and details["routedUnit"] == "MISSION"


# --- webhook signatures, retries, idempotency -----------------------------------------


def test_signature_roundtrip_and_rejections() -> None:
    secret, body = b"k" * 32, b'{"a":1}'
    hdr = sign(secret, int(T0), body)
    assert verify_signature(secret, hdr, body, now_s=T0 + 10) == int(T0)
    with pytest.raises(InputError, match="does not match"):
        verify_signature(secret, hdr, body + b" ", now_s=T0)
    with pytest.raises(InputError, match="does not match"):
        verify_signature(b"other", hdr, body, now_s=T0)
    with pytest.raises(InputError, match="window"):
        verify_signature(secret, hdr, body, now_s=T0 + 301)
    with pytest.raises(InputError, match="missing"):
        verify_signature(secret, None, body, now_s=T0)
    with pytest.raises(InputError, match="malformed"):
        verify_signature(secret, "garbage", body, now_s=T0)


def _call(sf: BoundarySet):  # type: ignore[no-untyped-def]
    p = sf.boundary("TARAVAL").geometry.representative_point()
    return build_call(_incident(p.y, p.x), 3, sf, created_s=T0, require_cad_entry=False)


def test_webhook_retries_with_backoff_then_succeeds(sf: BoundarySet) -> None:
    secret = b"s3cret"
    seen: list[httpx.Request] = []
    responses = iter([503, 500, 200])

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(next(responses))

    clock = ReplayClock(T0)
    slept: list[float] = []

    async def fake_sleep(dt: float) -> None:
        slept.append(dt)
        clock.advance_by(dt)

    async def go() -> object:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            sender = HttpSender(
                "https://cad.example/hook",
                secret,
                clock,
                client,
                RetryPolicy(max_attempts=5, base_delay_s=0.5, max_delay_s=0.8),
                fake_sleep,
            )
            return await WebhookChannel(sender).deliver(_call(sf))

    d = asyncio.run(go())
    assert d.ok and len(d.attempts) == 3  # type: ignore[attr-defined]
    assert slept == [0.5, 0.8]  # exponential, capped
    keys = {r.headers[IDEMPOTENCY_HEADER] for r in seen}
    assert len(keys) == 1 and keys.pop().endswith(":v3")
    for r in seen:  # every attempt is signed over its own body and time
        verify_signature(secret, r.headers[SIGNATURE_HEADER], r.content, now_s=clock.now())
    assert json.loads(seen[0].content)["unit_id"] == "TARAVAL"


def test_webhook_gives_up_on_4xx_and_on_exhaustion(sf: BoundarySet) -> None:
    calls = {"n": 0}

    def refuse(req: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(400)

    def down(req: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        raise httpx.ConnectError("refused", request=req)

    async def nosleep(dt: float) -> None:
        return None

    async def run(handler):  # type: ignore[no-untyped-def]
        calls["n"] = 0
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            s = HttpSender("https://x", b"k", ReplayClock(T0), client, RetryPolicy(3), nosleep)
            return await WebhookChannel(s).deliver(_call(sf)), calls["n"]

    d, n = asyncio.run(run(refuse))
    assert not d.ok and n == 1 and "HTTP 400" in d.reason
    d, n = asyncio.run(run(down))
    assert not d.ok and n == 3 and "gave up after 3" in d.reason


def test_cap_and_eido_channels_post_their_formats(sf: BoundarySet) -> None:
    got: dict[str, httpx.Request] = {}

    def handler(req: httpx.Request) -> httpx.Response:
        got[req.url.path] = req
        return httpx.Response(202)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            clock = ReplayClock(T0)
            cap = CapChannel(HttpSender("https://h/cap", b"k", clock, client), cap_sender="sw")
            eido = EidoChannel(
                HttpSender("https://h/eido", b"k", clock, client),
                agency_id="a",
                issuing_element="sw",
            )
            call = _call(sf)
            assert (await cap.deliver(call)).ok
            assert (await eido.deliver(call)).ok

    asyncio.run(go())
    assert got["/cap"].headers["content-type"] == "application/cap+xml"
    assert ET.fromstring(got["/cap"].content).tag == f"{{{CAP_NS}}}alert"
    assert json.loads(got["/eido"].content)["eidoVersion"] == "1.0"


def test_fake_channel_records_and_fails_on_demand(sf: BoundarySet) -> None:
    ok, bad = FakeChannel("a"), FakeChannel("b", fail_with="down")
    call = _call(sf)
    assert asyncio.run(ok.deliver(call)).ok and ok.sent == [call]
    d = asyncio.run(bad.deliver(call))
    assert not d.ok and d.reason == "down"
