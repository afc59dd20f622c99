"""None lost, none counted twice: 1,000 reports through a 10-minute outage (HTTP and MQTT)."""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from shotwatch.core.clock import ReplayClock
from shotwatch.core.model import iso_utc
from shotwatch.sensor.buffer import AudioBuffer
from shotwatch.sensor.http_ingest import make_router
from shotwatch.sensor.ingest import (
    Ingest,
    IngestLimits,
    MemoryIngestStore,
    Rejection,
    VerifiedReport,
)
from shotwatch.sensor.keys import KeyEncryptionKey
from shotwatch.sensor.messages import ReportFields
from shotwatch.sensor.mqtt_ingest import MqttIngestSubscriber
from shotwatch.sensor.search import MissedShotSearch, SearchLog, sign_search_request
from shotwatch.sensor.signer import SensorSigner
from shotwatch.sensor.spool import Backoff, Spool, SpoolSender
from shotwatch.sensor.transport import HttpTransport, MqttTransport, publish_search_request

T0 = 1_800_000_000.0
SR = 1000
N = 1000


def _reports(signer: SensorSigner, n: int) -> list[tuple[int, bytes]]:
    snippet = (np.sin(np.arange(2 * SR) * 0.3) * 3000).astype(np.int16)
    out = []
    for i in range(n):
        t = T0 + i * 0.37
        fields = ReportFields(iso_utc(t), 0.0003, 1.0, 2.0, 3.0, None, None, None, 20.0, -6.0, 0.9)
        out.append(signer.report(fields, snippet, SR, t - 1.0))
    return out


def _setup(tmp_path: Path) -> tuple[SensorSigner, Ingest, ReplayClock]:
    key = Ed25519PrivateKey.generate()
    signer = SensorSigner("SN-77", key, tmp_path / "seq")
    clock = ReplayClock(T0 + N)
    return signer, Ingest(MemoryIngestStore({"SN-77": key.public_key()}), clock=clock), clock


def test_http_outage_of_ten_minutes_then_all_delivered_exactly_once(tmp_path: Path) -> None:
    signer, ingest, clock = _setup(tmp_path)
    accepted: list[int] = []
    state = {"up": False, "lost_answers": 0}
    rng = random.Random(7)

    def handler(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("connection refused", request=request)
        outcome = ingest.verify_report(request.content)
        if isinstance(outcome, VerifiedReport):
            accepted.append(outcome.seq)
            if rng.random() < 0.05:  # server stored it, but the answer is lost
                state["lost_answers"] += 1
                raise httpx.ReadTimeout("answer lost", request=request)
        body = outcome.to_dict()
        return httpx.Response(200 if body["status"] != "rejected" else 422, json=body)

    client = httpx.Client(base_url="https://server.test", transport=httpx.MockTransport(handler))
    spool = Spool(tmp_path / "spool.sqlite")
    sender = SpoolSender(
        spool,
        HttpTransport("https://server.test", client=client),
        clock,
        backoff=Backoff(initial_s=1.0, max_s=60.0),
    )
    spool.put_many([(seq, "report", data) for seq, data in _reports(signer, N)], clock.now())
    outage_end = clock.now() + 600.0
    while clock.now() < outage_end:
        sender.pump()
        clock.advance_by(1.0)
    attempts_in_outage = sender.attempts_total
    assert 8 <= attempts_in_outage <= 25, "backoff: a few attempts, not a busy loop"
    assert len(spool) == N and accepted == []

    # The sensor restarts during the outage: the spool is on disk.
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite")
    sender = SpoolSender(
        spool,
        HttpTransport("https://server.test", client=client),
        clock,
        backoff=Backoff(initial_s=1.0, max_s=60.0),
    )
    state["up"] = True
    duplicates = 0
    for _ in range(10_000):
        if not len(spool):
            break
        clock.advance_by(1.0)
        duplicates += sender.pump().duplicates
    assert len(spool) == 0 and spool.dead() == []
    assert sorted(accepted) == sorted(set(accepted)), "a report was counted twice"
    assert len(accepted) == N, "a report was lost"
    assert state["lost_answers"] > 0 and duplicates == state["lost_answers"]


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 (the test's own CA)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_route_end_to_end_with_fastapi(tmp_path: Path) -> None:
    """A real HTTPS server (uvicorn, TLS on loopback) running the route the web server mounts;
    the sensor verifies the server's certificate against its configured CA file."""
    signer, ingest, _ = _setup(tmp_path)
    app = FastAPI()
    app.include_router(make_router(ingest))
    cert, key = _self_signed(tmp_path)
    port = _dead_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        url = f"https://127.0.0.1:{port}"
        untrusting = HttpTransport(url)  # system CAs only: the self-signed server is refused
        reports = _reports(signer, 3)
        assert untrusting.send("report", *reports[0]).status.value == "unavailable"
        untrusting.close()
        transport = HttpTransport(url, ca_file=str(cert))
        results = [transport.send("report", s, d).status.value for s, d in reports]
        assert results == ["delivered"] * 3
        assert transport.send("report", *reports[1]).status.value == "duplicate"
        tampered = reports[2][1].replace(b'"snr_db":20.0', b'"snr_db":40.0')
        assert tampered != reports[2][1]
        refused = transport.send("report", 9, tampered)
        assert refused.status.value == "rejected" and "bad_signature" in refused.detail
        transport.close()
    finally:
        server.should_exit = True
        thread.join(10)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.mqtt
def test_mqtt_broker_outage_then_all_delivered_exactly_once(
    tmp_path: Path, mqtt_broker: tuple[str, int]
) -> None:
    host, port = mqtt_broker
    signer, ingest, clock = _setup(tmp_path)
    prefix = f"shotwatch-test/{uuid.uuid4().hex}"
    outcomes: list[VerifiedReport | Rejection] = []
    sub = MqttIngestSubscriber(
        ingest,
        host,
        port,
        client_id=f"ingest-{uuid.uuid4().hex}",
        prefix=prefix,
        on_outcome=lambda _t, o: outcomes.append(o),
        session_expiry_s=60,
    )
    sub.start()
    try:
        spool = Spool(tmp_path / "spool.sqlite")
        down = MqttTransport(
            "127.0.0.1", _dead_port(), serial="SN-77", prefix=prefix, timeout_s=0.5
        )
        sender = SpoolSender(spool, down, clock, backoff=Backoff(initial_s=1.0, max_s=60.0))
        spool.put_many([(q, "report", d) for q, d in _reports(signer, N)], clock.now())
        outage_end = clock.now() + 600.0
        while clock.now() < outage_end:
            sender.pump()
            clock.advance_by(5.0)
        assert len(spool) == N and outcomes == []
        assert sender.attempts_total <= 25
        down.close()

        up = MqttTransport(host, port, serial="SN-77", prefix=prefix)
        sender = SpoolSender(spool, up, clock, backoff=Backoff(initial_s=1.0, max_s=60.0))
        clock.advance_by(120.0)
        result = sender.pump()
        assert result.delivered == N and len(spool) == 0
        up.close()
        deadline = time.monotonic() + 30
        while len(outcomes) < N and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sub.stop()
    accepted = [o.seq for o in outcomes if isinstance(o, VerifiedReport)]
    assert len(accepted) == N and len(set(accepted)) == N
    assert all(not isinstance(o, Rejection) or o.already_accepted for o in outcomes)


@pytest.mark.mqtt
def test_missed_shot_search_over_mqtt(tmp_path: Path, mqtt_broker: tuple[str, int]) -> None:
    """Server publishes a signed request; the sensor answers with that window only."""
    host, port = mqtt_broker
    server_key = Ed25519PrivateKey.generate()
    sensor_key = Ed25519PrivateKey.generate()
    clock = ReplayClock(T0 + 120.0)
    buf = AudioBuffer.open(
        tmp_path / "buf",
        KeyEncryptionKey(b"m" * 32),
        sample_rate_hz=SR,
        retention_s=3600.0,
        segment_s=30.0,
    )
    audio = (np.arange(120 * SR) % 1000).astype(np.int16)
    buf.append(audio, T0)
    buf.flush()
    search = MissedShotSearch(
        buffer=buf,
        log=SearchLog(tmp_path / "log.jsonl"),
        signer=SensorSigner("SN-77", sensor_key, tmp_path / "seq"),
        server_key=server_key.public_key(),
        clock=clock,
        max_window_s=60.0,
        request_ttl_s=600.0,
    )
    ingest = Ingest(
        MemoryIngestStore({"SN-77": sensor_key.public_key()}),
        IngestLimits(max_search_window_s=60.0),
        clock=clock,
    )
    prefix = f"shotwatch-test/{uuid.uuid4().hex}"
    outcomes: list[VerifiedReport | Rejection] = []
    sub = MqttIngestSubscriber(
        ingest,
        host,
        port,
        client_id=f"ingest-{uuid.uuid4().hex}",
        prefix=prefix,
        on_outcome=lambda _t, o: outcomes.append(o),
        session_expiry_s=60,
    )
    sub.start()
    sensor = MqttTransport(host, port, serial="SN-77", prefix=prefix)
    try:
        assert sensor.connect()
        time.sleep(0.2)  # let the sensor's SUBSCRIBE reach the broker
        request = sign_search_request(
            server_key,
            serial="SN-77",
            seq=1,
            request_id="MS-9",
            requester="analyst",
            reference="INC-1",
            reason="caller heard shots",
            start_s=T0 + 30.0,
            end_s=T0 + 40.0,
            issued_s=T0 + 100.0,
        )
        assert publish_search_request(host, port, serial="SN-77", request=request, prefix=prefix)
        received: list[bytes] = []
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            received = sensor.incoming_requests()
            time.sleep(0.02)
        assert received == [request]
        answer = search.handle(received[0])
        assert answer.granted
        assert sensor.send("search_result", answer.seq, answer.message).status.value == "delivered"
        deadline = time.monotonic() + 10
        while not outcomes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sensor.close()
        sub.stop()
        buf.close()
    (result,) = outcomes
    assert isinstance(result, VerifiedReport) and result.kind == "search_result"
    ((t0, samples, sr),) = result.pieces()
    assert sr == SR and t0 == pytest.approx(T0 + 30.0)
    assert np.array_equal(samples, audio[30 * SR : 40 * SR])
