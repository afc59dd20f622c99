from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from shotwatch.core.errors import InputError
from shotwatch.core.settings import load_settings
from shotwatch.sensor.buffer import AudioBuffer
from shotwatch.sensor.keys import KeyEncryptionKey, load_or_create_kek

T0 = 1_800_000_000.0


def _kek(seed: int = 1) -> KeyEncryptionKey:
    return KeyEncryptionKey(bytes([seed]) * 32)


def _open(root: Path, kek: KeyEncryptionKey | None = None, **kw: object) -> AudioBuffer:
    args: dict[str, object] = {"sample_rate_hz": 1000, "retention_s": 10.0, "segment_s": 1.0}
    args.update(kw)
    return AudioBuffer.open(root, kek or _kek(), **args)  # type: ignore[arg-type]


def _ramp(i0: int, n: int) -> np.ndarray:
    return ((np.arange(i0, i0 + n) * 31) % 20000 - 10000).astype(np.int16)


def test_round_trip_and_window_read(tmp_path: Path) -> None:
    with _open(tmp_path / "b") as buf:
        for k in range(30):  # 3 s in 100-sample blocks
            buf.append(_ramp(k * 100, 100), T0 + k * 0.1)
        buf.flush()
        assert len(buf.segments) == 3
        pieces = buf.read(T0 + 0.5, T0 + 2.25)
    assert len(pieces) == 1
    assert pieces[0].t0_s == pytest.approx(T0 + 0.5)
    assert np.array_equal(pieces[0].samples, _ramp(500, 1750))


def test_fifo_keeps_at_most_retention_and_disk_is_constant(tmp_path: Path) -> None:
    sizes = []
    with _open(tmp_path / "b") as buf:
        for k in range(400):  # 40 s through a 10 s buffer
            buf.append(_ramp(k * 100, 100), T0 + k * 0.1)
            assert buf.span_s <= 10.0 + 1e-9
            if k > 150:
                sizes.append(buf.disk_bytes)
        assert buf.oldest_s is not None and buf.oldest_s >= T0 + 30.0 - 1e-6
        assert buf.read(T0, T0 + 29.0) == []
    assert max(sizes) - min(sizes) <= buf.segments[0].size_bytes
    files = [p for p in (tmp_path / "b").iterdir() if p.suffix == ".seg"]
    assert len(files) <= 10


def test_expire_by_clock_without_new_audio(tmp_path: Path) -> None:
    with _open(tmp_path / "b") as buf:
        buf.append(_ramp(0, 5000), T0)
        buf.flush()
        assert buf.expire(T0 + 12.5) == 3  # segments starting before T0+2.5 go
        assert buf.oldest_s == pytest.approx(T0 + 3.0)


def test_gap_starts_new_segment(tmp_path: Path) -> None:
    with _open(tmp_path / "b") as buf:
        buf.append(_ramp(0, 300), T0)
        buf.append(_ramp(0, 300), T0 + 5.0)
        buf.flush()
        pieces = buf.read(T0 - 1, T0 + 10)
    assert [round(p.t0_s - T0, 3) for p in pieces] == [0.0, 5.0]


def test_encrypted_at_rest_and_key_not_beside_data(tmp_path: Path) -> None:
    loud = np.full(2000, 12345, dtype=np.int16)
    with _open(tmp_path / "b") as buf:
        buf.append(loud, T0)
        buf.flush()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "b").iterdir() if p.is_file())
    assert loud[:64].tobytes() not in raw
    kek = _kek()
    assert bytes([1]) * 32 not in raw and kek.kid.encode() in raw  # only the key's id
    with pytest.raises(InputError, match="kid"):
        _open(tmp_path / "b", _kek(2))
    with pytest.raises(InputError, match="kek_file"):
        load_or_create_kek(tmp_path / "b" / "kek.hex", buffer_dir=tmp_path / "b")


def test_tampered_segment_fails_authentication(tmp_path: Path) -> None:
    with _open(tmp_path / "b") as buf:
        buf.append(_ramp(0, 1000), T0)
        buf.flush()
        seg = buf.segments[0]
        path = tmp_path / "b" / seg.name
        data = bytearray(path.read_bytes())
        data[-40] ^= 1
        path.write_bytes(bytes(data))
        with pytest.raises(InputError, match="tampered"):
            buf.decrypt_segment(seg)


def test_deleted_audio_is_shredded(tmp_path: Path) -> None:
    """Eviction zeroes the wrapped key before unlinking: the ciphertext is then useless."""
    root = tmp_path / "b"
    with _open(root) as buf:
        buf.append(_ramp(0, 1000), T0)
        buf.flush()
        path = root / buf.segments[0].name
        keep = path.read_bytes()
        fd = os.open(path, os.O_RDONLY)  # hold the inode to inspect it after eviction
        try:
            buf.expire(T0 + 20.0)
            assert not path.exists()
            after = os.pread(fd, len(keep), 0)
        finally:
            os.close(fd)
    zeroed = min(len(keep), 4096)
    assert after[:zeroed] == b"\0" * zeroed  # magic, header and wrapped key are gone
    assert keep[:zeroed] != b"\0" * zeroed


def test_retention_can_never_exceed_policy(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="retention_h"):
        _open(tmp_path / "b", retention_s=30 * 3600 + 1)
    with pytest.raises(InputError, match=r"sensor\.retention_h"):
        load_settings(sensor={"retention_h": 30.5})
    assert load_settings(sensor={"retention_h": 24}).sensor.retention_h == 24


def test_recovery_after_lower_retention(tmp_path: Path) -> None:
    with _open(tmp_path / "b") as buf:
        buf.append(_ramp(0, 9000), T0)
    with _open(tmp_path / "b", retention_s=4.0) as buf:
        assert buf.span_s <= 4.0
        assert buf.recovery.evicted == 5


def test_second_writer_is_refused(tmp_path: Path) -> None:
    with _open(tmp_path / "b"), pytest.raises(InputError, match="another writer"):
        _open(tmp_path / "b")
