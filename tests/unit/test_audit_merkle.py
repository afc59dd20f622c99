from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from shotwatch.audit.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)


def rfc_mth(data: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 section 2.1 writes it (recursive reference twin)."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + rfc_mth(data[:k]) + rfc_mth(data[k:])).digest()


def entries(n: int) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(n)]


def test_known_rfc_vectors() -> None:
    # Empty tree and single leaf, from RFC 6962's definitions (certificate-transparency tests).
    assert root_from_leaf_hashes([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


@given(st.integers(min_value=1, max_value=70))
@settings(max_examples=60, deadline=None)
def test_root_matches_rfc_recursion(n: int) -> None:
    data = entries(n)
    assert root_from_leaf_hashes([leaf_hash(d) for d in data]) == rfc_mth(data)


@given(st.data())
@settings(max_examples=120, deadline=None)
def test_inclusion_proofs_verify_and_reject(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=70))
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    leaves = [leaf_hash(d) for d in entries(n)]
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof(i, leaves)
    assert verify_inclusion(leaves[i], i, n, proof, root)
    assert not verify_inclusion(leaf_hash(b"forged"), i, n, proof, root)
    if n > 1:
        assert not verify_inclusion(leaves[i], (i + 1) % n, n, proof, root)


@given(st.data())
@settings(max_examples=120, deadline=None)
def test_consistency_proofs_verify_and_reject(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=70))
    m = data.draw(st.integers(min_value=1, max_value=n))
    leaves = [leaf_hash(d) for d in entries(n)]
    old_root = root_from_leaf_hashes(leaves[:m])
    new_root = root_from_leaf_hashes(leaves)
    proof = consistency_proof(m, leaves)
    assert verify_consistency(m, n, old_root, new_root, proof)
    if m < n:
        forked = list(leaves)
        forked[m - 1] = leaf_hash(b"rewritten history")
        assert not verify_consistency(m, n, root_from_leaf_hashes(forked[:m]), new_root, proof)
