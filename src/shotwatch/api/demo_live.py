"""``shotwatch serve --demo``: the whole system on the embedded defaults, live in the browser.

A simulated sensor network (the shipped scenarios) is laid over a real police district; each
sensor gets an Ed25519 key, and its pulses become signed reports (with the simulated audio
around each arrival) posted to the running server over HTTP at the pace they happened, shifted
to now. They go through signature checks, the live pipeline, the review queue and, once a
reviewer confirms, dispatch. Demo accounts (user name, password, TOTP secret) are created in
the identity service and printed at start; people sign in at /login as on a real server.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import iso_utc
from shotwatch.dispatch.boundaries import Boundary, BoundarySet
from shotwatch.policy.identity import IdentityService
from shotwatch.sensor.messages import ReportFields
from shotwatch.sensor.signer import SensorSigner

DEMO_SCENARIOS = ("city_single_shooter", "automatic_fire", "two_shooters_50m", "moving_shooter")
DEMO_ORIGIN = (41.8781, -87.6298)  # the simulated network's centre (Chicago, district 1)
DEMO_QUADRANTS = ((-1, 1), (1, 1), (-1, -1), (1, -1))  # where scenario k fires: NW NE SW SE
DEMO_QUADRANT_M = 450.0  # from the centre, along each axis


@dataclass(frozen=True)
class DemoReport:
    t_rel_s: float
    serial: str
    fields: ReportFields
    snippet: np.ndarray
    rate_hz: int


def plan(
    names: tuple[str, ...] = DEMO_SCENARIOS, seed: int = 1, gap_s: float = 20.0
) -> list[DemoReport]:
    """Every scenario's pulses as reports, scenarios one after another ``gap_s`` apart."""
    from shotwatch.sim import example_scenarios, load_scenario, simulate_pulses
    from shotwatch.sim.audio import simulate_audio
    from shotwatch.sim.scenario import GridLayout

    shipped = example_scenarios()
    out: list[DemoReport] = []
    offset = 2.0
    network = None
    for k, name in enumerate(names):
        sc = load_scenario(shipped[name])
        # One network hears every scenario, as in a city: the first scenario's sensors (same
        # layout and seed, so the same serials at the same positions), centred on the demo
        # origin. Separate networks per scenario would leave the earlier ones' sensors silent
        # at the later shots, and the associator rightly doubts a shot that most nearby
        # sensors did not hear.
        if network is None:
            grid = sc.sensors
            if isinstance(grid, GridLayout):
                grid = grid.model_copy(
                    update={"origin_m": (-grid.area_m[0] / 2, -grid.area_m[1] / 2)}
                )
            network = grid
        sc = sc.model_copy(update={"sensors": network, "sources": _moved(sc.sources, k)})
        res = simulate_pulses(sc, seed)
        if not res.pulses:
            continue
        audio = {a.serial: a for a in simulate_audio(res.scene)}
        t0 = min(p.t_s for p in res.pulses)
        full_scale = sc.detection.full_scale_db_spl
        for p in sorted(res.pulses, key=lambda p: p.t_s):
            a = audio.get(p.sensor)
            rate = a.sample_rate_hz if a else 12000
            snippet = np.zeros(2 * rate, np.int16)
            if a is not None:
                pcm = a.pcm16()
                i0 = round((p.t_s - 1.0 - a.start_s) * rate)
                lo, hi = max(0, i0), min(pcm.size, i0 + 2 * rate)
                if hi > lo:
                    snippet[lo - i0 : hi - i0] = pcm[lo:hi]
            fields = ReportFields(
                arrival_utc="",
                clock_error_s=min(p.clock_error_s, 0.5),
                x_m=p.x_m,
                y_m=p.y_m,
                z_m=p.z_m,
                lat_deg=None,
                lon_deg=None,
                elevation_m=None,
                snr_db=p.snr_db if np.isfinite(p.snr_db) else 10.0,
                # the level the sensor measured, in its own digital scale, with its calibration
                level_dbfs=p.level_db_spl - full_scale,
                score=p.score if np.isfinite(p.score) else 0.5,
                full_scale_db_spl=full_scale,
            )
            serial = p.sensor
            out.append(DemoReport(offset + p.t_s - t0, serial, fields, snippet, rate))
        offset += max(p.t_s for p in res.pulses) - t0 + gap_s
    return out


def _moved(sources: list[Any], k: int) -> list[Any]:
    """A scenario's sources moved (together) to the centre of quadrant ``k`` of the network
    (NW, NE, SW, SE), so that the scenarios are separate incidents in separate districts."""
    sx, sy = DEMO_QUADRANTS[k % len(DEMO_QUADRANTS)]
    placed = [s for s in sources if s.position_m is not None]
    if not placed:
        return list(sources)
    cx = float(np.mean([s.position_m[0] for s in placed]))
    cy = float(np.mean([s.position_m[1] for s in placed]))
    dx, dy = sx * DEMO_QUADRANT_M - cx, sy * DEMO_QUADRANT_M - cy
    out = []
    for src in sources:
        if src.position_m is not None:
            x, y, z = src.position_m
            src = src.model_copy(update={"position_m": (x + dx, y + dy, z)})  # noqa: PLW2901
        out.append(src)
    return out


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    role: str
    totp_secret: str
    workstation: str = ""


DEMO_PEOPLE = {
    "nypd": (
        ("demo.analyst", "NYPD", "investigator", "detective", ""),
        ("demo.officer", "NYPD", "officer", "police_officer", ""),
    ),
    "sfdem": (
        (
            "demo.supervisor",
            "SF-DEM",
            "supervisor",
            "public_safety_supervisor_8239",
            "DEM-SUP-WS-1",
        ),
        ("demo.dispatcher", "SF-DEM", "dispatcher", "public_safety_dispatcher_8238", ""),
    ),
}
DEMO_POLICY = {"nypd": "nypd-shotspotter", "sfdem": "sf-dem-gunshot-detection"}


def demo_boundaries(lat_deg: float, lon_deg: float, half_m: float = 3000.0) -> BoundarySet:
    """Four made-up 3 km square districts ("Demo 1".."Demo 4") meeting at the given point, for
    a demo on a machine without a real city's boundary file."""
    from shapely.geometry import Polygon

    frame = LocalFrame(lat_deg, lon_deg)
    out = []
    for i, (sx, sy) in enumerate(DEMO_QUADRANTS, start=1):
        corners = [(0.0, 0.0), (sx * half_m, 0.0), (sx * half_m, sy * half_m), (0.0, sy * half_m)]
        ring = []
        for x, y in corners:
            lat, lon, _ = frame.to_geo(x, y, 0.0)
            ring.append((lon, lat))
        out.append(Boundary(f"D{i}", f"Demo {i}", True, Polygon(ring)))
    return BoundarySet(out, agency="DEMO")


def demo_users(identity: IdentityService, command: str, mode: str = "nypd") -> list[DemoAccount]:
    """People of ``command`` for the demo, created in the identity service like real users:
    Argon2id password (fresh, random), enrolled TOTP, access granted by two people (demo CO
    and demo ITB) and training acknowledged. Existing accounts are given new passwords."""
    from shotwatch.policy.tables import UserRow

    pid = DEMO_POLICY[mode]
    out = []
    for username, agency, role, rank, ws in DEMO_PEOPLE[mode]:
        password = secrets.token_urlsafe(9)
        with identity._session() as s:
            exists = s.get(UserRow, username) is not None
        if exists:
            identity.set_password(username, password)
        else:
            identity.create_user(
                user_id=username,
                username=username,
                agency=agency,
                rank=rank,
                role=role,
                command=command if agency == "NYPD" else "DEM",
                password=password,
                display_name=f"Demo {role}",
                created_by="demo",
            )
            identity.grant_access(username, pid, requested_by="demo.co", approved_by="demo.itb")
            identity.acknowledge_training(username, pid)
        out.append(DemoAccount(username, password, role, identity.enroll_totp(username), ws))
    return out


async def feed(
    base_url: str, reports: list[DemoReport], keys: dict[str, Ed25519PrivateKey], seq_dir: Path
) -> None:
    """Post the reports to the server as the sensors would, in real time. Arrival times keep
    the simulated differences exactly (they are data, not the moment of sending)."""
    signers = {s: SensorSigner(s, k, seq_dir / s.replace(":", "_")) for s, k in keys.items()}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for _ in range(100):  # wait for the server to listen
            try:
                await client.get("/openapi.json")
                break
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
        start = time.time()
        for r in reports:
            t = start + r.t_rel_s
            await asyncio.sleep(max(0.0, t - time.time()))
            f = replace(r.fields, arrival_utc=iso_utc(t))
            _, body = signers[r.serial].report(f, r.snippet, r.rate_hz, t - 1.0)
            resp = await client.post("/api/v1/reports", content=body)
            if resp.status_code >= 400:
                print(f"demo: report from {r.serial} refused: {resp.text[:200]}")
