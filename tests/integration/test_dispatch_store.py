"""Review and dispatch state survives a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import math
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from shotwatch.core.clock import ReplayClock
from shotwatch.core.model import Incident, Movement, Provenance
from shotwatch.dispatch.boundaries import BoundarySet, load_boundaries
from shotwatch.dispatch.channels import FakeChannel
from shotwatch.dispatch.flows import DispatchFlow
from shotwatch.dispatch.modes import NYPD
from shotwatch.dispatch.service import (
    BatchedSqlFlowStore,
    SqlFlowStore,
    incident_from_json,
    incident_to_json,
    resend,
    restore_flow,
)
from shotwatch.incidents.review import (
    AddNote,
    ConfirmGunfire,
    Escalate,
    ReviewBook,
    SetRounds,
)
from shotwatch.storage.db import make_engine, migrate, session_factory

T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def nypd(boundaries_dir: Path) -> BoundarySet:
    return load_boundaries(boundaries_dir / "nypd-precincts.geojson")


def _inc(iid: str, lat: float, lon: float) -> Incident:
    return Incident(
        iid,
        ("s1", "s2"),
        T0,
        T0 + 2,
        1.5,
        -2.5,
        2,
        1,
        ((1.5, -2.5),),
        False,
        math.nan,
        Movement(2.0, math.nan, 3.0),
        lat,
        lon,
        0.8,
        provenance=Provenance.automatic("builder", "1", T0),
        extra={"uncertainty_m": 14.0},
    )


def test_incident_json_roundtrip() -> None:
    inc = _inc("a", 40.7, -73.9)
    back = incident_from_json(incident_to_json(inc))
    assert back.incident_id == inc.incident_id and back.shot_ids == inc.shot_ids
    assert back.movement is not None and math.isnan(back.movement.heading_deg)
    assert back.provenance == inc.provenance and back.extra == inc.extra


@pytest.mark.parametrize("store_kind", ["each", "batched"])
def test_restart_restores_queue_history_journal_and_resends(
    db_url: str, nypd: BoundarySet, store_kind: str
) -> None:
    schema = None
    if db_url.startswith("postgresql"):
        with make_engine(db_url).begin() as c:  # a clean schema per run
            schema = f"t_{uuid.uuid4().hex[:8]}"
            c.execute(text(f"CREATE SCHEMA {schema}"))
        base_url, db_url = db_url, f"{db_url}?options=-csearch_path%3D{schema}"
    try:
        _restart_scenario(db_url, nypd, store_kind)
    finally:
        if schema is not None:
            with make_engine(base_url).begin() as c:
                c.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def _restart_scenario(db_url: str, nypd: BoundarySet, store_kind: str = "each") -> None:
    migrate(db_url)
    sessions = session_factory(make_engine(db_url))
    p = nypd.boundary("75").geometry.representative_point()
    clock = ReplayClock(T0)
    ok, down = FakeChannel("webhook"), FakeChannel("cap", fail_with="HTTP 503")
    store = SqlFlowStore(sessions) if store_kind == "each" else BatchedSqlFlowStore(sessions)
    flow = DispatchFlow(ReviewBook(), nypd, NYPD, [ok, down], clock, store=store)
    flow.ingest(_inc("a", p.y, p.x))
    flow.ingest(_inc("b", p.y, p.x))

    async def work() -> None:
        clock.advance_by(5)
        await flow.review("a", SetRounds("ana", "counted 3", rounds=3))
        await flow.review("a", ConfirmGunfire("ana", "gunfire"))
        await flow.review("a", ConfirmGunfire("ana", "again"))  # Failed, journalled
        await flow.review("b", Escalate("ana", "unsure", to="lead"))
        await flow.review("b", AddNote("ana", "ctx", text="by the river"))
        await flow.drain()

    asyncio.run(work())
    if isinstance(store, BatchedSqlFlowStore):
        store.close()  # shutdown commits what is queued
        assert store.errors == [] and store.changes > 0

    # a new process: empty memory, same database
    ok2, down2 = FakeChannel("webhook"), FakeChannel("cap")
    flow2 = DispatchFlow(
        ReviewBook(), nypd, NYPD, [ok2, down2], clock, store=SqlFlowStore(sessions)
    )
    pending = restore_flow(flow2, sessions)
    a, b = flow2.book.records["a"], flow2.book.records["b"]
    assert [v.number for v in a.versions] == [1, 2, 3]
    assert a.current.incident.rounds == 3 and a.machine.incident.rounds == 2
    assert a.current.incident.provenance is not None
    assert a.current.incident.provenance.supersedes == "a@v2"
    assert a.time_to_decision_s == pytest.approx(5.0)
    assert [r.current.incident.incident_id for r in flow2.book.queue()] == ["b"]
    assert (
        b.escalated_to == "lead" and b.current.incident.extra["notes"][0]["text"] == "by the river"
    )
    assert [(j.command, j.outcome.ok) for j in flow2.book.journal_for("a")] == [
        ("set_rounds", True),
        ("confirm", True),
        ("confirm", False),
    ]
    assert flow2.calls["a"].unit_id == "75" and flow2.calls["a"].rounds == 3
    # only the channel that failed is re-sent, with the same idempotency key
    assert [(c.incident_id, names) for c, names in pending] == [("a", ["cap"])]
    asyncio.run(resend(flow2, pending))
    assert ok2.sent == [] and [c.idempotency_key for c in down2.sent] == [
        flow2.calls["a"].idempotency_key
    ]
    flow3 = DispatchFlow(ReviewBook(), nypd, NYPD, [ok2, down2], clock)
    assert restore_flow(flow3, sessions) == []  # everything delivered now


def test_batched_store_groups_commits_and_isolates_a_bad_change(tmp_path: Path) -> None:
    """Changes queued while the writer is busy go in one transaction; a change the database
    refuses (a second version 1 of the same incident) is set aside, the others are kept."""
    import threading

    from sqlalchemy import func, select

    from shotwatch.dispatch.tables import ReviewRecordRow, ReviewVersionRow
    from shotwatch.incidents.review import Version

    url = f"sqlite:///{tmp_path / 'b.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    gate = threading.Event()
    real_begin = sessions.begin

    def slow_begin():  # type: ignore[no-untyped-def]
        gate.wait(10)
        return real_begin()

    sessions.begin = slow_begin  # type: ignore[method-assign]
    store = BatchedSqlFlowStore(sessions, retries=1)
    book = ReviewBook()
    for k in range(40):
        v = book.add_machine(_inc(f"i{k}", 40.7, -73.9), T0 + k)
        store.save_version(v)
        store.save_record(book.records[f"i{k}"])
    store.save_version(Version(1, _inc("i0", 40.7, -73.9), None, "dup", "x", T0))  # refused
    book.submit("i1", Escalate("ana", "unsure", to="lead"), T0 + 50)
    store.save_record(book.records["i1"])  # the latest state of i1 wins within a batch
    gate.set()
    assert store.flush(10)
    store.close()
    assert store.batches <= 3 < store.changes  # the first change alone, then the rest at once
    assert len(store.errors) == 1 and "version_row" in store.errors[0]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ReviewVersionRow)) == 40
        assert s.scalar(select(func.count()).select_from(ReviewRecordRow)) == 40
        assert s.get(ReviewRecordRow, "i1").escalated_to == "lead"  # type: ignore[union-attr]


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection:sqlalchemy.exc.SAWarning")
def test_migration_matches_the_review_dispatch_tables(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from shotwatch.dispatch import tables
    from shotwatch.storage.db import Base

    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    ours = {
        t.__tablename__
        for t in (
            tables.ReviewRecordRow,
            tables.ReviewVersionRow,
            tables.ReviewJournalRow,
            tables.CallRow,
            tables.DeliveryRow,
        )
    }
    with make_engine(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diff if any(t in repr(d) for t in ours)]
    assert mine == [], f"migration and dispatch/tables.py differ: {mine}"
