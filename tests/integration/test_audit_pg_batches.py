"""Group commit on PostgreSQL: every acknowledged entry is committed, in one linear chain,
whatever the batch size and whatever the entry text holds."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from tests.pgutil import fresh_database

from shotwatch.audit import log as audit_log
from shotwatch.audit.log import AuditLog
from shotwatch.core.clock import ReplayClock
from shotwatch.storage.db import make_engine, migrate

AWKWARD = ["quote ' and \" double", "back\\slash", "new\nline", "tab\t", "ünïcødé ☃", "{,}", ""]


@pytest.mark.postgres
@pytest.mark.parametrize("commit_delay_s", [0.0, 0.002])
def test_concurrent_appends_and_bulk_batches_form_one_verifiable_log(
    pg_url: str, commit_delay_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_database(pg_url) as url:
        migrate(url)
        engine = make_engine(url)
        log = AuditLog(
            engine,
            ReplayClock(1_700_000_000.0),
            signing_key=Ed25519PrivateKey.generate(),
            commit_delay_s=commit_delay_s,
        )
        acked: list[tuple[int, str]] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            for i in range(40):
                item = f"{AWKWARD[(k + i) % len(AWKWARD)]}-{k}-{i}"
                seq = log.append(
                    actor=f"u{k}", action="incident.view", kind="view", allowed=True, item=item
                )
                # Acknowledged means committed: another connection sees it at once.
                with engine.connect() as conn:
                    n = conn.execute(
                        text("SELECT count(*) FROM audit_entries WHERE seq = :s"), {"s": seq}
                    ).scalar_one()
                assert n == 1
                with lock:
                    acked.append((seq, item))

        groups: list[list[int]] = []

        def bulk_worker() -> None:
            for g in range(4):
                bodies = [
                    {
                        "actor": "grp",
                        "action": "incident.view",
                        "kind": "view",
                        "allowed": True,
                        "item": f"grp-{g}-{i}",
                    }
                    for i in range(50)
                ]
                seqs = log.append_many(bodies)
                groups.append(seqs)
                with lock:
                    acked.extend(zip(seqs, [b["item"] for b in bodies], strict=True))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(12)]
        threads.append(threading.Thread(target=bulk_worker))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Bulk batches of every size path (multi-row VALUES and unnest arrays).
        for size in (1, 16, 17, 500):
            bodies = [
                {
                    "actor": "bulk",
                    "action": "incident.view",
                    "kind": "view",
                    "allowed": False,
                    "item": f"{AWKWARD[i % len(AWKWARD)]}#{size}-{i}",
                }
                for i in range(size)
            ]
            acked.extend(zip(log.append_many(bodies), [b["item"] for b in bodies], strict=True))
        # A group written while others append stays together and in order.
        assert len(groups) == 4
        for seqs in groups:
            assert seqs == list(range(seqs[0], seqs[0] + 50))
        total = 12 * 40 + 4 * 50 + 1 + 16 + 17 + 500
        assert sorted(s for s, _ in acked) == list(range(1, total + 1))
        for seq, item in acked[::37]:
            assert log.entry(seq)["item"] == item
        assert log.stats["batches"] < 12 * 40 + 4  # concurrent appends shared commits
        log.checkpoint()
        rep = log.verify()
        assert rep.ok and rep.entries == total, rep
        monkeypatch.setattr(audit_log, "PARALLEL_MIN_ROWS", 1)
        assert log.verify(workers=2) == rep  # split over two processes, same report
        log.close()
        engine.dispose()
