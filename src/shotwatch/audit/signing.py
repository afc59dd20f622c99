"""Ed25519 keys for signing audit checkpoints and destruction certificates."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shotwatch.core.errors import InputError


def public_key_b64(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 of the raw public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_b64(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))
    except Exception as exc:
        raise InputError("public key", "key", f"not a base64 Ed25519 public key: {exc}") from exc


def load_or_create_key(path: str | Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The PEM private key at ``path``; a new one is written (mode 0600) if it is missing."""
    p = Path(path)
    if p.exists():
        try:
            key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        except Exception as exc:
            raise InputError(str(p), "audit_signing_key", f"cannot read key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise InputError(str(p), "audit_signing_key", "not an Ed25519 private key")
        return key
    if not create:
        raise InputError(str(p), "audit_signing_key", "key file not found")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(pem)
    p.chmod(0o600)
    return key


def verify_signature(key: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
