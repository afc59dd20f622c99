from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shotwatch.core.clock import ReplayClock
from shotwatch.sensor.buffer import AudioBuffer
from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore, VerifiedReport
from shotwatch.sensor.keys import KeyEncryptionKey
from shotwatch.sensor.messages import canonical_json
from shotwatch.sensor.search import MissedShotSearch, SearchLog, sign_search_request
from shotwatch.sensor.signer import SensorSigner

T0 = 1_800_000_000.0
SR = 1000


@pytest.fixture
def rig(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = Ed25519PrivateKey.generate()
    sensor_key = Ed25519PrivateKey.generate()
    clock = ReplayClock(T0 + 600.0)
    buf = AudioBuffer.open(
        tmp_path / "buf",
        KeyEncryptionKey(b"k" * 32),
        sample_rate_hz=SR,
        retention_s=300.0,
        segment_s=10.0,
    )
    audio = (np.arange(600 * SR) % 30000).astype(np.int16)
    for k in range(600):
        buf.append(audio[k * SR : (k + 1) * SR], T0 + k)
    buf.flush()
    signer = SensorSigner("SN-9", sensor_key, tmp_path / "seq")
    log = SearchLog(tmp_path / "searches.jsonl")
    search = MissedShotSearch(
        buffer=buf,
        log=log,
        signer=signer,
        server_key=server.public_key(),
        clock=clock,
        max_window_s=120.0,
        request_ttl_s=900.0,
    )
    ingest = Ingest(
        MemoryIngestStore({"SN-9": sensor_key.public_key()}),
        IngestLimits(max_search_window_s=120.0),
        clock=clock,
    )
    yield server, search, log, ingest, audio
    buf.close()


def _req(server: Ed25519PrivateKey, start: float, end: float, **kw: object) -> bytes:
    args: dict[str, object] = dict(
        serial="SN-9",
        seq=1,
        request_id="REQ-1",
        requester="analyst7",
        reference="CASE-2026-0042",
        reason="caller reports shots",
        start_s=start,
        end_s=end,
        issued_s=T0 + 590.0,
    )
    args.update(kw)
    return sign_search_request(server, **args)  # type: ignore[arg-type]


def test_granted_search_returns_exactly_the_window(rig) -> None:  # type: ignore[no-untyped-def]
    server, search, log, ingest, audio = rig
    ans = search.handle(_req(server, T0 + 400.0, T0 + 460.0))
    assert ans.granted, ans.detail
    out = ingest.verify_report(ans.message)
    assert isinstance(out, VerifiedReport)
    assert out.audio() is None  # not a snippet: the window comes as pieces
    pieces = out.pieces()
    assert len(pieces) == 1
    t0, samples, sr = pieces[0]
    assert t0 == pytest.approx(T0 + 400.0)
    assert sr == SR and np.array_equal(samples, audio[400 * SR : 460 * SR])
    entry = log.entries()[-1]
    assert entry["decision"] == "granted" and entry["reference"] == "CASE-2026-0042"
    assert entry["returned_s"] == 60.0


def test_refusals_have_clear_reasons_and_are_recorded(rig) -> None:  # type: ignore[no-untyped-def]
    server, search, log, ingest, _ = rig
    cases = {
        "oversized_window": _req(server, T0 + 400, T0 + 560, request_id="a"),
        "expired_window": _req(server, T0 + 100, T0 + 160, request_id="b"),
        "not_yet_recorded": _req(server, T0 + 590, T0 + 650, request_id="c"),
        "forged": _req(Ed25519PrivateKey.generate(), T0 + 400, T0 + 410, request_id="d"),
        "missing_field": _req(server, T0 + 400, T0 + 410, request_id="e", reason="  "),
        "wrong_sensor": _req(server, T0 + 400, T0 + 410, request_id="f", serial="SN-1"),
        "stale_request": _req(server, T0 + 400, T0 + 410, request_id="g", issued_s=T0 - 5000),
    }
    no_ref = json.loads(_req(server, T0 + 400, T0 + 410, request_id="h", reference=""))
    cases["missing_field_ref"] = canonical_json(no_ref)
    unsigned = json.loads(_req(server, T0 + 400, T0 + 410, request_id="i"))
    unsigned["sig"] = ""
    cases["unsigned"] = canonical_json(unsigned)
    for expected, data in cases.items():
        ans = search.handle(data)
        assert not ans.granted
        assert ans.reason == expected.removesuffix("_ref"), (expected, ans.detail)
        assert isinstance(ingest.verify_report(ans.message), VerifiedReport)
        assert "pieces" not in json.loads(ans.message)["body"]
    assert "at most 120 s" in search.handle(_req(server, T0 + 400, T0 + 560, request_id="z")).detail
    ok = search.handle(_req(server, T0 + 400, T0 + 410, request_id="j"))
    assert ok.granted
    again = search.handle(_req(server, T0 + 400, T0 + 410, request_id="j"))
    assert again.reason == "repeated_request"
    assert len(log) == len(cases) + 3
    assert log.verify()


def test_search_log_is_append_only_and_tamper_evident(tmp_path: Path) -> None:
    log = SearchLog(tmp_path / "s.jsonl")
    for i in range(5):
        log.append({"request_id": f"r{i}", "decision": "refused"})
    head = log.head
    assert SearchLog(tmp_path / "s.jsonl").head == head  # reopened: same chain
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace("refused", "granted")
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    assert not log.verify()
    with pytest.raises(Exception, match="hash chain broken"):
        SearchLog(tmp_path / "s.jsonl")


def test_search_log_survives_a_torn_last_line(tmp_path: Path) -> None:
    log = SearchLog(tmp_path / "s.jsonl")
    log.append({"request_id": "r0"})
    with open(tmp_path / "s.jsonl", "a") as f:
        f.write('{"request_id": "r1", "pre')  # crash in the middle of a write
    log2 = SearchLog(tmp_path / "s.jsonl")
    assert len(log2) == 1
    log2.append({"request_id": "r2"})
    assert SearchLog(tmp_path / "s.jsonl").verify() and len(SearchLog(tmp_path / "s.jsonl")) == 2
