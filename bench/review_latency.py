"""Review and dispatch latency with many open consoles (issue #5 targets).

Runs the real web application under uvicorn on localhost with N consoles connected to the
server-sent-events stream (each authenticated, each filtered by the policy gate), a real
signed-webhook receiver (verifies every signature) and signed sensor reports over HTTP:

* report -> queue: time from sending the last of an incident's sensor reports until each
  console has received the incident's queue event (target p50 <= 300 ms, p99 <= 1 s);
* confirm -> board + webhook: time from sending the confirm command until the call is on every
  console's board stream AND the webhook receiver has accepted the signed delivery
  (target p99 <= 500 ms).

The pipeline is a stand-in that makes one incident from every three reports (association and
location are measured by their own benchmarks); everything else is the production path.

    python3 bench/review_latency.py --data ../shared/data --consoles 50 --incidents 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shotwatch.api.app import create_app
from shotwatch.api.auth import UserRegistry
from shotwatch.api.build import build_server
from shotwatch.core.clock import SystemClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Incident, Provenance, Pulse, ShotLocation, iso_utc
from shotwatch.core.settings import DispatchSettings
from shotwatch.dispatch.boundaries import load_boundaries
from shotwatch.dispatch.channels import (
    SIGNATURE_HEADER,
    HttpSender,
    RetryPolicy,
    WebhookChannel,
    verify_signature,
)
from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore
from shotwatch.sensor.messages import ReportFields
from shotwatch.sensor.signer import SensorSigner

SS = "nypd-shotspotter"
SECRET = b"bench-secret-0123456789abcdef"
SR = 12000


class Triples:
    """Stand-in pipeline: every three pulses -> one shot and one incident."""

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
        x, y = sum(p.x_m for p in ps) / 3, sum(p.y_m for p in ps) / 3
        lat, lon, _ = self.frame.to_geo(x, y, 0.0)
        prov = Provenance.automatic("bench-triples", "1", pulse.t_s)
        shot = ShotLocation(
            f"b-shot-{self.n}",
            ps[0].t_s,
            x,
            y,
            0.0,
            tuple(p.pulse_id for p in ps),
            tuple(p.sensor for p in ps),
            {},
            0.001,
            10.0,
            None,
            None,
            2,
            0.9,
            lat_deg=lat,
            lon_deg=lon,
            provenance=prov,
        )
        inc = Incident(
            f"b-inc-{self.n}",
            (shot.shot_id,),
            shot.t0_s,
            shot.t0_s,
            x,
            y,
            1 + self.n % 3,  # a mix of single- and multi-shot incidents
            1,
            ((x, y),),
            False,
            None,
            None,
            lat,
            lon,
            (self.n * 37 % 100) / 100.0,  # and of gunfire probabilities
            provenance=prov,
        )
        return [shot], [inc]


class Thread:
    def __init__(self, app: Any, port: int) -> None:
        cfg = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="error",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.uv = uvicorn.Server(cfg)
        self.loop = asyncio.new_event_loop()
        self.t = threading.Thread(target=lambda: self.loop.run_until_complete(self.uv.serve()))
        self.t.daemon = True

    def start(self) -> None:
        self.t.start()
        while not self.uv.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.uv.should_exit = True
        self.t.join(5)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) if xs else float("nan")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    nypd = load_boundaries(Path(args.data) / "boundaries" / "nypd-precincts.geojson")
    p = nypd.boundary("75").geometry.representative_point()
    frame = LocalFrame(p.y, p.x)
    clock = SystemClock()
    keys = {f"SN-{i}": Ed25519PrivateKey.generate() for i in range(3)}
    users = UserRegistry.from_dicts(
        [
            {
                "token": f"tok-{i}",
                "user_id": f"det{i}",
                "agency": "NYPD",
                "role": "investigator",
                "rank": "detective",
                "command": "75",
                "access": [SS],
                "trained": [SS],
            }
            for i in range(args.consoles)
        ]
    )
    received: dict[str, float] = {}

    async def hook(request: Request) -> Response:
        body = await request.body()
        verify_signature(SECRET, request.headers.get(SIGNATURE_HEADER), body, now_s=time.time())
        received[json.loads(body)["incident_id"]] = time.perf_counter()
        return Response(status_code=204)

    hook_port, app_port = args.port + 1, args.port
    receiver = Thread(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), hook_port)
    receiver.start()
    client_for_channel = httpx.AsyncClient()
    channel = WebhookChannel(
        HttpSender(
            f"http://127.0.0.1:{hook_port}/hook",
            SECRET,
            clock,
            client_for_channel,
            RetryPolicy(3, 0.05),
        )
    )
    srv = build_server(
        DispatchSettings(),
        clock=clock,
        boundaries=nypd,
        users=users,
        channels=[channel],
        verifier=Ingest(
            MemoryIngestStore({s: k.public_key() for s, k in keys.items()}), IngestLimits(), clock
        ),
        consumer=Triples(frame),
        frame=frame,
    )
    srv.classify = True  # as `shotwatch serve` runs: score each incident from its audio
    server = Thread(create_app(srv), app_port)
    server.start()
    base = f"http://127.0.0.1:{app_port}"
    tmp = Path(tempfile.mkdtemp(prefix="sw-bench-"))
    signers = {s: SensorSigner(s, k, tmp / s) for s, k in keys.items()}
    queue_seen: dict[str, list[float]] = {}
    board_seen: dict[str, list[float]] = {}
    ready = asyncio.Event()
    connected = 0

    async def console(i: int) -> None:
        nonlocal connected
        h = {"Authorization": f"Bearer tok-{i}", "X-Purpose": "emergency_response"}
        async with (
            httpx.AsyncClient(timeout=None) as c,
            c.stream("GET", f"{base}/api/v1/events", headers=h) as r,
        ):
            event = ""
            async for line in r.aiter_lines():
                if line.startswith(": connected"):
                    connected += 1
                    if connected == args.consoles:
                        ready.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    t = time.perf_counter()
                    d = json.loads(line[6:])
                    if event == "queue" and d.get("state") == "open" and d["version"] == 1:
                        queue_seen.setdefault(d["incident_id"], []).append(t)
                    elif event == "board" and d.get("event") == "call":
                        board_seen.setdefault(d["call"]["incident_id"], []).append(t)

    tasks = [asyncio.create_task(console(i)) for i in range(args.consoles)]
    await asyncio.wait_for(ready.wait(), 60)
    pos = [(0.0, 150.0), (130.0, -80.0), (-130.0, -80.0)]
    tt = np.arange(2 * SR) / SR
    snippet = (3000 * np.exp(-((tt - 1.0) ** 2) / 1e-4) * np.sin(2e3 * tt)).astype(np.int16)
    report_to_queue: list[float] = []
    confirm_to_all: list[float] = []
    confirm_to_board: list[float] = []
    confirm_to_hook: list[float] = []
    h0 = {"Authorization": "Bearer tok-0", "X-Purpose": "emergency_response"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        for n in range(1, args.incidents + 1):
            now = time.time()
            bodies = []
            for k, sg in enumerate(signers.values()):
                t_k = now + 0.05 * k
                f = ReportFields(
                    iso_utc(t_k),
                    0.0004,
                    pos[k][0],
                    pos[k][1],
                    5.0,
                    None,
                    None,
                    None,
                    20.0,
                    -10.0,
                    0.9,
                )
                bodies.append(sg.report(f, snippet, SR, t_k - 1.0)[1])
            for b in bodies[:-1]:
                (await c.post("/api/v1/reports", content=b)).raise_for_status()
            iid = f"b-inc-{n}"
            t_last = time.perf_counter()
            (await c.post("/api/v1/reports", content=bodies[-1])).raise_for_status()
            while len(queue_seen.get(iid, [])) < args.consoles:
                await asyncio.sleep(0.002)
            report_to_queue += [t - t_last for t in queue_seen[iid]]
            t_conf = time.perf_counter()
            r = await c.post(
                f"/api/v1/incidents/{iid}/commands/confirm",
                headers=h0,
                json={"reason": "bench confirm"},
            )
            assert r.json()["outcome"] == "OK", r.text
            while len(board_seen.get(iid, [])) < args.consoles or iid not in received:
                await asyncio.sleep(0.002)
            board = max(board_seen[iid]) - t_conf
            hook_t = received[iid] - t_conf
            confirm_to_board.append(board)
            confirm_to_hook.append(hook_t)
            confirm_to_all.append(max(board, hook_t))
            await asyncio.sleep(args.gap_s)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client_for_channel.aclose()
    server.stop()
    receiver.stop()
    ms = 1000.0
    return {
        "benchmark": "review_latency",
        "consoles": args.consoles,
        "incidents": args.incidents,
        "report_to_queue_ms": {
            "n": len(report_to_queue),
            "p50": pct(report_to_queue, 50) * ms,
            "p99": pct(report_to_queue, 99) * ms,
            "max": max(report_to_queue) * ms,
            "target_p50": 300,
            "target_p99": 1000,
        },
        "confirm_to_board_and_webhook_ms": {
            "n": len(confirm_to_all),
            "p50": pct(confirm_to_all, 50) * ms,
            "p99": pct(confirm_to_all, 99) * ms,
            "max": max(confirm_to_all) * ms,
            "board_p99": pct(confirm_to_board, 99) * ms,
            "webhook_p99": pct(confirm_to_hook, 99) * ms,
            "target_p99": 500,
        },
        "mean_report_to_queue_ms": statistics.fmean(report_to_queue) * ms,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data", help="real data folder (boundaries)")
    ap.add_argument("--consoles", type=int, default=50)
    ap.add_argument("--incidents", type=int, default=40)
    ap.add_argument("--gap-s", type=float, default=0.05, help="pause between incidents")
    ap.add_argument("--port", type=int, default=18480)
    args = ap.parse_args()
    out = asyncio.run(main_async(args))
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
