"""Missed-shot search: the only way stored audio leaves a sensor (ADR 0063).

The policies allow stored audio to be reviewed only "if presented with evidence that a gunshot
was missed", for "specific portions". Here that is a request *signed by the server's Ed25519
key* naming the requester, the case or incident reference and the reason, for one window that
lies inside the buffer and is no longer than ``max_search_window_s``. The sensor answers with
that window only (a signed ``search_result``) or a signed ``search_refusal`` with the reason,
and appends every request, granted or refused, to its own hash-chained log
(:class:`SearchLog`), whose head hash travels in every heartbeat so the server can audit it.

:func:`decide` is the pure core; :class:`MissedShotSearch` is the shell around buffer, log and
signer.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from shotwatch.core.clock import Clock
from shotwatch.core.errors import InputError
from shotwatch.core.model import iso_utc, parse_utc
from shotwatch.sensor.buffer import AudioBuffer
from shotwatch.sensor.messages import (
    SERVER_DOMAIN,
    VERSION,
    MessageType,
    canonical_json,
    digest,
    encode_audio,
    seal,
    verify_signature,
)
from shotwatch.sensor.signer import SensorSigner

REQUIRED_TEXT = ("request_id", "requester", "reference", "reason")


class SearchRefusal(enum.StrEnum):
    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    FORGED = "forged"
    WRONG_SENSOR = "wrong_sensor"
    MISSING_FIELD = "missing_field"
    STALE_REQUEST = "stale_request"
    REPEATED_REQUEST = "repeated_request"
    OVERSIZED_WINDOW = "oversized_window"
    EXPIRED_WINDOW = "expired_window"
    NOT_YET_RECORDED = "not_yet_recorded"


@dataclass(frozen=True, slots=True)
class Grant:
    request_id: str
    start_s: float
    end_s: float
    request: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: SearchRefusal
    detail: str
    request_id: str = ""
    request: dict[str, Any] | None = None


def sign_search_request(
    server_key: Ed25519PrivateKey,
    *,
    serial: str,
    seq: int,
    request_id: str,
    requester: str,
    reference: str,
    reason: str,
    start_s: float,
    end_s: float,
    issued_s: float,
) -> bytes:
    """The server's side: one signed missed-shot search request for sensor ``serial``."""
    body = {
        "request_id": request_id,
        "requester": requester,
        "reference": reference,
        "reason": reason,
        "window_start_utc": iso_utc(start_s),
        "window_end_utc": iso_utc(end_s),
        "issued_utc": iso_utc(issued_s),
    }
    return seal(server_key, MessageType.SEARCH_REQUEST, serial, seq, body, domain=SERVER_DOMAIN)


def decide(
    data: bytes,
    *,
    serial: str,
    server_key: Ed25519PublicKey,
    now_s: float,
    buffer_oldest_s: float | None,
    buffer_newest_s: float | None,
    max_window_s: float,
    request_ttl_s: float,
    seen_request_ids: set[str] | frozenset[str],
) -> Grant | Refusal:
    """Pure decision on one search request; never reads the buffer itself."""
    try:
        env = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return Refusal(SearchRefusal.MALFORMED, "not JSON")
    if not isinstance(env, dict) or not isinstance(env.get("body"), dict):
        return Refusal(SearchRefusal.MALFORMED, "not a signed message")
    body: dict[str, Any] = env["body"]
    rid_value = body.get("request_id")
    rid: str = rid_value if isinstance(rid_value, str) else ""
    if env.get("type") != MessageType.SEARCH_REQUEST or env.get("v") != VERSION:
        return Refusal(SearchRefusal.MALFORMED, "not a search request", rid, body)
    if not env.get("sig"):
        return Refusal(SearchRefusal.UNSIGNED, "the request carries no signature", rid, body)
    if not verify_signature(server_key, env, SERVER_DOMAIN):
        return Refusal(SearchRefusal.FORGED, "signature is not the server's", rid, body)
    if env.get("serial") != serial:
        return Refusal(SearchRefusal.WRONG_SENSOR, f"addressed to {env.get('serial')!r}", rid, body)
    for name in REQUIRED_TEXT:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            return Refusal(SearchRefusal.MISSING_FIELD, f"{name}: required", rid, body)
    try:
        start = parse_utc(body.get("window_start_utc"), field_name="window_start_utc")  # type: ignore[arg-type]
        end = parse_utc(body.get("window_end_utc"), field_name="window_end_utc")  # type: ignore[arg-type]
        issued = parse_utc(body.get("issued_utc"), field_name="issued_utc")  # type: ignore[arg-type]
    except InputError as exc:
        return Refusal(SearchRefusal.MISSING_FIELD, f"{exc.field}: {exc.reason}", rid, body)
    if not (now_s - request_ttl_s <= issued <= now_s + 60.0):
        return Refusal(
            SearchRefusal.STALE_REQUEST,
            f"issued {iso_utc(issued)}, outside the {request_ttl_s:g} s validity",
            rid,
            body,
        )
    if rid in seen_request_ids:
        return Refusal(SearchRefusal.REPEATED_REQUEST, "request id already used", rid, body)
    if not end > start:
        return Refusal(SearchRefusal.MALFORMED, "window end is not after its start", rid, body)
    if end - start > max_window_s + 1e-6:
        return Refusal(
            SearchRefusal.OVERSIZED_WINDOW,
            f"{end - start:g} s asked, the policy allows at most {max_window_s:g} s",
            rid,
            body,
        )
    if buffer_oldest_s is None or buffer_newest_s is None or start < buffer_oldest_s - 1e-6:
        held = (
            "the buffer is empty"
            if buffer_oldest_s is None
            else f"the buffer holds audio from {iso_utc(buffer_oldest_s)} only"
        )
        return Refusal(
            SearchRefusal.EXPIRED_WINDOW, f"window starts before retained audio: {held}", rid, body
        )
    if end > buffer_newest_s + 1e-6:
        return Refusal(
            SearchRefusal.NOT_YET_RECORDED,
            f"window ends after the newest stored audio ({iso_utc(buffer_newest_s)})",
            rid,
            body,
        )
    return Grant(rid, start, end, body)


class SearchLog:
    """Append-only, hash-chained JSON-lines record of every search request on this sensor.

    Each line holds the entry and ``prev`` (the previous line's hash) and ``hash`` (SHA-256 of
    the canonical entry including ``prev``). Lines are fsynced as they are written; a changed,
    removed or reordered line breaks the chain, which :meth:`verify` detects.
    """

    GENESIS = "0" * 64

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._head, self._ids, self._n = self._scan()

    def _scan(self) -> tuple[str, set[str], int]:
        head, n = self.GENESIS, 0
        ids: set[str] = set()
        if not self.path.exists():
            return head, ids, n
        with open(self.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.endswith("\n"):
                    break  # a torn last line from a crash: ignored, overwritten below
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    raise InputError(str(self.path), f"line {lineno}", "not JSON") from exc
                entry = {k: v for k, v in rec.items() if k != "hash"}
                if rec.get("prev") != head or digest(canonical_json(entry)) != rec.get("hash"):
                    raise InputError(str(self.path), f"line {lineno}", "hash chain broken")
                head = rec["hash"]
                n += 1
                if rec.get("request_id"):
                    ids.add(rec["request_id"])
        return head, ids, n

    @property
    def head(self) -> str:
        return self._head

    @property
    def request_ids(self) -> frozenset[str]:
        return frozenset(self._ids)

    def __len__(self) -> int:
        return self._n

    def append(self, entry: dict[str, Any]) -> str:
        rec = dict(entry, prev=self._head)
        rec["hash"] = digest(canonical_json(rec))
        line = canonical_json(rec) + b"\n"
        # Cut a torn tail left by a crash, then append and fsync.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            good = self._good_length(fd, size)
            if good != size:
                os.ftruncate(fd, good)
            os.pwrite(fd, line, good)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._head = rec["hash"]
        self._n += 1
        if entry.get("request_id"):
            self._ids.add(str(entry["request_id"]))
        return self._head

    @staticmethod
    def _good_length(fd: int, size: int) -> int:
        if size == 0:
            return 0
        data = os.pread(fd, size, 0)
        return data.rfind(b"\n") + 1

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    def verify(self) -> bool:
        try:
            head, _, _ = self._scan()
        except InputError:
            return False
        return head == self._head


@dataclass(frozen=True, slots=True)
class SearchAnswer:
    granted: bool
    reason: str
    detail: str
    seq: int
    message: bytes


class MissedShotSearch:
    """Sensor-side handler: decide, record, and answer with the window or the refusal."""

    def __init__(
        self,
        *,
        buffer: AudioBuffer,
        log: SearchLog,
        signer: SensorSigner,
        server_key: Ed25519PublicKey,
        clock: Clock,
        max_window_s: float,
        request_ttl_s: float,
    ) -> None:
        self.buffer = buffer
        self.log = log
        self.signer = signer
        self.server_key = server_key
        self.clock = clock
        self.max_window_s = max_window_s
        self.request_ttl_s = request_ttl_s

    def handle(self, data: bytes) -> SearchAnswer:
        now = self.clock.now()
        self.buffer.expire(now)
        decision = decide(
            data,
            serial=self.signer.serial,
            server_key=self.server_key,
            now_s=now,
            buffer_oldest_s=self.buffer.oldest_s,
            buffer_newest_s=self.buffer.newest_s,
            max_window_s=self.max_window_s,
            request_ttl_s=self.request_ttl_s,
            seen_request_ids=self.log.request_ids,
        )
        request = decision.request or {}
        entry: dict[str, Any] = {
            "received_utc": iso_utc(now),
            "request_digest": hashlib.sha256(data).hexdigest(),
            "request_id": decision.request_id,
            "requester": request.get("requester"),
            "reference": request.get("reference"),
            "reason": request.get("reason"),
            "window_start_utc": request.get("window_start_utc"),
            "window_end_utc": request.get("window_end_utc"),
        }
        if isinstance(decision, Refusal):
            # Only a server-signed request may claim a request id (a forged one cannot burn it).
            trusted = decision.reason not in (
                SearchRefusal.MALFORMED,
                SearchRefusal.UNSIGNED,
                SearchRefusal.FORGED,
            )
            entry.update(
                decision="refused",
                refusal=str(decision.reason),
                detail=decision.detail,
                request_id=decision.request_id if trusted else "",
                claimed_request_id=decision.request_id,
            )
            self.log.append(entry)
            seq, msg = self.signer.seal(
                MessageType.SEARCH_REFUSAL,
                {
                    "request_id": decision.request_id,
                    "reason": str(decision.reason),
                    "detail": decision.detail,
                    "log_head": self.log.head,
                },
            )
            return SearchAnswer(False, str(decision.reason), decision.detail, seq, msg)
        pieces = self.buffer.read(decision.start_s, decision.end_s)
        returned_s = sum(p.duration_s for p in pieces)
        entry.update(decision="granted", returned_s=returned_s)
        self.log.append(entry)
        seq, msg = self.signer.seal(
            MessageType.SEARCH_RESULT,
            {
                "request_id": decision.request_id,
                "window_start_utc": iso_utc(decision.start_s),
                "window_end_utc": iso_utc(decision.end_s),
                "pieces": [
                    encode_audio(p.samples, p.sample_rate_hz, iso_utc(p.t0_s)) for p in pieces
                ],
                "log_head": self.log.head,
            },
        )
        return SearchAnswer(True, "granted", f"{returned_s:g} s returned", seq, msg)
