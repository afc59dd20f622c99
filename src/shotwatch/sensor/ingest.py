"""Server-side checks of what sensors send (ADR 0061).

:func:`check_message` is the pure core: bytes in, a :class:`VerifiedReport` or a
:class:`Rejection` with a reason out; it reads nothing but its arguments. The sequence check
needs the last number accepted from the sensor, so :class:`Ingest` pairs the core with a small
store (:class:`MemoryIngestStore`, or :class:`SqlIngestStore` on the ``sensor`` tables) that
checks and records ``(serial, seq)`` in one transaction.

The web server mounts :meth:`Ingest.verify_report` on its HTTPS route; the MQTT subscriber
calls the same method. A retry of a message already accepted (same serial, sequence and bytes)
yields ``Rejection(DUPLICATE)`` with ``already_accepted`` true, so the sender can drop it from
its spool; it is never counted twice. An old sequence with other bytes is a replay.
"""

from __future__ import annotations

import enum
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from shotwatch.core.clock import Clock, SystemClock
from shotwatch.core.errors import InputError
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Provenance, Pulse, Sensor, parse_utc
from shotwatch.core.settings import SensorSettings
from shotwatch.sensor.keys import parse_public_key
from shotwatch.sensor.messages import (
    MESSAGE_TYPES,
    VERSION,
    MessageType,
    decode_audio,
    digest,
    max_audio_s,
    verify_signature,
)
from shotwatch.sensor.tables import SensorAcceptedMessage, SensorLastSequence, SensorRecord

ALGORITHM = "shotwatch.sensor"
ALGORITHM_VERSION = "1"


class RejectReason(enum.StrEnum):
    OVERSIZED = "oversized"
    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_SENSOR = "unknown_sensor"
    BAD_SIGNATURE = "bad_signature"
    INVALID_FIELD = "invalid_field"
    SNIPPET_LENGTH = "snippet_length"
    AUDIO_TOO_LONG = "audio_too_long"
    REPLAYED = "replayed"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was not accepted. ``DUPLICATE`` means it already was."""

    reason: RejectReason
    detail: str
    serial: str | None = None
    seq: int | None = None

    @property
    def already_accepted(self) -> bool:
        return self.reason is RejectReason.DUPLICATE

    @property
    def permanent(self) -> bool:
        """Resending the same bytes can never succeed."""
        return not self.already_accepted

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "duplicate" if self.already_accepted else "rejected",
            "reason": str(self.reason),
            "detail": self.detail,
            "serial": self.serial,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class VerifiedReport:
    """A message whose signature, fields and sequence passed every check."""

    kind: MessageType
    serial: str
    seq: int
    body: dict[str, Any]
    digest: str
    received_s: float
    full_scale_db_spl: float = 120.0  # the deployment's default calibration (IngestLimits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "accepted",
            "type": str(self.kind),
            "serial": self.serial,
            "seq": self.seq,
            "digest": self.digest,
        }

    def audio(self) -> tuple[np.ndarray, int] | None:
        """(int16 samples, rate) of a report's snippet; None for other messages."""
        if self.kind is not MessageType.REPORT:
            return None
        return decode_audio(self.body["snippet"], f"{self.serial}#{self.seq}")

    def pieces(self) -> list[tuple[float, np.ndarray, int]]:
        """(t0_s, int16 samples, rate) of each contiguous piece of a search result."""
        if self.kind is not MessageType.SEARCH_RESULT:
            return []
        out = []
        for i, piece in enumerate(self.body["pieces"]):
            samples, sr = decode_audio(piece, f"{self.serial}#{self.seq} piece {i}")
            out.append((parse_utc(piece["t0_utc"]), samples, sr))
        return out

    def _level_db_spl(self) -> float:
        """The pulse's level in dB SPL: the report's level in dBFS plus the microphone's full
        scale (its own when the report states it, else the deployment's default). Association
        compares levels across sensors (echo tails, level against distance), so a pulse
        without a level would weaken those checks."""
        dbfs = _nan(self.body.get("level_dbfs"))
        fs = self.body.get("full_scale_db_spl")
        return dbfs + (float(fs) if fs is not None else self.full_scale_db_spl)

    def pulse(self, frame: LocalFrame | None = None) -> Pulse:
        """A REPORT as the shared model's :class:`Pulse`.

        The position is the report's local x/y/z; a report with only WGS84 coordinates needs
        the deployment's ``frame`` to be placed (and the geographic ones are kept too).
        """
        if self.kind is not MessageType.REPORT:
            raise InputError(f"{self.serial}#{self.seq}", "type", "only reports are pulses")
        pos = self.body["position"]
        where = f"{self.serial}#{self.seq}"
        if pos.get("x_m") is not None and pos.get("y_m") is not None:
            x, y, z = pos["x_m"], pos["y_m"], pos.get("z_m") or 0.0
        elif frame is not None and pos.get("lat_deg") is not None:
            x, y, z = frame.to_local(pos["lat_deg"], pos["lon_deg"], pos.get("elevation_m") or 0.0)
        else:
            raise InputError(where, "position", "no local x_m/y_m, and no frame to place lat/lon")
        return Pulse(
            pulse_id=f"{self.serial}-{self.seq}",
            sensor=self.serial,
            t_s=parse_utc(self.body["arrival_utc"], where=where, field_name="arrival_utc"),
            x_m=x,
            y_m=y,
            z_m=z,
            snr_db=_nan(self.body.get("snr_db")),
            level_db_spl=self._level_db_spl(),
            clock_error_s=self.body["clock_error_s"],
            score=_nan(self.body.get("score")),
            provenance=Provenance.automatic(ALGORITHM, ALGORITHM_VERSION, self.received_s),
        )


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_message_bytes: int = 393_216
    snippet_pre_s: float = 1.0
    snippet_post_s: float = 1.0
    max_search_window_s: float = 300.0
    max_future_s: float = 60.0
    full_scale_db_spl: float = 120.0  # for reports that do not state their calibration

    @classmethod
    def from_settings(cls, s: SensorSettings) -> IngestLimits:
        return cls(
            max_message_bytes=s.max_message_bytes,
            snippet_pre_s=s.snippet_pre_s,
            snippet_post_s=s.snippet_post_s,
            max_search_window_s=s.max_search_window_s,
            full_scale_db_spl=s.full_scale_db_spl,
        )

    @property
    def snippet_s(self) -> float:
        return self.snippet_pre_s + self.snippet_post_s

    def search_message_bytes(self) -> int:
        """Search results may be larger than reports: the authorized window at 48 kHz."""
        return max(self.max_message_bytes, int(self.max_search_window_s * 48_000 * 2 * 1.4) + 8192)


class _Bad(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _num(body: dict[str, Any], name: str, lo: float, hi: float, *, optional: bool = False) -> None:
    v = body.get(name)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _Bad(RejectReason.INVALID_FIELD, f"{name}: must be a finite number, got {v!r}")
    if not lo <= v <= hi:
        raise _Bad(RejectReason.INVALID_FIELD, f"{name}: {v!r} outside [{lo}, {hi}]")


def _time(body: dict[str, Any], name: str, where: str) -> float:
    try:
        return parse_utc(body.get(name), where=where, field_name=name)  # type: ignore[arg-type]
    except InputError as exc:
        raise _Bad(RejectReason.INVALID_FIELD, f"{name}: {exc.reason}") from exc


def _audio(body: dict[str, Any], name: str, where: str) -> tuple[np.ndarray, int, float]:
    try:
        samples, sr = decode_audio(body.get(name), where)
    except InputError as exc:
        raise _Bad(RejectReason.INVALID_FIELD, f"{name}: {exc.field}: {exc.reason}") from exc
    t0 = _time(body[name], "t0_utc", where)
    return samples, sr, t0


def _check_report(
    body: dict[str, Any], where: str, limits: IngestLimits, received_s: float
) -> None:
    arrival = _time(body, "arrival_utc", where)
    if arrival > received_s + limits.max_future_s:
        raise _Bad(RejectReason.INVALID_FIELD, "arrival_utc: in the future of the server clock")
    _num(body, "clock_error_s", 0.0, 0.999)
    for name in ("snr_db", "level_dbfs"):
        _num(body, name, -300.0, 300.0, optional=True)
    _num(body, "score", 0.0, 1.0, optional=True)
    _num(body, "full_scale_db_spl", 60.0, 200.0, optional=True)
    pos = body.get("position")
    if not isinstance(pos, dict):
        raise _Bad(RejectReason.INVALID_FIELD, "position: must be an object")
    for name in ("x_m", "y_m", "z_m", "elevation_m"):
        _num(pos, name, -1e7, 1e7, optional=True)
    _num(pos, "lat_deg", -90, 90, optional=True)
    _num(pos, "lon_deg", -180, 180, optional=True)
    has_local = pos.get("x_m") is not None and pos.get("y_m") is not None
    has_geo = pos.get("lat_deg") is not None and pos.get("lon_deg") is not None
    if not (has_local or has_geo):
        raise _Bad(RejectReason.INVALID_FIELD, "position: needs x_m/y_m or lat_deg/lon_deg")
    _num(body, "snippet_pre_s", 0.0, limits.snippet_pre_s)
    _num(body, "snippet_post_s", 0.0, limits.snippet_post_s)
    samples, sr, t0 = _audio(body, "snippet", where)
    pre, post = float(body["snippet_pre_s"]), float(body["snippet_post_s"])
    expected = round((pre + post) * sr)
    if len(samples) != expected:
        raise _Bad(
            RejectReason.SNIPPET_LENGTH,
            f"snippet: {len(samples)} samples, expected {expected} "
            f"({pre:g} s before + {post:g} s after at {sr} Hz)",
        )
    if abs((arrival - pre) - t0) > 1.0 / sr + 2e-6:
        raise _Bad(RejectReason.SNIPPET_LENGTH, "snippet: t0_utc is not arrival minus pre")


def _check_heartbeat(body: dict[str, Any], where: str, limits: IngestLimits, _r: float) -> None:
    _time(body, "sent_utc", where)
    _num(body, "uptime_s", 0.0, 1e10)
    _num(body, "clock_error_s", 0.0, 1e6)
    if not isinstance(body.get("clock_synced"), bool):
        raise _Bad(RejectReason.INVALID_FIELD, "clock_synced: must be true or false")
    _num(body, "disk_bytes", 0.0, 1e15)
    _num(body, "buffer_span_s", 0.0, 30 * 3600.0 + 1.0)
    _num(body, "noise_floor_dbfs", -300.0, 10.0, optional=True)
    _num(body, "clipped_fraction", 0.0, 1.0)
    pos = body.get("position")
    if not isinstance(pos, dict):
        raise _Bad(RejectReason.INVALID_FIELD, "position: must be an object")
    for name in ("x_m", "y_m", "z_m", "lat_deg", "lon_deg", "elevation_m"):
        _num(pos, name, -1e7, 1e7, optional=True)


def _check_search_result(body: dict[str, Any], where: str, limits: IngestLimits, _r: float) -> None:
    if not isinstance(body.get("request_id"), str) or not body["request_id"]:
        raise _Bad(RejectReason.INVALID_FIELD, "request_id: missing")
    start = _time(body, "window_start_utc", where)
    end = _time(body, "window_end_utc", where)
    if not end > start:
        raise _Bad(RejectReason.INVALID_FIELD, "window_end_utc: not after window_start_utc")
    if end - start > limits.max_search_window_s + 1e-6:
        raise _Bad(RejectReason.AUDIO_TOO_LONG, "window longer than the policy allows")
    pieces = body.get("pieces")
    if not isinstance(pieces, list):
        raise _Bad(RejectReason.INVALID_FIELD, "pieces: must be a list")
    total = 0.0
    for i, piece in enumerate(pieces):
        samples, sr, t0 = _audio({"p": piece}, "p", f"{where} piece {i}")
        if t0 < start - 1.0 / sr or t0 + len(samples) / sr > end + 1.0 / sr:
            raise _Bad(RejectReason.AUDIO_TOO_LONG, f"pieces[{i}]: audio outside the window")
        total += len(samples) / sr
    if total > limits.max_search_window_s + 1e-3:
        raise _Bad(RejectReason.AUDIO_TOO_LONG, "more audio than the policy's search window")


def _check_search_refusal(
    body: dict[str, Any], where: str, limits: IngestLimits, _r: float
) -> None:
    for name in ("request_id", "reason", "detail"):
        if not isinstance(body.get(name), str):
            raise _Bad(RejectReason.INVALID_FIELD, f"{name}: must be a string")
    if "pieces" in body or "snippet" in body:
        raise _Bad(RejectReason.AUDIO_TOO_LONG, "a refusal carries no audio")


_BODY_CHECKS: dict[MessageType, Callable[[dict[str, Any], str, IngestLimits, float], None]] = {
    MessageType.REPORT: _check_report,
    MessageType.HEARTBEAT: _check_heartbeat,
    MessageType.SEARCH_RESULT: _check_search_result,
    MessageType.SEARCH_REFUSAL: _check_search_refusal,
}


def check_message(
    data: bytes,
    *,
    public_key: Callable[[str], Ed25519PublicKey | None],
    limits: IngestLimits,
    received_s: float,
) -> VerifiedReport | Rejection:
    """Every check that needs no state: size, shape, sensor, signature, fields, audio length."""
    kind_hint = None
    if len(data) > limits.search_message_bytes():
        return Rejection(RejectReason.OVERSIZED, f"{len(data)} bytes is more than allowed")
    try:
        env = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejection(RejectReason.MALFORMED, f"not JSON: {exc}")
    if not isinstance(env, dict):
        return Rejection(RejectReason.MALFORMED, "not a JSON object")
    serial, seq = env.get("serial"), env.get("seq")
    if not isinstance(serial, str) or not serial:
        return Rejection(RejectReason.MALFORMED, "serial: missing")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return Rejection(RejectReason.MALFORMED, "seq: must be a non-negative integer", serial)
    if env.get("v") != VERSION:
        return Rejection(
            RejectReason.MALFORMED, f"v: unsupported version {env.get('v')!r}", serial, seq
        )
    try:
        kind_hint = MessageType(str(env.get("type")))
    except ValueError:
        return Rejection(RejectReason.UNKNOWN_TYPE, f"type: {env.get('type')!r}", serial, seq)
    if MESSAGE_TYPES[kind_hint].signed_by != "sensor":
        return Rejection(
            RejectReason.UNKNOWN_TYPE, f"type: {kind_hint} is not sent by sensors", serial, seq
        )
    if kind_hint is not MessageType.SEARCH_RESULT and len(data) > limits.max_message_bytes:
        return Rejection(
            RejectReason.OVERSIZED,
            f"{len(data)} bytes > max_message_bytes {limits.max_message_bytes}",
            serial,
            seq,
        )
    if set(env) != {"v", "type", "serial", "seq", "body", "sig"} or not isinstance(
        env.get("body"), dict
    ):
        return Rejection(
            RejectReason.MALFORMED, "envelope: unexpected or missing keys", serial, seq
        )
    pub = public_key(serial)
    if pub is None:
        return Rejection(
            RejectReason.UNKNOWN_SENSOR, f"sensor {serial!r} is not registered", serial, seq
        )
    if not verify_signature(pub, env, raw=data):
        return Rejection(
            RejectReason.BAD_SIGNATURE,
            "signature does not match the sensor's key (forged or tampered)",
            serial,
            seq,
        )
    body: dict[str, Any] = env["body"]
    try:
        _BODY_CHECKS[kind_hint](body, f"{serial}#{seq}", limits, received_s)
    except _Bad as bad:
        return Rejection(bad.reason, bad.detail, serial, seq)
    except (KeyError, TypeError, ValueError) as exc:
        return Rejection(RejectReason.INVALID_FIELD, f"body: {exc!r}", serial, seq)
    limit = max_audio_s(
        kind_hint, snippet_s=limits.snippet_s, search_window_s=limits.max_search_window_s
    )
    if limit == 0.0 and any(k in body for k in ("snippet", "pieces", "audio")):
        return Rejection(
            RejectReason.AUDIO_TOO_LONG, f"{kind_hint} may carry no audio", serial, seq
        )
    return VerifiedReport(
        kind_hint, serial, seq, body, digest(data), received_s, limits.full_scale_db_spl
    )


def check_sequence(
    msg: VerifiedReport, last_seq: int | None, accepted_digest: str | None
) -> Rejection | None:
    """Pure sequence rule: strictly growing; an exact retry of an accepted one is a duplicate."""
    if last_seq is None or msg.seq > last_seq:
        return None
    if accepted_digest == msg.digest:
        return Rejection(RejectReason.DUPLICATE, "already accepted", msg.serial, msg.seq)
    return Rejection(
        RejectReason.REPLAYED,
        f"sequence {msg.seq} is not above the last accepted {last_seq} (replayed or old)",
        msg.serial,
        msg.seq,
    )


# ---------------------------------------------------------------- stores + the shell


class IngestStore(Protocol):
    def public_key(self, serial: str) -> Ed25519PublicKey | None: ...

    def accept(self, msg: VerifiedReport) -> Rejection | None:
        """Check the sequence and record ``msg`` atomically; a Rejection when refused."""
        ...


class MemoryIngestStore:
    """In-process store (tests, single-process tools)."""

    def __init__(self, keys: dict[str, Ed25519PublicKey] | None = None) -> None:
        self.keys: dict[str, Ed25519PublicKey] = dict(keys or {})
        self.last: dict[str, int] = {}
        self.accepted: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def register(self, serial: str, key: Ed25519PublicKey) -> None:
        self.keys[serial] = key

    def public_key(self, serial: str) -> Ed25519PublicKey | None:
        return self.keys.get(serial)

    def accept(self, msg: VerifiedReport) -> Rejection | None:
        with self._lock:
            refused = check_sequence(
                msg, self.last.get(msg.serial), self.accepted.get((msg.serial, msg.seq))
            )
            if refused is None:
                self.last[msg.serial] = msg.seq
                self.accepted[(msg.serial, msg.seq)] = msg.digest
            return refused


class SqlIngestStore:
    """The ``sensor`` tables: registry, last sequence and accepted receipts."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def register(
        self,
        serial: str,
        public_key: str,
        *,
        registered_s: float,
        x_m: float | None = None,
        y_m: float | None = None,
        z_m: float | None = None,
        lat_deg: float | None = None,
        lon_deg: float | None = None,
    ) -> None:
        parse_public_key(public_key, where=f"sensor {serial}")
        with self.sessions.begin() as s:
            rec = s.get(SensorRecord, serial)
            if rec is None:
                rec = SensorRecord(serial=serial, registered_s=registered_s)
                s.add(rec)
            rec.public_key = public_key
            rec.x_m, rec.y_m, rec.z_m, rec.lat_deg, rec.lon_deg = x_m, y_m, z_m, lat_deg, lon_deg
            rec.active = True

    def sensors(self, frame: LocalFrame | None = None) -> list[Sensor]:
        """The active registered sensors with a surveyed position, for the associator (which
        sensors near a shot stayed silent is evidence): local x/y/z as registered, or
        lat/lon placed in the deployment's ``frame``; those with neither are left to the
        position their first report gives."""
        out: list[Sensor] = []
        with self.sessions() as s:
            rows = s.scalars(
                select(SensorRecord).where(SensorRecord.active).order_by(SensorRecord.serial)
            )
            for rec in rows:
                if rec.x_m is not None and rec.y_m is not None:
                    x, y, z = rec.x_m, rec.y_m, rec.z_m or 0.0
                elif frame is not None and rec.lat_deg is not None and rec.lon_deg is not None:
                    x, y, z = frame.to_local(rec.lat_deg, rec.lon_deg, rec.z_m or 0.0)
                else:
                    continue
                out.append(Sensor(rec.serial, x, y, z, rec.lat_deg, rec.lon_deg))
        return out

    def public_key(self, serial: str) -> Ed25519PublicKey | None:
        with self.sessions() as s:
            rec = s.get(SensorRecord, serial)
            if rec is None or not rec.active:
                return None
            return parse_public_key(rec.public_key, where=f"sensor {serial}")

    def accept(self, msg: VerifiedReport) -> Rejection | None:
        try:
            with self.sessions.begin() as s:
                row = s.execute(
                    select(SensorLastSequence)
                    .where(SensorLastSequence.serial == msg.serial)
                    .with_for_update()
                ).scalar_one_or_none()
                prior = s.get(SensorAcceptedMessage, (msg.serial, msg.seq))
                refused = check_sequence(
                    msg,
                    None if row is None else row.last_seq,
                    None if prior is None else prior.digest,
                )
                if refused is not None:
                    return refused
                if row is None:
                    s.add(SensorLastSequence(serial=msg.serial, last_seq=msg.seq))
                else:
                    row.last_seq = msg.seq
                s.add(
                    SensorAcceptedMessage(
                        serial=msg.serial,
                        seq=msg.seq,
                        kind=str(msg.kind),
                        digest=msg.digest,
                        received_s=msg.received_s,
                    )
                )
        except IntegrityError:
            # A concurrent delivery of the same (serial, seq) won the race.
            with self.sessions() as s:
                prior = s.get(SensorAcceptedMessage, (msg.serial, msg.seq))
            same = prior is not None and prior.digest == msg.digest
            return Rejection(
                RejectReason.DUPLICATE if same else RejectReason.REPLAYED,
                "already accepted" if same else "sequence already used",
                msg.serial,
                msg.seq,
            )
        return None


class Ingest:
    """The server's entry point for sensor messages (HTTPS route and MQTT subscriber)."""

    def __init__(
        self, store: IngestStore, limits: IngestLimits | None = None, clock: Clock | None = None
    ) -> None:
        self.store = store
        self.limits = limits or IngestLimits()
        self.clock: Clock = clock or SystemClock()

    def verify_report(
        self, data: bytes, *, received_s: float | None = None
    ) -> VerifiedReport | Rejection:
        """Check ``data`` and, when it passes, record its (serial, seq) so it counts once."""
        if received_s is None:
            received_s = self.clock.now()
        checked = check_message(
            data, public_key=self.store.public_key, limits=self.limits, received_s=received_s
        )
        if isinstance(checked, Rejection):
            return checked
        refused = self.store.accept(checked)
        return checked if refused is None else refused
