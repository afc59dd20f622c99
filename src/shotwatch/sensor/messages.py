"""Signed messages between sensor and server: the complete list, and how they are signed.

Every message a sensor sends is an *envelope*::

    {"v": 1, "type": <MessageType>, "serial": "...", "seq": <int>, "body": {...}, "sig": "..."}

``sig`` is the sensor's Ed25519 signature over ``DOMAIN + canonical_json(envelope minus sig)``.
Canonical JSON is sorted keys, no whitespace, ASCII only, no NaN/Infinity (RFC 8785 for the
values we use: strings, integers and Python's shortest round-trip floats). ``seq`` grows
strictly across all of a sensor's messages and restarts (:mod:`shotwatch.sensor.sequence`);
the server keeps the last one it accepted per sensor, so a replayed or re-ordered old message
is refused and a retry of one already accepted is recognised as a duplicate.

:data:`MESSAGE_TYPES` is the closed list of what may cross the wire, each with the most
audio it may carry (ADR 0062, no live listening): a report carries one snippet
(``snippet_pre_s + snippet_post_s``), a search result the one authorized window, everything
else none. No message type carries a stream.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pybase64
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from shotwatch.core.errors import InputError
from shotwatch.core.settings import POLICY_SNIPPET_POST_S, POLICY_SNIPPET_PRE_S

VERSION = 1
DOMAIN = b"shotwatch-sensor-message/1\n"
SERVER_DOMAIN = b"shotwatch-server-message/1\n"
SNIPPET_ENCODING = "pcm_s16le"


class MessageType(enum.StrEnum):
    """Every kind of message; nothing else is ever accepted."""

    REPORT = "report"
    HEARTBEAT = "heartbeat"
    SEARCH_RESULT = "search_result"
    SEARCH_REFUSAL = "search_refusal"
    SEARCH_REQUEST = "search_request"


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """What one message type is for, who signs it and how much audio it may hold."""

    signed_by: str
    audio: str
    doc: str


MESSAGE_TYPES: dict[MessageType, MessageSpec] = {
    MessageType.REPORT: MessageSpec(
        "sensor", "snippet", "One impulse: time, clock bound, position, SNR, level, score, snippet."
    ),
    MessageType.HEARTBEAT: MessageSpec(
        "sensor", "none", "Health: uptime, clock bound, disk, buffer span, noise floor."
    ),
    MessageType.SEARCH_RESULT: MessageSpec(
        "sensor", "search_window", "The one audio window an authorized missed-shot search named."
    ),
    MessageType.SEARCH_REFUSAL: MessageSpec(
        "sensor", "none", "A missed-shot search the sensor refused, with the reason."
    ),
    MessageType.SEARCH_REQUEST: MessageSpec(
        "server", "none", "A missed-shot search: requester, reference, reason, window."
    ),
}


def max_audio_s(kind: MessageType, *, snippet_s: float, search_window_s: float) -> float:
    """The most audio (seconds) a message of ``kind`` may carry."""
    audio = MESSAGE_TYPES[kind].audio
    if audio == "snippet":
        return snippet_s
    if audio == "search_window":
        return search_window_s
    return 0.0


def canonical_json(obj: Any) -> bytes:
    """The one byte form that is signed and hashed."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def signing_bytes(envelope: dict[str, Any], domain: bytes = DOMAIN) -> bytes:
    return domain + canonical_json({k: v for k, v in envelope.items() if k != "sig"})


def seal(
    key: Ed25519PrivateKey,
    kind: MessageType,
    serial: str,
    seq: int,
    body: dict[str, Any],
    *,
    domain: bytes = DOMAIN,
) -> bytes:
    """Sign and serialize one message (canonical JSON bytes, ready to send)."""
    env: dict[str, Any] = {"v": VERSION, "type": str(kind), "serial": serial, "seq": int(seq)}
    env["body"] = body
    sig = key.sign(signing_bytes(env, domain))
    env["sig"] = base64.b64encode(sig).decode("ascii")
    return canonical_json(env)


def signed_part_of(raw: bytes, envelope: dict[str, Any]) -> bytes | None:
    """The signed bytes cut from a message as received, when it arrived in canonical form
    (as :func:`seal` writes it): everything but the ``"sig"`` member, byte for byte. Saves
    re-encoding a 64-kB report to check it. None when the message is not laid out exactly
    so (then :func:`signing_bytes` re-encodes the parsed envelope).

    Sound because only canonical bytes are ever signed: if the signature verifies over the
    cut bytes, they are the canonical form of what the sensor signed, and the parsed envelope
    (the same bytes plus the signature) is that message."""
    try:
        head = {k: envelope[k] for k in ("serial", "seq")}
        tail = {k: envelope[k] for k in ("type", "v")}
        sig = envelope["sig"]
    except KeyError:
        return None
    if set(envelope) != {"body", "serial", "seq", "sig", "type", "v"} or not isinstance(sig, str):
        return None
    mid = canonical_json(head)[1:-1]
    end = canonical_json(tail)[1:]
    with_sig = b"," + mid + b',"sig":' + canonical_json(sig) + b"," + end
    if not (raw.startswith(b'{"body":') and raw.endswith(with_sig)):
        return None
    return raw[: len(raw) - len(with_sig)] + b"," + mid + b"," + end


def verify_signature(
    pub: Ed25519PublicKey,
    envelope: dict[str, Any],
    domain: bytes = DOMAIN,
    *,
    raw: bytes | None = None,
) -> bool:
    """Whether ``envelope`` carries a valid signature by ``pub``. Pass the message as received
    (``raw``) to check the signed bytes cut from it when it is in canonical form."""
    try:
        sig = pybase64.b64decode(str(envelope.get("sig", "")), validate=True)
    except (binascii.Error, ValueError, TypeError):
        return False
    signed = signed_part_of(raw, envelope) if raw is not None else None
    if signed is not None:
        try:
            pub.verify(sig, domain + signed)
            return True
        except InvalidSignature:
            pass  # not what was signed: judge the parsed envelope instead
    try:
        pub.verify(sig, signing_bytes(envelope, domain))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- audio in messages


def encode_audio(samples: np.ndarray, sample_rate_hz: int, t0_utc: str) -> dict[str, Any]:
    pcm = np.asarray(samples, dtype=np.int16).astype("<i2", copy=False).tobytes()
    return {
        "encoding": SNIPPET_ENCODING,
        "sample_rate_hz": int(sample_rate_hz),
        "t0_utc": t0_utc,
        "n_samples": len(pcm) // 2,
        "data": pybase64.b64encode(pcm).decode("ascii"),
    }


def decode_audio(audio: Any, where: str) -> tuple[np.ndarray, int]:
    """(int16 samples, sample rate) from an encoded audio object; InputError names the field."""
    if not isinstance(audio, dict):
        raise InputError(where, "audio", "must be an object")
    if audio.get("encoding") != SNIPPET_ENCODING:
        raise InputError(where, "audio.encoding", f"must be {SNIPPET_ENCODING!r}")
    sr = audio.get("sample_rate_hz")
    if not isinstance(sr, int) or not 1000 <= sr <= 384_000:
        raise InputError(where, "audio.sample_rate_hz", f"must be an integer rate, got {sr!r}")
    try:
        # pybase64: the same strict decoding as base64.b64decode(validate=True), ~40x faster
        # on a snippet (every report carries 64 KB; it was a tenth of the server's loop)
        pcm = pybase64.b64decode(str(audio.get("data", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(where, "audio.data", "not base64") from exc
    if len(pcm) % 2:
        raise InputError(where, "audio.data", "odd number of bytes for 16-bit samples")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
    if audio.get("n_samples") != len(samples):
        raise InputError(where, "audio.n_samples", "does not match the data")
    return samples, sr


# ---------------------------------------------------------------- report bodies


@dataclass(frozen=True, slots=True)
class ReportFields:
    """What a sensor says about one impulse (the body of a REPORT message)."""

    arrival_utc: str
    clock_error_s: float
    x_m: float | None
    y_m: float | None
    z_m: float | None
    lat_deg: float | None
    lon_deg: float | None
    elevation_m: float | None
    snr_db: float
    level_dbfs: float
    score: float
    snippet_pre_s: float = POLICY_SNIPPET_PRE_S
    snippet_post_s: float = POLICY_SNIPPET_POST_S
    full_scale_db_spl: float | None = None  # the microphone's calibration, when known

    def to_body(self, snippet: np.ndarray, sample_rate_hz: int, snippet_t0_utc: str) -> dict:
        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else float(v)

        body = {
            "arrival_utc": self.arrival_utc,
            "clock_error_s": float(self.clock_error_s),
            "position": {
                "x_m": num(self.x_m),
                "y_m": num(self.y_m),
                "z_m": num(self.z_m),
                "lat_deg": num(self.lat_deg),
                "lon_deg": num(self.lon_deg),
                "elevation_m": num(self.elevation_m),
            },
            "snr_db": num(self.snr_db),
            "level_dbfs": num(self.level_dbfs),
            "score": num(self.score),
            "snippet_pre_s": float(self.snippet_pre_s),
            "snippet_post_s": float(self.snippet_post_s),
            "snippet": encode_audio(snippet, sample_rate_hz, snippet_t0_utc),
        }
        if self.full_scale_db_spl is not None:
            body["full_scale_db_spl"] = float(self.full_scale_db_spl)
        return body
