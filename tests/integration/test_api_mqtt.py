"""Sensor reports over MQTT reach the review queue of the running server (Mosquitto)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.serverkit import EveryThirdPulse, report, users

from shotwatch.api.build import build_server
from shotwatch.api.mqtt import mqtt_bridge
from shotwatch.core.clock import ReplayClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.settings import DispatchSettings
from shotwatch.dispatch.boundaries import load_boundaries
from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore
from shotwatch.sensor.signer import SensorSigner
from shotwatch.sensor.transport import DeliveryStatus, MqttTransport

T0 = 1_800_000_000.0


@pytest.mark.mqtt
def test_reports_over_mqtt_make_an_incident(
    mqtt_broker: tuple[str, int], boundaries_dir: Path, tmp_path: Path
) -> None:
    host, port = mqtt_broker
    nypd = load_boundaries(boundaries_dir / "nypd-precincts.geojson")
    p = nypd.boundary("75").geometry.representative_point()
    frame = LocalFrame(p.y, p.x)
    run = uuid.uuid4().hex[:6]
    keys = {f"MQ{run}-{i}": Ed25519PrivateKey.generate() for i in range(3)}
    clock = ReplayClock(T0)
    ingest = Ingest(
        MemoryIngestStore({s: k.public_key() for s, k in keys.items()}), IngestLimits(), clock
    )
    srv = build_server(
        DispatchSettings(),
        clock=clock,
        boundaries=nypd,
        users=users(),
        channels=[],
        verifier=ingest,
        consumer=EveryThirdPulse(frame),
        frame=frame,
    )
    audits: list[tuple[str, dict[str, object]]] = []
    srv.audit = lambda kind, data: audits.append((kind, data))
    prefix = f"shotwatch-test-{run}/sensors"

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        sub = mqtt_bridge(
            srv,
            ingest,
            loop,
            host,
            port,
            prefix=prefix,
            client_id=f"sw-server-{run}",
            session_expiry_s=60,
        )
        await loop.run_in_executor(None, sub.start)
        try:
            pos = [(0.0, 150.0), (130.0, -80.0), (-130.0, -80.0)]
            for i, (serial, key) in enumerate(keys.items()):
                signer = SensorSigner(serial, key, tmp_path / serial)
                tr = MqttTransport(host, port, serial=serial, prefix=prefix)
                body = report(signer, *pos[i], T0 + 0.1 * i)
                d = await loop.run_in_executor(None, tr.send, "report", i, body)
                assert d.status is DeliveryStatus.DELIVERED
                if i == 0:  # a forged copy is refused and audited, not queued
                    forged = report(
                        SensorSigner(serial, Ed25519PrivateKey.generate(), tmp_path / "forged"),
                        0.0,
                        0.0,
                        T0,
                    )
                    await loop.run_in_executor(None, tr.send, "report", 99, forged)
                tr.close()
            for _ in range(200):
                if srv.flow.book.records:
                    break
                await asyncio.sleep(0.02)
        finally:
            await loop.run_in_executor(None, sub.stop)

    asyncio.run(scenario())
    assert list(srv.flow.book.records) == ["inc-1"]
    assert {
        s["serial"] for s in srv.evidence.sensors(srv.flow.book.records["inc-1"].current.incident)
    } == set(keys)
    assert any(k == "report.rejected" and d.get("reason") == "bad_signature" for k, d in audits)
