"""The sensor's rolling audio buffer: at most the policy's hours, on disk, encrypted (ADR 0060).

Layout of the buffer directory::

    buffer.json                 format, sample rate, retention, KEK id (no key material)
    LOCK                        flock held by the one writer
    <start_ns>.seg              one committed segment (fixed length, ``segment_s``)
    <start_ns>.seg.tmp          a segment being written (deleted on recovery)

A segment file is ``MAGIC | u32 header length | header JSON | AES-GCM ciphertext``. Each
segment has its own random 256-bit data key, stored only wrapped by the key-encryption key
(which lives elsewhere, see :mod:`shotwatch.sensor.keys`). The header is the GCM associated
data, so any change to header or audio makes the segment fail to decrypt.

Crash consistency: a segment becomes part of the buffer only by an atomic ``rename`` after its
bytes are fsynced, and the segments it pushes out of the retention window are destroyed
*before* that rename. So a kill -9 at any instant leaves committed segments that all decrypt
and never more than ``retention_s`` of audio; at worst the segment in flight is lost.

Deletion is crypto-shredding: the header (holding the only copy of the wrapped data key) is
overwritten with zeros and fsynced, then the file is unlinked. A zeroed header found on
recovery (a kill between the two) is finished off.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shotwatch.core.errors import InputError
from shotwatch.core.settings import POLICY_MAX_RETENTION_H
from shotwatch.sensor.keys import KeyEncryptionKey, fsync_dir

MAGIC = b"SWAB1\n"
FORMAT = "shotwatch-audio-buffer/1"
SEG_SUFFIX = ".seg"
TMP_SUFFIX = ".seg.tmp"
_TAG_BYTES = 16

StepHook = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One committed segment: file name, first-sample time and length."""

    name: str
    start_s: float
    n_samples: int
    sample_rate_hz: int
    size_bytes: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.n_samples / self.sample_rate_hz


@dataclass(frozen=True, slots=True)
class AudioPiece:
    """Contiguous audio read back from the buffer: int16 samples from ``t0_s``."""

    t0_s: float
    sample_rate_hz: int
    samples: np.ndarray

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz

    @property
    def end_s(self) -> float:
        return self.t0_s + self.duration_s


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`AudioBuffer.open` found and repaired."""

    segments: int
    removed_tmp: int
    removed_broken: int
    evicted: int


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 (clipped); int16 passes through."""
    a = np.asarray(samples)
    if a.dtype == np.int16:
        return a
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, -32768, 32767).astype(np.int16)
    return np.clip(np.rint(a * 32767.0), -32768, 32767).astype(np.int16)


def _segment_name(start_s: float) -> str:
    return f"{round(start_s * 1e9):020d}{SEG_SUFFIX}"


class AudioBuffer:
    """Append-only rolling store of one sensor's audio; see the module docstring.

    ``append`` takes audio blocks with the time of their first sample; a gap or overlap in
    time closes the current segment. ``on_step`` (tests only) is called with the name of each
    durable step of the commit protocol, so a fault test can kill the process exactly there.
    """

    def __init__(
        self,
        root: str | Path,
        kek: KeyEncryptionKey,
        *,
        sample_rate_hz: int,
        retention_s: float,
        segment_s: float = 60.0,
        on_step: StepHook | None = None,
    ) -> None:
        self.root = Path(root)
        if not (0 < retention_s <= POLICY_MAX_RETENTION_H * 3600.0):
            raise InputError(
                str(self.root),
                "retention_h",
                f"{retention_s / 3600.0:g} h is above the policy maximum of "
                f"{POLICY_MAX_RETENTION_H:g} h",
            )
        if sample_rate_hz <= 0:
            raise InputError(str(self.root), "sample_rate_hz", "must be positive")
        if not (0 < segment_s <= retention_s):
            raise InputError(str(self.root), "segment_s", "must be in (0, retention]")
        self.kek = kek
        self.sample_rate_hz = int(sample_rate_hz)
        self.retention_s = float(retention_s)
        self.segment_s = float(segment_s)
        self.segment_samples = max(1, round(segment_s * sample_rate_hz))
        self._on_step = on_step
        self._segments: list[SegmentInfo] = []
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._pending_t0: float | None = None
        self._lock_fd: int | None = None
        self.recovery = RecoveryReport(0, 0, 0, 0)

    # ------------------------------------------------------------------ open / recover

    @classmethod
    def open(
        cls,
        root: str | Path,
        kek: KeyEncryptionKey,
        *,
        sample_rate_hz: int,
        retention_s: float,
        segment_s: float = 60.0,
        now_s: float | None = None,
        on_step: StepHook | None = None,
        lock: bool = True,
    ) -> AudioBuffer:
        """Open (creating or recovering) the buffer in ``root``."""
        buf = cls(
            root,
            kek,
            sample_rate_hz=sample_rate_hz,
            retention_s=retention_s,
            segment_s=segment_s,
            on_step=on_step,
        )
        buf.root.mkdir(parents=True, exist_ok=True)
        if lock:
            buf._acquire_lock()
        buf._check_or_write_meta()
        buf._recover(now_s)
        return buf

    def _acquire_lock(self) -> None:
        fd = os.open(self.root / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise InputError(str(self.root), "buffer", "already open by another writer") from exc
        self._lock_fd = fd

    def close(self) -> None:
        """Commit buffered audio and release the writer lock."""
        self.flush()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> AudioBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_or_write_meta(self) -> None:
        meta_path = self.root / "buffer.json"
        meta = {
            "format": FORMAT,
            "sample_rate_hz": self.sample_rate_hz,
            "kid": self.kek.kid,
        }
        if meta_path.exists():
            try:
                found = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(str(meta_path), "buffer.json", f"unreadable: {exc}") from exc
            for k, v in meta.items():
                if found.get(k) != v:
                    raise InputError(
                        str(meta_path), k, f"buffer has {found.get(k)!r}, configured {v!r}"
                    )
            return
        tmp = meta_path.with_name("buffer.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, meta_path)
        fsync_dir(self.root)

    def _recover(self, now_s: float | None) -> None:
        removed_tmp = removed_broken = 0
        segments: list[SegmentInfo] = []
        for entry in sorted(os.listdir(self.root)):
            path = self.root / entry
            if entry.endswith(TMP_SUFFIX) or entry == "buffer.json.tmp":
                path.unlink(missing_ok=True)
                removed_tmp += 1
                continue
            if not entry.endswith(SEG_SUFFIX):
                continue
            info = self._read_info(path)
            if info is None:
                self._shred(path)
                removed_broken += 1
                continue
            segments.append(info)
        segments.sort(key=lambda s: s.start_s)
        self._segments = segments
        evicted = 0
        if segments:
            evicted += self._evict_before(segments[-1].end_s - self.retention_s)
        if now_s is not None:
            evicted += self.expire(now_s)
        if removed_tmp or removed_broken:
            fsync_dir(self.root)
        self.recovery = RecoveryReport(len(self._segments), removed_tmp, removed_broken, evicted)

    def _read_info(self, path: Path) -> SegmentInfo | None:
        """Header of a committed segment, or None when it is not a complete, valid one."""
        try:
            with open(path, "rb") as f:
                head = f.read(len(MAGIC) + 4)
                if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
                    return None
                (hlen,) = struct.unpack("<I", head[len(MAGIC) :])
                if hlen > 65536:
                    return None
                header = json.loads(f.read(hlen))
            size = path.stat().st_size
            n = int(header["n_samples"])
            sr = int(header["sample_rate_hz"])
            expected = len(MAGIC) + 4 + hlen + 2 * n + _TAG_BYTES
            if size != expected or sr != self.sample_rate_hz or header.get("kid") != self.kek.kid:
                return None
            return SegmentInfo(path.name, float(header["start_s"]), n, sr, size)
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    # ------------------------------------------------------------------ writing

    def _step(self, name: str) -> None:
        if self._on_step is not None:
            self._on_step(name)

    def append(self, samples: np.ndarray, t0_s: float) -> None:
        """Add a block of mono audio whose first sample is at ``t0_s`` (POSIX seconds)."""
        block = to_int16(samples).reshape(-1)
        if block.size == 0:
            return
        if self._pending_t0 is not None:
            expected = self._pending_t0 + self._pending_n / self.sample_rate_hz
            if abs(t0_s - expected) > 1.5 / self.sample_rate_hz:
                self.flush()
        if self._pending_t0 is None:
            self._pending_t0 = float(t0_s)
        start = 0
        while start < block.size:
            room = self.segment_samples - self._pending_n
            piece = block[start : start + room]
            self._pending.append(piece.copy())
            self._pending_n += piece.size
            start += piece.size
            if self._pending_n >= self.segment_samples:
                self.flush()
                if start < block.size:
                    self._pending_t0 = float(t0_s) + start / self.sample_rate_hz

    def flush(self) -> None:
        """Commit the audio held in memory as a (possibly short) segment."""
        if not self._pending_n or self._pending_t0 is None:
            self._pending, self._pending_n, self._pending_t0 = [], 0, None
            return
        pcm = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        t0 = self._pending_t0
        self._pending, self._pending_n, self._pending_t0 = [], 0, None
        self._commit(pcm, t0)

    def _commit(self, pcm: np.ndarray, start_s: float) -> None:
        name = _segment_name(start_s)
        n = int(pcm.size)
        end_s = start_s + n / self.sample_rate_hz
        data_key = AESGCM.generate_key(bit_length=256)
        wrap_nonce, wrapped = self.kek.wrap(data_key, name.encode())
        nonce = os.urandom(12)
        header = json.dumps(
            {
                "format": FORMAT,
                "start_s": start_s,
                "n_samples": n,
                "sample_rate_hz": self.sample_rate_hz,
                "kid": self.kek.kid,
                "wrap_nonce": wrap_nonce.hex(),
                "wrapped_key": wrapped.hex(),
                "nonce": nonce.hex(),
            },
            sort_keys=True,
        ).encode()
        aad = MAGIC + struct.pack("<I", len(header)) + header
        body = AESGCM(data_key).encrypt(nonce, pcm.astype("<i2", copy=False).tobytes(), aad)
        tmp = self.root / (name + ".tmp")
        final = self.root / name
        self._step("write_tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, aad)
            self._step("write_body")
            view = memoryview(body)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            self._step("fsync_tmp")
            os.fsync(fd)
        finally:
            os.close(fd)
        # Make room first: the new segment may only appear once older audio is gone.
        self._step("evict")
        self._evict_before(end_s - self.retention_s)
        self._step("rename")
        os.replace(tmp, final)
        self._step("fsync_dir")
        fsync_dir(self.root)
        info = SegmentInfo(name, start_s, n, self.sample_rate_hz, len(aad) + len(body))
        self._segments = [s for s in self._segments if s.name != name]
        self._segments.append(info)
        self._segments.sort(key=lambda s: s.start_s)
        self._step("committed")

    def _shred(self, path: Path) -> None:
        """Destroy the wrapped data key (header) in place, then unlink the file."""
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return
        try:
            size = os.fstat(fd).st_size
            # Magic, length and header (the only copy of the wrapped key) fit in 4 KiB.
            os.pwrite(fd, b"\0" * min(size, 4096), 0)
            self._step("shred_fsync")
            os.fsync(fd)
        finally:
            os.close(fd)
        self._step("unlink")
        path.unlink(missing_ok=True)

    def _evict_before(self, cutoff_s: float) -> int:
        """Destroy every segment with audio before ``cutoff_s`` (oldest first)."""
        evicted = 0
        tol = 0.5 / self.sample_rate_hz
        while self._segments and self._segments[0].start_s < cutoff_s - tol:
            seg = self._segments.pop(0)
            self._shred(self.root / seg.name)
            evicted += 1
        if evicted:
            fsync_dir(self.root)
        return evicted

    def expire(self, now_s: float) -> int:
        """Destroy audio older than the retention window at time ``now_s``."""
        return self._evict_before(now_s - self.retention_s)

    # ------------------------------------------------------------------ reading

    @property
    def segments(self) -> tuple[SegmentInfo, ...]:
        return tuple(self._segments)

    @property
    def oldest_s(self) -> float | None:
        return self._segments[0].start_s if self._segments else None

    @property
    def newest_s(self) -> float | None:
        return self._segments[-1].end_s if self._segments else None

    @property
    def span_s(self) -> float:
        """From the first committed sample to the last one (0 when empty)."""
        if not self._segments:
            return 0.0
        return self._segments[-1].end_s - self._segments[0].start_s

    @property
    def stored_s(self) -> float:
        """Seconds of audio actually stored (gaps excluded)."""
        return sum(s.n_samples for s in self._segments) / self.sample_rate_hz

    @property
    def disk_bytes(self) -> int:
        return sum(s.size_bytes for s in self._segments)

    def decrypt_segment(self, info: SegmentInfo) -> np.ndarray:
        """All int16 samples of one segment; InputError when it fails authentication."""
        path = self.root / info.name
        data = path.read_bytes()
        (hlen,) = struct.unpack("<I", data[len(MAGIC) : len(MAGIC) + 4])
        aad_end = len(MAGIC) + 4 + hlen
        header = json.loads(data[len(MAGIC) + 4 : aad_end])
        data_key = self.kek.unwrap(
            bytes.fromhex(header["wrap_nonce"]),
            bytes.fromhex(header["wrapped_key"]),
            info.name.encode(),
        )
        try:
            pcm = AESGCM(data_key).decrypt(
                bytes.fromhex(header["nonce"]), data[aad_end:], data[:aad_end]
            )
        except InvalidTag as exc:
            raise InputError(str(path), "ciphertext", "authentication failed (tampered)") from exc
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16)

    def read(self, start_s: float, end_s: float) -> list[AudioPiece]:
        """Committed audio within [start_s, end_s), as contiguous pieces in time order."""
        pieces: list[AudioPiece] = []
        sr = self.sample_rate_hz
        for seg in self._segments:
            if seg.end_s <= start_s or seg.start_s >= end_s:
                continue
            samples = self.decrypt_segment(seg)
            i0 = max(0, int(np.ceil((start_s - seg.start_s) * sr - 1e-6)))
            i1 = min(seg.n_samples, int(np.ceil((end_s - seg.start_s) * sr - 1e-6)))
            if i1 <= i0:
                continue
            t0 = seg.start_s + i0 / sr
            chunk = samples[i0:i1]
            if pieces and abs(pieces[-1].end_s - t0) <= 1.5 / sr:
                prev = pieces[-1]
                pieces[-1] = AudioPiece(prev.t0_s, sr, np.concatenate([prev.samples, chunk]))
            else:
                pieces.append(AudioPiece(t0, sr, chunk))
        return pieces
