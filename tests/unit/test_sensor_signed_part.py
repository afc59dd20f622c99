"""Checking a report's signature on the bytes as received (issue #5: no 64-kB re-encode per
report) accepts exactly what re-encoding accepts."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shotwatch.sensor.messages import (
    DOMAIN,
    MessageType,
    seal,
    signed_part_of,
    signing_bytes,
    verify_signature,
)

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
BODY = {"arrival_utc": "2026-12-31T23:59:59.123Z", "note": 'quote " and \\u00e9', "n": 1.5}


def _msg() -> tuple[bytes, dict]:  # type: ignore[type-arg]
    raw = seal(KEY, MessageType.REPORT, "SN-1", 42, BODY)
    return raw, json.loads(raw)


def test_canonical_message_is_cut_to_exactly_the_signed_bytes() -> None:
    raw, env = _msg()
    assert signed_part_of(raw, env) == signing_bytes(env)[len(DOMAIN) :]
    assert verify_signature(PUB, env, raw=raw)


def test_reformatted_message_falls_back_and_still_verifies() -> None:
    _raw, env = _msg()
    pretty = json.dumps(env, indent=2).encode()
    assert signed_part_of(pretty, env) is None
    assert verify_signature(PUB, json.loads(pretty), raw=pretty)


def test_tampered_or_spliced_messages_are_refused() -> None:
    raw, env = _msg()
    tampered = raw.replace(b"1.5", b"2.5")
    assert not verify_signature(PUB, json.loads(tampered), raw=tampered)
    # a second "body" spliced in after the signed one: the parser keeps the spliced one,
    # the cut bytes keep both; neither is what the sensor signed
    evil = raw.replace(b',"serial":', b',"body":{"n":9},"serial":', 1)
    assert json.loads(evil)["body"] == {"n": 9}
    assert not verify_signature(PUB, json.loads(evil), raw=evil)
    other = Ed25519PrivateKey.generate().public_key()
    assert not verify_signature(other, env, raw=raw)


def test_envelope_with_other_members_is_not_cut() -> None:
    raw, env = _msg()
    assert signed_part_of(raw, {**env, "extra": 1}) is None
    assert signed_part_of(raw, {k: v for k, v in env.items() if k != "sig"}) is None
