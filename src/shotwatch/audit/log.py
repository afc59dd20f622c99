"""The append-only, tamper-evident audit log.

Each entry is canonical JSON (sorted keys, no spaces) carrying its own sequence number, the
actor, action, item, purpose and reference, the decision and the rules that decided. Three
independent protections, so that verification can name the first bad entry:

1. the per-row RFC 6962 leaf hash (a changed byte in one row shows in that row);
2. a running chain hash ``SHA-256(prev_chain || leaf)`` (a deleted, inserted or swapped row
   breaks the links around it);
3. signed checkpoints (tree size, Merkle root, time; Ed25519), which can be published: a
   rewrite of the whole table, hashes included, no longer matches them.

Inclusion and consistency proofs are RFC 6962's, checkable by anyone with the public key
(:func:`check_inclusion_proof`, ``shotwatch audit check-proof``). On PostgreSQL (and SQLite)
the database itself refuses UPDATE and DELETE on the log (migration ``audit_0001``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import starmap
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, Table, insert, select, text
from sqlalchemy.exc import IntegrityError

from shotwatch.audit.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    verify_inclusion,
)
from shotwatch.audit.signing import key_id, load_public_b64, public_key_b64, verify_signature
from shotwatch.audit.tables import AuditCheckpointRow, AuditEntryRow
from shotwatch.core.clock import Clock
from shotwatch.core.errors import InputError

ZERO = bytes(32)
_sha256 = hashlib.sha256
ENTRY_T: Table = AuditEntryRow.__table__  # type: ignore[assignment]
CHECKPOINT_T: Table = AuditCheckpointRow.__table__  # type: ignore[assignment]


_PG_INSERT_VALUES = "INSERT INTO audit_entries (seq, entry, leaf_hash, chain_hash) VALUES "
_PG_INSERT_UNNEST = (
    "INSERT INTO audit_entries (seq, entry, leaf_hash, chain_hash) "
    "SELECT * FROM unnest(%b::bigint[], %b::text[], %b::bytea[], %b::bytea[])"
)
_PG_VALUES_MAX_ROWS = 16
#: Below this many rows a parallel verification is not worth starting processes for.
PARALLEL_MIN_ROWS = 50_000
_SQLITE_INSERT = "INSERT INTO audit_entries (seq, entry, leaf_hash, chain_hash) VALUES (?, ?, ?, ?)"


def canonical(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain(prev: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(prev + leaf).digest()


def checkpoint_message(tree_size: int, root: bytes, time_s: float) -> bytes:
    """The signed text of a checkpoint (a note anyone can re-create)."""
    return f"shotwatch-audit-checkpoint\n{tree_size}\n{root.hex()}\n{time_s:.6f}\n".encode()


class Accumulator:
    """Merkle root of a growing list of leaves in O(log n) memory (RFC 6962 shape)."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, hash) of perfect subtrees
        self.size = 0

    def add(self, leaf: bytes) -> None:
        h, node = 0, leaf
        stack = self._stack
        while stack and stack[-1][0] == h:
            _, left = stack.pop()
            node = node_hash(left, node)
            h += 1
        stack.append((h, node))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            r = node_hash(left, r)
        return r


@dataclass(frozen=True)
class Problem:
    """The first bad entry: its sequence number, what happened, and the evidence."""

    seq: int
    kind: str  # altered | deleted | inserted | reordered | checkpoint
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    checkpoints: int
    root: str
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


class StoredRow(NamedTuple):
    """One stored row: the entry's UTF-8 bytes (exactly what is hashed) and its hashes."""

    seq: int
    entry: bytes
    leaf_hash: bytes
    chain_hash: bytes


#: A stored row as the driver returns it: (seq, entry bytes, leaf hash, chain hash).
RowTuple = tuple[int, bytes, bytes, bytes]


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root_hash: str
    time_s: float
    key_id: str
    signature: str


def _entry_seq(entry: bytes) -> int | None:
    """The entry's own sequence number. Canonical entries sort their keys, so the top-level
    ``"seq"`` is the last one (only ``time_s`` follows); fall back to a full parse."""
    i = entry.rfind(b'"seq":', max(0, len(entry) - 64))
    if i < 0:
        i = entry.rfind(b'"seq":')
    if i >= 0:
        j = entry.find(b",", i + 6)
        try:
            return int(entry[i + 6 : j])
        except ValueError:
            pass
    try:
        obj = json.loads(entry)
    except ValueError:
        return None
    seq = obj.get("seq") if isinstance(obj, dict) else None
    return seq if isinstance(seq, int) else None


def prefix_root(levels: list[list[bytes]], size: int) -> bytes:
    """RFC 6962 root of the first ``size`` leaves from the perfect-subtree levels
    (``levels[h][i]`` = root of leaves ``i*2^h .. (i+1)*2^h - 1``)."""
    if size == 0:
        return EMPTY_ROOT
    parts: list[bytes] = []
    offset = 0
    for h in range(size.bit_length() - 1, -1, -1):
        if size >> h & 1:
            parts.append(levels[h][offset >> h])
            offset += 1 << h
    r = parts[-1]
    for left in reversed(parts[:-1]):
        r = node_hash(left, r)
    return r


def build_levels(leaves: list[bytes]) -> list[list[bytes]]:
    levels = [leaves]
    nh = node_hash
    while len(levels[-1]) > 1:
        lv = levels[-1]
        levels.append([nh(lv[i], lv[i + 1]) for i in range(0, len(lv) - 1, 2)])
    return levels


def verify_rows(
    rows: Iterable[RowTuple],
    checkpoints: Sequence[Checkpoint] = (),
    public_key: Ed25519PublicKey | None = None,
) -> VerifyReport:
    """Check a log (rows in ``seq`` order) and its checkpoints; name the first problem.

    Pass 1 walks the rows (leaf hash, embedded sequence number, chain) and
    keeps the leaf hashes; pass 2 builds the Merkle tree once and compares every signed
    checkpoint with the root of its prefix.
    """
    cps = sorted(checkpoints, key=lambda c: c.tree_size)
    bad = _bad_signature(cps, public_key)
    if bad is not None:
        return bad
    leaves: list[bytes] = []
    problem = _walk(rows, leaves)
    return _check_tree(leaves, problem, cps)


def _bad_signature(
    cps: Sequence[Checkpoint], public_key: Ed25519PublicKey | None
) -> VerifyReport | None:
    for cp in cps:
        if public_key is not None and not verify_signature(
            public_key,
            cp.signature,
            checkpoint_message(cp.tree_size, bytes.fromhex(cp.root_hash), cp.time_s),
        ):
            return VerifyReport(
                0,
                len(cps),
                "",
                Problem(cp.tree_size, "checkpoint", "checkpoint signature does not verify"),
            )
    return None


def _check_tree(
    leaves: list[bytes], problem: Problem | None, cps: Sequence[Checkpoint]
) -> VerifyReport:
    """Pass 2 of :func:`verify_rows`: the Merkle tree over the good rows' leaves against
    every signed checkpoint (``cps`` sorted by size)."""
    levels = build_levels(leaves) if leaves else [[]]
    size = len(leaves)

    def report(p: Problem | None) -> VerifyReport:
        return VerifyReport(size, len(cps), prefix_root(levels, size).hex(), p)

    if problem is not None:
        return report(problem)
    last_good = 0
    for cp in cps:
        if cp.tree_size > size:
            return report(
                Problem(
                    size + 1,
                    "deleted",
                    f"entries {size + 1}..{cp.tree_size} are missing "
                    f"(signed checkpoint of size {cp.tree_size})",
                )
            )
        if prefix_root(levels, cp.tree_size).hex() != cp.root_hash:
            return report(
                Problem(
                    last_good + 1,
                    "altered",
                    f"entries {last_good + 1}..{cp.tree_size} do not match the signed "
                    f"checkpoint of size {cp.tree_size}",
                )
            )
        last_good = cp.tree_size
    return report(None)


def _walk(
    rows: Iterable[RowTuple],
    leaves: list[bytes],
    start: tuple[int, bytes, bytes] = (0, ZERO, ZERO),
    stop_after: int | None = None,
) -> Problem | None:
    """Pass 1 of :func:`verify_rows`; appends each good row's leaf hash to ``leaves``.

    The common case (the row is what was written) costs two hashes and a few byte
    comparisons; any mismatch goes to :func:`_diagnose`, which names what happened.
    """
    sha = _sha256
    add = leaves.append
    prev_seq, prev_chain, prev2_chain = start
    it = iter(rows)
    row = next(it, None)
    while row is not None:
        seq, entry, stored_leaf, stored_chain = row
        if stop_after is not None and seq > stop_after:
            return None  # the next range's (it was read only as the look-ahead)
        nxt = next(it, None)
        leaf = sha(b"\x00" + entry).digest()
        # The entry's own top-level "seq" is its last "seq" key (canonical JSON sorts keys,
        # only "time_s" follows; a string cannot hold the bytes '"seq":' unescaped).
        i = entry.rfind(b'"seq":', max(0, len(entry) - 64))
        want_chain = sha(prev_chain + leaf).digest()
        if (
            seq != prev_seq + 1
            or leaf != stored_leaf
            or i < 0
            or not entry.startswith(b'"seq":%d,' % seq, i)
            or want_chain != stored_chain
        ):
            problem = _diagnose(row, nxt, prev_seq, prev_chain, prev2_chain)
            if problem is not None:
                return problem
        add(leaf)
        prev2_chain, prev_chain, prev_seq = prev_chain, want_chain, seq
        row = nxt
    return None


def _diagnose(
    row: RowTuple, nxt: RowTuple | None, prev_seq: int, prev_chain: bytes, prev2_chain: bytes
) -> Problem | None:
    """What is wrong with ``row`` (None: nothing, the fast checks were only conservative)."""
    sha = _sha256
    seq, entry, stored_leaf, stored_chain = row
    expected = prev_seq + 1
    if seq != expected:
        if seq > expected:
            return Problem(expected, "deleted", f"entries {expected}..{seq - 1} are missing")
        return Problem(seq, "inserted", f"sequence {seq} appears twice or out of order")
    leaf = sha(b"\x00" + entry).digest()
    if leaf != stored_leaf:
        return Problem(seq, "altered", "entry bytes do not match the stored leaf hash")
    eseq = _entry_seq(entry)
    if eseq != seq:
        nseq = _entry_seq(nxt[1]) if nxt is not None else None
        if eseq is not None and eseq > seq and nseq == seq:
            return Problem(seq, "reordered", f"entries {seq} and {eseq} are swapped")
        if eseq is not None and eseq > seq:
            return Problem(
                seq,
                "deleted",
                f"entry {seq} removed and later entries renumbered (row holds entry {eseq})",
            )
        if eseq is not None and eseq < seq:
            return Problem(
                seq - 1,
                "inserted",
                f"an entry was inserted before {seq} (row holds entry {eseq})",
            )
        return Problem(seq, "altered", "entry does not carry its sequence number")
    if sha(prev_chain + leaf).digest() != stored_chain:
        if prev_seq >= 1 and sha(prev2_chain + leaf).digest() == stored_chain:
            return Problem(
                prev_seq, "inserted", f"entry {prev_seq} is not in the chain: it was inserted"
            )
        return Problem(seq, "altered", "chain hash does not link to the previous entry")
    return None


def _stream_rows(
    engine: Engine, batch: int = 20000, after: int | None = None
) -> Iterator[RowTuple]:
    """Stored rows in sequence order (those with ``seq > after``), as plain driver tuples
    with the entry as the UTF-8 bytes the database holds."""
    pg = engine.dialect.name == "postgresql"
    as_bytes = "convert_to(entry, 'UTF8')" if pg else "CAST(entry AS BLOB)"
    where = f" WHERE seq > {int(after)}" if after is not None else ""
    sql = f"SELECT seq, {as_bytes}, leaf_hash, chain_hash FROM audit_entries{where} ORDER BY seq"
    # Straight from the driver as plain tuples: verification reads every row, and
    # wrapping each in an object costs about as much as hashing it.
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        assert dbapi is not None
        # On PostgreSQL a server-side cursor streams instead of loading the whole log.
        cur = dbapi.cursor(name=f"audit_rows_{os.getpid()}") if pg else dbapi.cursor()
        cur.execute(sql)
        while True:
            chunk = cur.fetchmany(batch)
            if not chunk:
                break
            yield from chunk
        cur.close()
    finally:
        raw.close()


def _walk_range(url: str, lo: int, hi: int | None) -> tuple[Problem | None, bytes]:
    """One worker of a parallel verification: the rows with ``lo < seq <= hi``, starting
    from the stored state of the rows just before (as a sequential walk would reach it
    when everything before is intact). Returns the first problem and the leaf hashes."""
    from shotwatch.storage.db import make_engine

    engine = make_engine(url, pooled=False)
    try:
        with engine.connect() as conn:
            before = conn.execute(
                text(
                    "SELECT seq, chain_hash FROM audit_entries WHERE seq <= :lo "
                    "ORDER BY seq DESC LIMIT 2"
                ),
                {"lo": lo},
            ).all()
        start = (
            int(before[0][0]) if before else 0,
            bytes(before[0][1]) if before else ZERO,
            bytes(before[1][1]) if len(before) > 1 else ZERO,
        )
        leaves: list[bytes] = []
        problem = _walk(_stream_rows(engine, after=lo), leaves, start, hi)
        return problem, b"".join(leaves)
    finally:
        engine.dispose()


class _Pending:
    __slots__ = ("body", "done", "error", "seq", "wake")

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.done = False
        self.error: Exception | None = None
        self.seq = 0
        # Held while its caller sleeps; released to wake it (done, or now the leader).
        self.wake: Any = None


class AuditLog:
    """Appends, checkpoints, verifies and proves entries of the audit log in one database."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_every: int = 1000,
        commit_delay_s: float = 0.0,
    ) -> None:
        self.engine = engine
        self.commit_delay_s = commit_delay_s
        self._concurrent = False
        self.clock = clock
        self.signing_key = signing_key
        self.checkpoint_every = checkpoint_every
        # Group commit: appenders queue under ``_mutex``; one of them at a time is the leader
        # (``_writing``) and writes everything queued while the next ones queue up.
        # ``_write_lock`` guards the writer connection itself.
        self._mutex = threading.Lock()
        self._writing = False
        self._write_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._acc = Accumulator()
        self._wconn: Connection | None = None
        self.stats = {"batches": 0, "entries": 0, "retries": 0}
        self._cached_head: tuple[int, bytes] | None = None
        self._cp_lock = threading.Lock()
        self._pg = engine.dialect.name == "postgresql"
        dbapi_integrity = getattr(engine.dialect.dbapi, "IntegrityError", IntegrityError)
        self._integrity_errors: tuple[type[Exception], ...] = (IntegrityError, dbapi_integrity)

    # ---- writing -------------------------------------------------------------------------

    def append(
        self,
        *,
        actor: str,
        action: str,
        kind: str,
        allowed: bool,
        item: str = "",
        purpose: str = "",
        reference: str = "",
        rules: Sequence[str] = (),
        reason: str = "",
        policy: str = "",
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Add one entry and return its sequence number once it is committed.

        Concurrent callers are group-committed (ADR 0074): the current leader writes every
        queued entry in one transaction, so throughput grows with concurrency while each
        caller still returns only after its own entry is committed.
        """
        pending = _Pending(
            {
                "time_s": float(self.clock.now()),
                "actor": actor,
                "action": action,
                "kind": kind,
                "item": item,
                "purpose": purpose,
                "reference": reference,
                "allowed": allowed,
                "rules": list(rules),
                "reason": reason,
                "policy": policy,
                "detail": detail or {},
            }
        )
        self._commit([pending])
        if pending.error is not None:
            raise pending.error
        return pending.seq

    def append_many(self, bodies: Sequence[dict[str, Any]]) -> list[int]:
        """Append several entries (each a dict of :meth:`append`'s fields) in one transaction
        (possibly shared with concurrent appends), in order and without others between."""
        batch = [_Pending(dict(b)) for b in bodies]
        self._commit(batch)
        for p in batch:
            if p.error is not None:
                raise p.error
        return [p.seq for p in batch]

    def _commit(self, mine: list[_Pending]) -> None:
        """Queue ``mine`` (kept together, in order) and return once it is committed or failed.

        Group commit (ADR 0074): if nobody is writing, the caller leads: it takes the whole
        queue and writes it as one transaction. Otherwise it sleeps on its own lock until a
        leader has committed its entries (it returns at once) or hands it the lead (its
        entries are still queued: it writes the queue). Only the callers of the batch just
        written and the next leader are woken.
        """
        if not mine:
            return
        me = mine[-1]
        me.wake = threading.Lock()
        me.wake.acquire()
        with self._mutex:
            self._pending.extend(mine)
            lead = not self._writing
            self._writing = True
        if not lead:
            me.wake.acquire()
            if me.done:
                return
        self._lead(me)

    def _lead(self, me: _Pending) -> None:
        batch: list[_Pending] = []
        try:
            if self.commit_delay_s > 0 and self._concurrent:
                # Like PostgreSQL's commit_delay: while other requests are in flight, the
                # leader lets them reach the queue before it commits, so one commit (one
                # round trip, one WAL flush) carries more entries. Never when alone.
                time.sleep(self.commit_delay_s)
            with self._mutex:
                batch, self._pending = self._pending, []
            self._concurrent = len(batch) > 1
            with self._write_lock:
                self._write_batch(batch)
        finally:
            for p in batch:
                if not p.done:  # the write failed before it could say so per entry
                    p.error = p.error or RuntimeError("audit batch was not written")
                    p.done = True
                if p.wake is not None and p is not me:
                    p.wake.release()
            with self._mutex:
                nxt = next((p for p in self._pending if p.wake is not None), None)
                if nxt is None:
                    self._writing = False
            if nxt is not None:
                nxt.wake.release()  # still queued, not done: it leads the next batch

    def _writer(self) -> Connection:
        """The connection appends go through, in autocommit mode: a batch is one multi-row
        INSERT, so it costs one round trip and one commit. On PostgreSQL it is kept open
        (no pool check-out or ping per append); SQLite connections stay per thread."""
        if self._pg:
            if self._wconn is None or self._wconn.closed or self._wconn.invalidated:
                self._wconn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            return self._wconn
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _insert(self, conn: Connection, rows: list[tuple[int, str, bytes, bytes]]) -> None:
        """One statement for the whole batch, sent as binary parameters through a prepared
        statement on the driver connection (PostgreSQL). A batch costs one round trip and
        one commit; SQLAlchemy's per-row parameter handling cost more client CPU than the
        insert itself. Small batches use a multi-row VALUES (one prepared statement per
        size), large ones four arrays through ``unnest`` (no parameter-count limit)."""
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        if not self._pg:
            # The connection is in autocommit mode, where executemany would commit (and on
            # disk sync) every row: the batch is one explicit transaction instead.
            cur = dbapi.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    cur.executemany(_SQLITE_INSERT, rows)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
            finally:
                cur.close()
            return
        n = len(rows)
        args: list[Any]
        if n <= _PG_VALUES_MAX_ROWS:
            sql = _PG_INSERT_VALUES + ",".join(("(%b,%b,%b,%b)",) * n)
            args = [v for r in rows for v in r]
        else:
            sql = _PG_INSERT_UNNEST
            args = [list(col) for col in zip(*rows, strict=True)]
        with dbapi.cursor() as cur:
            cur.execute(sql, args, prepare=n <= _PG_VALUES_MAX_ROWS or None)

    def _head(self, conn: Connection) -> tuple[int, bytes]:
        head = conn.execute(
            select(ENTRY_T.c.seq, ENTRY_T.c.chain_hash).order_by(ENTRY_T.c.seq.desc()).limit(1)
        ).first()
        return (int(head[0]), bytes(head[1])) if head else (0, ZERO)

    def _write_batch(self, batch: list[_Pending]) -> None:
        """Write ``batch`` after the current head (called with the write lock held).

        The head is cached. If another process appended meanwhile, the insert collides on
        the sequence number (primary key): the head is re-read and the batch re-chained, so
        the chain stays linear without a lock held across round trips.
        """
        if not batch:
            return
        error: Exception | None = None
        for _attempt in range(20):
            conn = self._writer()
            try:
                if self._cached_head is None:
                    self._cached_head = self._head(conn)
                seq, prev = self._cached_head
                rows = []
                for p in batch:
                    seq += 1
                    body = {"seq": seq, **p.body}
                    body.setdefault("detail", {})
                    entry = canonical(body)
                    leaf = leaf_hash(entry.encode("utf-8"))
                    prev = chain(prev, leaf)
                    rows.append((seq, entry, leaf, prev))
                    p.seq = seq
                self._insert(conn, rows)
                self._cached_head = (seq, prev)
                self.stats["batches"] += 1
                self.stats["entries"] += len(rows)
                error = None
                break
            except self._integrity_errors as exc:  # another writer took these sequence numbers
                self._cached_head = None
                self.stats["retries"] += 1
                error = exc
            except Exception as exc:
                self._cached_head = None
                if self._wconn is not None:
                    self._wconn.close()
                    self._wconn = None
                error = exc
                break
            finally:
                if not self._pg:
                    conn.close()
        if error is not None:
            for p in batch:
                p.error = error
                p.done = True
            return
        first, last = batch[0].seq, batch[-1].seq
        for p in batch:
            p.done = True
        every = self.checkpoint_every
        if self.signing_key is not None and last // every > (first - 1) // every:
            self.checkpoint()

    def close(self) -> None:
        with self._write_lock:
            if self._wconn is not None:
                self._wconn.close()
                self._wconn = None

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current tree head and store it (a publishable checkpoint)."""
        if self.signing_key is None:
            raise InputError("audit", "signing_key", "no signing key configured")
        # The log is append-only, so the accumulator only needs the entries added since
        # the last checkpoint this process made.
        with self._cp_lock:
            return self._checkpoint_locked()

    def _checkpoint_locked(self) -> Checkpoint | None:
        assert self.signing_key is not None
        acc = self._acc
        q = select(ENTRY_T.c.leaf_hash).where(ENTRY_T.c.seq > acc.size).order_by(ENTRY_T.c.seq)
        with self.engine.connect() as conn:
            for (h,) in conn.execute(q):
                acc.add(bytes(h))
        if acc.size == 0:
            return None
        root = acc.root()
        size = acc.size
        time_s = float(self.clock.now())
        sig = self.signing_key.sign(checkpoint_message(size, root, time_s)).hex()
        cp = Checkpoint(size, root.hex(), time_s, key_id(self.signing_key.public_key()), sig)
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(CHECKPOINT_T.c.tree_size).where(CHECKPOINT_T.c.tree_size == size)
            ).first()
            if exists:
                return self.checkpoints()[-1]
            conn.execute(insert(CHECKPOINT_T), cp.__dict__)
        return cp

    # ---- reading -------------------------------------------------------------------------

    def leaf_hashes(self, upto: int | None = None) -> list[bytes]:
        q = select(ENTRY_T.c.leaf_hash).order_by(ENTRY_T.c.seq)
        if upto is not None:
            q = q.where(ENTRY_T.c.seq <= upto)
        with self.engine.connect() as conn:
            return [bytes(h) for (h,) in conn.execute(q)]

    def checkpoints(self) -> list[Checkpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(CHECKPOINT_T).order_by(CHECKPOINT_T.c.tree_size)).all()
        return [Checkpoint(r.tree_size, r.root_hash, r.time_s, r.key_id, r.signature) for r in rows]

    def rows(self, batch: int = 20000) -> Iterator[StoredRow]:
        """Every stored row in sequence order, streamed, with the entry as the UTF-8 bytes
        the database holds (converted by the database, not re-encoded here)."""
        return starmap(StoredRow, self._raw_rows(batch))

    def _raw_rows(self, batch: int = 20000) -> Iterator[RowTuple]:
        return _stream_rows(self.engine, batch)

    def verify(
        self, public_key: Ed25519PublicKey | None = None, *, workers: int = 1
    ) -> VerifyReport:
        """Check the whole log; ``workers`` > 1 splits the row checks over processes
        (same result and the same first problem as one process; ADR 0077)."""
        if public_key is None and self.signing_key is not None:
            public_key = self.signing_key.public_key()
        cps = self.checkpoints()
        url = self.engine.url
        in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
        if workers <= 1 or in_memory:
            return verify_rows(self._raw_rows(), cps, public_key)
        cps = sorted(cps, key=lambda c: c.tree_size)
        bad = _bad_signature(cps, public_key)
        if bad is not None:
            return bad
        with self.engine.connect() as conn:
            top = int(
                conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_entries")).scalar_one()
            )
        if top < PARALLEL_MIN_ROWS:
            return verify_rows(self._raw_rows(), cps, public_key)
        bounds = [top * k // workers for k in range(workers)]
        ranges = [(bounds[k], bounds[k + 1] if k + 1 < workers else None) for k in range(workers)]
        url_s = url.render_as_string(hide_password=False)
        # fork: the workers need nothing but the URL; each opens its own connection.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.starmap(_walk_range, [(url_s, lo, hi) for lo, hi in ranges])
        leaves: list[bytes] = []
        problem: Problem | None = None
        for prob, blob in parts:
            leaves.extend([blob[i : i + 32] for i in range(0, len(blob), 32)])
            if prob is not None:
                problem = prob
                break
        return _check_tree(leaves, problem, cps)

    def entry(self, seq: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(ENTRY_T.c.entry).where(ENTRY_T.c.seq == seq)).first()
        if row is None:
            raise InputError("audit", "seq", f"no audit entry {seq}")
        return dict(json.loads(row[0]))

    def inclusion(self, seq: int) -> dict[str, Any]:
        """A self-contained proof that entry ``seq`` is in the latest signed checkpoint."""
        cps = [c for c in self.checkpoints() if c.tree_size >= seq]
        if not cps:
            raise InputError(
                "audit", "seq", f"entry {seq} is not yet covered by a signed checkpoint"
            )
        cp = cps[-1]
        leaves = self.leaf_hashes(upto=cp.tree_size)
        with self.engine.connect() as conn:
            row = conn.execute(select(ENTRY_T.c.entry).where(ENTRY_T.c.seq == seq)).first()
        if row is None:
            raise InputError("audit", "seq", f"no audit entry {seq}")
        pub = self.signing_key.public_key() if self.signing_key else None
        return {
            "format": "shotwatch-audit-inclusion-proof/1 (RFC 6962)",
            "entry": row[0],
            "leaf_index": seq - 1,
            "tree_size": cp.tree_size,
            "audit_path": [h.hex() for h in inclusion_proof(seq - 1, leaves)],
            "checkpoint": {
                "tree_size": cp.tree_size,
                "root_hash": cp.root_hash,
                "time_s": cp.time_s,
                "key_id": cp.key_id,
                "signature": cp.signature,
                "public_key": public_key_b64(pub) if pub else "",
            },
        }

    def consistency(self, old_size: int, new_size: int) -> list[str]:
        """RFC 6962 proof that the log of ``new_size`` extends the log of ``old_size``."""
        leaves = self.leaf_hashes(upto=new_size)
        if len(leaves) < new_size:
            raise InputError("audit", "new_size", f"the log has only {len(leaves)} entries")
        return [h.hex() for h in consistency_proof(old_size, leaves)]

    # ---- focused audits ------------------------------------------------------------------

    def query(
        self,
        *,
        actor: str | None = None,
        item: str | None = None,
        since_s: float | None = None,
        until_s: float | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Focused audit: entries by user, by item and by period, read from the hashed
        entries through the expression indexes."""
        f = FIELD_SQL["postgresql" if self._pg else "sqlite"]
        where: list[str] = []
        params: dict[str, Any] = {}
        if actor is not None:
            where.append(f"{f['actor']} = :actor")
            params["actor"] = actor
        if item is not None:
            where.append(f"{f['item']} = :item")
            params["item"] = item
        if since_s is not None:
            where.append(f"{f['time_s']} >= :since")
            params["since"] = since_s
        if until_s is not None:
            where.append(f"{f['time_s']} < :until")
            params["until"] = until_s
        sql = "SELECT entry FROM audit_entries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.engine.connect() as conn:
            return [json.loads(e) for (e,) in conn.execute(text(sql), params)]


# The same expressions as the indexes of migration audit_0001 (so the indexes are used).
FIELD_SQL = {
    "postgresql": {
        "actor": "(entry::jsonb ->> 'actor')",
        "item": "(entry::jsonb ->> 'item')",
        "time_s": "(((entry::jsonb ->> 'time_s'))::double precision)",
    },
    "sqlite": {
        "actor": "json_extract(entry, '$.actor')",
        "item": "json_extract(entry, '$.item')",
        "time_s": "json_extract(entry, '$.time_s')",
    },
}


EXPORT_FIELDS = [
    "seq",
    "time_s",
    "actor",
    "action",
    "kind",
    "item",
    "purpose",
    "reference",
    "allowed",
    "rules",
    "reason",
    "policy",
    "detail",
]


def export_entries(entries: Sequence[dict[str, Any]], fmt: str) -> str:
    """Focused-audit export as CSV or JSON (one entry per row / object)."""
    if fmt == "json":
        return json.dumps(list(entries), indent=2, sort_keys=True) + "\n"
    if fmt != "csv":
        raise InputError("export", "format", f"unknown format {fmt!r} (csv or json)")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
    w.writeheader()
    for e in entries:
        row = dict(e)
        row["rules"] = ";".join(e.get("rules", []))
        row["detail"] = canonical(e.get("detail", {}))
        w.writerow(row)
    return buf.getvalue()


def check_inclusion_proof(
    proof: dict[str, Any], public_key_b64: str | None = None
) -> tuple[bool, str]:
    """Check a proof from :meth:`AuditLog.inclusion` with nothing but the proof (and, best,
    a public key obtained separately). Returns (ok, explanation)."""
    cp = proof["checkpoint"]
    key = load_public_b64(public_key_b64 or cp["public_key"])
    root = bytes.fromhex(cp["root_hash"])
    msg = checkpoint_message(int(cp["tree_size"]), root, float(cp["time_s"]))
    if not verify_signature(key, cp["signature"], msg):
        return False, "checkpoint signature does not verify with this public key"
    leaf = leaf_hash(proof["entry"].encode("utf-8"))
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    if not verify_inclusion(leaf, int(proof["leaf_index"]), int(proof["tree_size"]), path, root):
        return False, "audit path does not lead from the entry to the signed root"
    if int(proof["tree_size"]) != int(cp["tree_size"]):
        return False, "proof and checkpoint disagree on the tree size"
    return (
        True,
        f"entry {int(proof['leaf_index']) + 1} is in the signed log of size {cp['tree_size']}",
    )
