"""Key material of a sensor: its Ed25519 signing key and the buffer's key-encryption key.

Two different keys with two different jobs (ADR 0060):

* the **signing key** (Ed25519) proves that a report, heartbeat or search answer came from this
  sensor; the server knows only its public half;
* the **key-encryption key** (KEK, 256-bit AES) wraps the random per-segment data keys of the
  audio buffer. It is never written inside the buffer directory: it comes from a separate key
  file (e.g. on a TPM-sealed or tmpfs mount) or from the environment, and
  :func:`load_or_create_kek` refuses a key file placed inside the buffer.

Files are created atomically with mode 0600 (temp file, fsync, rename).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shotwatch.core.errors import InputError

KEK_ENV = "SHOTWATCH_SENSOR_KEK"
KEK_BYTES = 32


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- signing keys (Ed25519)


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def load_or_create_signing_key(path: str | Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file ``path``; a new one is created when absent."""
    p = Path(path)
    if not p.exists():
        if not create:
            raise InputError(str(p), "signing_key", "key file not found")
        key = generate_signing_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_secret_file(p, pem)
        return key
    try:
        loaded = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(str(p), "signing_key", f"not a PEM private key: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InputError(str(p), "signing_key", "not an Ed25519 private key")
    return loaded


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw 32-byte public key as base64 (what the server's registry stores)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str, *, where: str = "public key") -> Ed25519PublicKey:
    """A public key from base64 of its 32 raw bytes, or from PEM text."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            pub = serialization.load_pem_public_key(text.encode("ascii"))
        except ValueError as exc:
            raise InputError(where, "public_key", f"not a PEM public key: {exc}") from exc
        if not isinstance(pub, Ed25519PublicKey):
            raise InputError(where, "public_key", "not an Ed25519 public key")
        return pub
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(where, "public_key", "not base64") from exc
    if len(raw) != 32:
        raise InputError(where, "public_key", f"expected 32 raw bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


# ---------------------------------------------------------------- key-encryption key


class KeyEncryptionKey:
    """Wraps and unwraps data keys with AES-256-GCM; ``kid`` names the key without revealing it."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEK_BYTES:
            raise InputError("kek", "length", f"expected {KEK_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.kid = hashlib.sha256(b"shotwatch-kek-id|" + key).hexdigest()[:16]

    def wrap(self, data_key: bytes, context: bytes) -> tuple[bytes, bytes]:
        """(nonce, wrapped) for ``data_key``, bound to ``context`` (e.g. the segment name)."""
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, data_key, b"shotwatch-dk|" + context)

    def unwrap(self, nonce: bytes, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, wrapped, b"shotwatch-dk|" + context)
        except InvalidTag as exc:
            raise InputError(
                context.decode(errors="replace"),
                "wrapped_key",
                "cannot unwrap: wrong key or tampered",
            ) from exc


def _decode_key_text(text: str, where: str) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True)):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == KEK_BYTES:
            return raw
    raise InputError(where, "kek", f"expected {KEK_BYTES} bytes as hex or base64")


def load_or_create_kek(
    path: str | Path | None, *, buffer_dir: str | Path | None = None, create: bool = True
) -> KeyEncryptionKey:
    """The KEK from ``$SHOTWATCH_SENSOR_KEK`` (hex/base64) or from key file ``path``.

    A key file inside ``buffer_dir`` is refused: the key must not sit beside the data it
    protects. A missing key file is created (random) when ``create`` is true.
    """
    env = os.environ.get(KEK_ENV)
    if env:
        return KeyEncryptionKey(_decode_key_text(env, f"${KEK_ENV}"))
    if path is None:
        raise InputError("sensor", "kek_file", f"no key file given and ${KEK_ENV} unset")
    p = Path(path).resolve()
    if buffer_dir is not None:
        b = Path(buffer_dir).resolve()
        if p == b or b in p.parents:
            raise InputError(str(p), "kek_file", f"must not be inside the buffer directory {b}")
    if not p.exists():
        if not create:
            raise InputError(str(p), "kek_file", "key file not found")
        key = os.urandom(KEK_BYTES)
        write_secret_file(p, key.hex().encode("ascii") + b"\n")
        return KeyEncryptionKey(key)
    return KeyEncryptionKey(_decode_key_text(p.read_text(encoding="ascii"), str(p)))
