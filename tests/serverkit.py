"""Helpers shared by the server's integration and browser tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shotwatch.api.auth import UserRegistry
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Incident, Provenance, Pulse, ShotLocation, iso_utc
from shotwatch.sensor.messages import ReportFields
from shotwatch.sensor.signer import SensorSigner

SR = 12000
SS = "nypd-shotspotter"
SF = "sf-dem-gunshot-detection"


class EveryThirdPulse:
    """A stand-in pipeline (the PulseConsumer port): three pulses make one located shot and
    one incident at the first sensor's position."""

    def __init__(self, frame: LocalFrame) -> None:
        self.frame = frame
        self.buf: list[Pulse] = []
        self.n = 0

    def feed(self, pulse: Pulse) -> tuple[Sequence[ShotLocation], Sequence[Incident]]:
        self.buf.append(pulse)
        if len(self.buf) < 3:
            return [], []
        ps, self.buf = self.buf, []
        self.n += 1
        x = sum(p.x_m for p in ps) / 3
        y = sum(p.y_m for p in ps) / 3
        lat, lon, _ = self.frame.to_geo(x, y, 0.0)
        prov = Provenance.automatic("test-consumer", "1", pulse.t_s)
        shot = ShotLocation(
            f"shot-{self.n}",
            ps[0].t_s - 0.1,
            x,
            y,
            0.0,
            tuple(p.pulse_id for p in ps),
            tuple(p.sensor for p in ps),
            {},
            0.001,
            12.0,
            None,
            None,
            2,
            0.9,
            lat_deg=lat,
            lon_deg=lon,
            provenance=prov,
        )
        inc = Incident(
            f"inc-{self.n}",
            (shot.shot_id,),
            shot.t0_s,
            shot.t0_s,
            x,
            y,
            1,
            1,
            ((x, y),),
            False,
            None,
            None,
            lat,
            lon,
            0.97,
            provenance=prov,
            extra={
                "classification": {
                    "scores": {"gunfire": 0.97, "fireworks": 0.02},
                    "explanation": "sharp onset, N-wave",
                }
            },
        )
        return [shot], [inc]


PASSWORD = "test-password-123"


def set_passwords(srv: Any) -> None:
    """Give every account of :func:`users` the test password (Argon2id, test-sized cost),
    so tests can sign in at /login as people do."""
    from argon2 import PasswordHasher

    srv.identity.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    for uid in sorted({a.user_id for a in srv.users}):
        srv.identity.set_password(uid, PASSWORD)


def users() -> UserRegistry:
    """Service tokens naming identity-service accounts; the attributes create the accounts
    in the server's identity service on first start (ADR 0095)."""
    base = {"agency": "NYPD", "access": [SS], "trained": [SS]}
    sfb = {"agency": "SF-DEM", "access": [SF], "trained": [SF]}
    return UserRegistry.from_dicts(
        [
            {
                **base,
                "token": "tok-det",
                "user_id": "det.ana",
                "role": "investigator",
                "rank": "detective",
                "command": "75",
            },
            {
                **base,
                "token": "tok-det1",
                "user_id": "det.bo",
                "role": "investigator",
                "rank": "detective",
                "command": "1",
            },
            {
                **base,
                "token": "tok-po",
                "user_id": "po.cy",
                "role": "officer",
                "rank": "police_officer",
                "command": "75",
            },
            {
                **sfb,
                "token": "tok-sup",
                "user_id": "sup.di",
                "role": "supervisor",
                "rank": "public_safety_supervisor_8239",
                "command": "DEM",
                "workstation": "DEM-SUP-WS-1",
            },
            {"token": "tok-sup-home", "user_id": "sup.di", "workstation": "HOME"},
            {
                **sfb,
                "workstation": "DEM-DISP-7",
                "token": "tok-disp",
                "user_id": "disp.ed",
                "role": "dispatcher",
                "rank": "public_safety_dispatcher_8238",
                "command": "DEM",
            },
        ]
    )


def report(signer: SensorSigner, x_m: float, y_m: float, t_s: float) -> bytes:
    fields = ReportFields(iso_utc(t_s), 0.0004, x_m, y_m, 5.0, None, None, None, 20.0, -10.0, 0.9)
    n = 2 * SR
    tt = np.arange(n) / SR
    snippet = (3000 * np.exp(-((tt - 1.0) ** 2) / 1e-4) * np.sin(2e3 * tt)).astype(np.int16)
    return signer.report(fields, snippet, SR, t_s - 1.0)[1]
