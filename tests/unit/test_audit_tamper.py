"""Any single altered byte, deleted, inserted or swapped row of the audit log is detected,
and the report names the entry (property tests over positions)."""

from __future__ import annotations

from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from shotwatch.audit.log import (
    Accumulator,
    Checkpoint,
    StoredRow,
    canonical,
    chain,
    checkpoint_message,
    verify_rows,
)
from shotwatch.audit.merkle import leaf_hash, root_from_leaf_hashes
from shotwatch.audit.signing import key_id

N = 24
KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()


def build(n: int = N) -> tuple[list[StoredRow], list[Checkpoint]]:
    rows, prev, leaves = [], bytes(32), []
    for seq in range(1, n + 1):
        body = {
            "seq": seq,
            "actor": f"user-{seq % 5}",
            "action": "incident.view",
            "item": f"inc-{seq % 7}",
            "purpose": "criminal_investigation",
            "allowed": True,
        }
        entry = canonical(body)
        leaf = leaf_hash(entry.encode())
        prev = chain(prev, leaf)
        leaves.append(leaf)
        rows.append(StoredRow(seq, entry.encode(), leaf, prev))
    cps = []
    for size in (n // 2, n):
        root = root_from_leaf_hashes(leaves[:size])
        sig = KEY.sign(checkpoint_message(size, root, 1000.0 + size)).hex()
        cps.append(Checkpoint(size, root.hex(), 1000.0 + size, key_id(PUB), sig))
    return rows, cps


ROWS, CPS = build()


def test_intact_log_verifies() -> None:
    rep = verify_rows(ROWS, CPS, PUB)
    assert rep.ok and rep.entries == N and rep.checkpoints == 2


def test_accumulator_matches_rfc_root() -> None:
    acc = Accumulator()
    leaves = [r.leaf_hash for r in ROWS]
    for i, leaf in enumerate(leaves, 1):
        acc.add(leaf)
        assert acc.root() == root_from_leaf_hashes(leaves[:i])


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_any_altered_byte_is_detected(data: st.DataObject) -> None:
    i = data.draw(st.integers(0, N - 1))
    col = data.draw(st.sampled_from(["entry", "leaf_hash", "chain_hash"]))
    value: bytes = getattr(ROWS[i], col)
    pos = data.draw(st.integers(0, len(value) - 1))
    flip = data.draw(st.integers(1, 255))
    new = value[:pos] + bytes([value[pos] ^ flip]) + value[pos + 1 :]
    rows = list(ROWS)
    rows[i] = rows[i]._replace(**{col: new})
    rep = verify_rows(rows, CPS, PUB)
    assert rep.problem is not None
    assert rep.problem.seq == i + 1, rep.problem


@given(st.integers(0, N - 1), st.booleans())
@settings(max_examples=100, deadline=None)
def test_deleted_row_is_detected(i: int, with_checkpoint: bool) -> None:
    rows = ROWS[:i] + ROWS[i + 1 :]
    cps = CPS if with_checkpoint or i < N - 1 else []
    rep = verify_rows(rows, cps, PUB)
    if not cps:  # deleting the newest entry with no checkpoint covering it is undetectable
        return
    assert rep.problem is not None and rep.problem.kind == "deleted"
    assert rep.problem.seq == i + 1


@given(st.integers(0, N - 2))
@settings(max_examples=100, deadline=None)
def test_deleted_and_renumbered_is_detected(i: int) -> None:
    rows = ROWS[:i] + [r._replace(seq=r.seq - 1) for r in ROWS[i + 1 :]]
    rep = verify_rows(rows, CPS, PUB)
    assert rep.problem is not None and rep.problem.kind == "deleted"
    assert rep.problem.seq == i + 1


@given(st.integers(0, N - 1))
@settings(max_examples=100, deadline=None)
def test_inserted_row_is_detected(i: int) -> None:
    """A forged entry slipped in at position i, later rows renumbered; the forger even
    computes a correct leaf and chain hash for it."""
    prev = ROWS[i - 1].chain_hash if i else bytes(32)
    body = {"seq": i + 1, "actor": "ghost", "action": "incident.view", "item": "inc-0"}
    entry = canonical(body)
    leaf = leaf_hash(entry.encode())
    forged = StoredRow(i + 1, entry.encode(), leaf, chain(prev, leaf))
    rows = ROWS[:i] + [forged] + [r._replace(seq=r.seq + 1) for r in ROWS[i:]]
    rep = verify_rows(rows, CPS, PUB)
    assert rep.problem is not None and rep.problem.kind == "inserted"
    assert rep.problem.seq == i + 1


@given(st.integers(0, N - 2))
@settings(max_examples=100, deadline=None)
def test_swapped_rows_are_detected(i: int) -> None:
    rows = list(ROWS)
    a, b = rows[i], rows[i + 1]
    rows[i], rows[i + 1] = b._replace(seq=a.seq), a._replace(seq=b.seq)
    rep = verify_rows(rows, CPS, PUB)
    assert rep.problem is not None and rep.problem.kind == "reordered"
    assert rep.problem.seq == i + 1


def test_full_rewrite_with_fresh_hashes_is_caught_by_the_signed_checkpoint() -> None:
    body = {
        "seq": 3,
        "actor": "user-3",
        "action": "incident.view",
        "item": "inc-3",
        "purpose": "criminal_investigation",
        "allowed": False,
    }
    rows, prev = [], bytes(32)
    for r in ROWS:
        entry = canonical(body).encode() if r.seq == 3 else r.entry
        leaf = leaf_hash(entry)
        prev = chain(prev, leaf)
        rows.append(r._replace(entry=entry, leaf_hash=leaf, chain_hash=prev))
    rep = verify_rows(rows, CPS, PUB)
    assert rep.problem is not None and rep.problem.kind == "altered"
    assert rep.problem.seq == 1 and "checkpoint of size 12" in rep.problem.detail


def test_forged_checkpoint_signature_is_rejected() -> None:
    other = Ed25519PrivateKey.generate()
    cp = CPS[-1]
    forged = replace(cp, signature=other.sign(b"x").hex())
    rep = verify_rows(ROWS, [CPS[0], forged], PUB)
    assert rep.problem is not None and rep.problem.kind == "checkpoint"
