"""Review commands with outcomes, versions, queue order and clocks; confirm -> dispatch flow in
both deployment modes."""

from __future__ import annotations

import asyncio
import itertools
import math
from pathlib import Path

import pytest

from shotwatch.core.clock import ReplayClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import (
    EvaluationMode,
    EvaluationStatus,
    Incident,
    Movement,
    Provenance,
)
from shotwatch.dispatch.boundaries import BoundarySet, load_boundaries
from shotwatch.dispatch.channels import FakeChannel
from shotwatch.dispatch.flows import DispatchFlow
from shotwatch.dispatch.models import CallStatus
from shotwatch.dispatch.modes import NYPD, Role, can_view_call, sf_dem
from shotwatch.incidents.review import (
    AddNote,
    ConfirmGunfire,
    Dismiss,
    DismissKind,
    Escalate,
    Relocate,
    ReviewBook,
    ReviewState,
    SetAutomatic,
    SetMovement,
    SetRounds,
    SetShooters,
    make_command,
)

T0 = 1_790_000_000.0


def inc(iid: str, *, rounds: int = 1, p: float = 0.5, lat: float = 40.0, lon: float = -74.0,
        shooters: int = 1) -> Incident:  # fmt: skip
    return Incident(
        incident_id=iid,
        shot_ids=tuple(f"{iid}-s{i}" for i in range(rounds)),
        start_s=T0,
        end_s=T0 + rounds,
        x_m=10.0,
        y_m=20.0,
        rounds=rounds,
        shooters=shooters,
        shooter_positions=((10.0, 20.0),),
        automatic=False,
        cadence_rps=None,
        movement=None,
        lat_deg=lat,
        lon_deg=lon,
        gunfire_probability=p,
        provenance=Provenance.automatic("incident-builder", "1.0", T0),
    )


def test_every_command_needs_a_reason_and_returns_an_outcome() -> None:
    book = ReviewBook()
    book.add_machine(inc("a"), T0)
    out = book.submit("a", ConfirmGunfire("ana", ""), T0 + 1)
    assert not out.ok and "reason" in out.reason and out.to_dict()["outcome"] == "Failed"
    out = book.submit("a", ConfirmGunfire("", "clear muzzle blasts"), T0 + 1)
    assert not out.ok and "author" in out.reason
    out = book.submit("zzz", ConfirmGunfire("ana", "clear muzzle blasts"), T0 + 1)
    assert not out.ok and "no incident" in out.reason
    # failed commands are journalled too, and made no version
    assert len(book.journal) == 3 and len(book.history("a")) == 1
    out = book.submit("a", ConfirmGunfire("ana", "clear muzzle blasts"), T0 + 2)
    assert out.ok and out.version == 2 and out.to_dict()["outcome"] == "OK"


def test_machine_result_is_never_overwritten_and_versions_chain() -> None:
    frame = LocalFrame(40.0, -74.0)
    book = ReviewBook(frame)
    machine = inc("a", rounds=3, p=0.9)
    book.add_machine(machine, T0)
    steps = [
        SetRounds("ana", "counted 4 on sensor 2", rounds=4),
        SetShooters("ana", "two distinct weapons", shooters=2),
        SetAutomatic("ana", "cadence 12/s", automatic=True),
        SetMovement("ana", "positions drift east", moving=True, heading_deg=450.0),
        Relocate("ana", "closer to the alley", lat_deg=40.0005, lon_deg=-74.0005),
        AddNote("ana", "context", text="near the park"),
        ConfirmGunfire("ana", "clear gunfire"),
    ]
    for i, cmd in enumerate(steps):
        out = book.submit("a", cmd, T0 + 10 + i)
        assert out.ok, out
    hist = book.history("a")
    assert [v.number for v in hist] == list(range(1, 9))
    assert hist[0].incident is machine  # untouched
    assert hist[0].incident.provenance.mode is EvaluationMode.AUTOMATIC  # type: ignore[union-attr]
    for prev, v in itertools.pairwise(hist):
        prov = v.incident.provenance
        assert prov is not None and prov.mode is EvaluationMode.MANUAL
        assert prov.author == "ana" and prov.supersedes == prev.version_id
    assert hist[1].version_id == "a@v2" and hist[0].version_id == "a"
    cur = hist[-1].incident
    assert (cur.rounds, cur.shooters, cur.automatic) == (4, 2, True)
    assert cur.movement is not None and cur.movement.heading_deg == 90.0
    assert cur.lat_deg == 40.0005
    x, y, _ = frame.to_local(40.0005, -74.0005)
    assert (cur.x_m, cur.y_m) == (pytest.approx(x), pytest.approx(y))
    assert cur.extra["notes"] == [{"author": "ana", "text": "near the park"}]
    assert cur.status is EvaluationStatus.CONFIRMED and cur.label == "gunfire"
    # the machine's numbers are still what the machine said
    assert (machine.rounds, machine.shooters, machine.automatic) == (3, 1, False)


def test_bad_parameters_fail_with_the_field_named() -> None:
    book = ReviewBook()
    book.add_machine(inc("a"), T0)
    cases = [
        (SetRounds("ana", "why not", rounds=0), "rounds"),
        (SetShooters("ana", "why not", shooters=99), "shooters"),
        (Relocate("ana", "why not", lat_deg=95.0, lon_deg=0.0), "latitude"),
        (SetMovement("ana", "why not", moving=True), "heading_deg"),
        (AddNote("ana", "why not", text="  "), "text"),
    ]
    for cmd, fieldname in cases:
        out = book.submit("a", cmd, T0)
        assert not out.ok and fieldname in out.reason, (cmd, out)
    assert len(book.history("a")) == 1


def test_dismiss_and_state_rules() -> None:
    book = ReviewBook()
    book.add_machine(inc("a"), T0)
    book.add_machine(inc("b"), T0)
    out = book.submit("a", Dismiss("ana", "whistle and crackle", kind=DismissKind.FIREWORKS), T0)
    assert out.ok and book.records["a"].state is ReviewState.DISMISSED
    assert book.history("a")[-1].incident.label == "fireworks"
    assert book.history("a")[-1].incident.status is EvaluationStatus.REJECTED
    assert not book.submit("a", SetRounds("ana", "more", rounds=3), T0).ok
    assert book.submit("a", AddNote("ana", "more", text="neighbour confirmed"), T0).ok
    assert book.submit("b", ConfirmGunfire("ana", "gunfire"), T0).ok
    out = book.submit("b", Dismiss("bob", "second opinion"), T0)
    assert not out.ok and "escalate" in out.reason
    assert not book.submit("b", ConfirmGunfire("ana", "again"), T0).ok


def test_queue_priority_and_review_clocks() -> None:
    book = ReviewBook()
    book.add_machine(inc("single-hi", rounds=1, p=0.99), T0)
    book.add_machine(inc("multi-lo", rounds=4, p=0.40), T0 + 1)
    book.add_machine(inc("multi-hi", rounds=3, p=0.95), T0 + 2)
    book.add_machine(inc("single-lo", rounds=1, p=0.10), T0 + 3)
    book.add_machine(inc("two-shooters", rounds=1, shooters=2, p=0.3), T0 + 4)
    order = [r.current.incident.incident_id for r in book.queue()]
    assert order == ["multi-hi", "multi-lo", "two-shooters", "single-hi", "single-lo"]
    assert book.submit("single-lo", Escalate("ana", "need a second ear", to="lead"), T0 + 5).ok
    assert book.queue()[0].current.incident.incident_id == "single-lo"
    rec = book.records["multi-hi"]
    assert rec.clock_s(T0 + 12) == pytest.approx(10.0)
    book.mark_opened("multi-hi", "ana", T0 + 5)
    book.mark_opened("multi-hi", "bob", T0 + 9)  # only the first open counts
    assert rec.time_to_open_s == pytest.approx(3.0) and rec.opened_by == "ana"
    book.submit("multi-hi", ConfirmGunfire("ana", "gunfire"), T0 + 20)
    assert rec.time_to_decision_s == pytest.approx(18.0)
    assert rec.clock_s(T0 + 500) == pytest.approx(18.0)  # frozen at the decision
    assert "multi-hi" not in [r.current.incident.incident_id for r in book.queue()]


def test_machine_update_appends_an_automatic_version() -> None:
    book = ReviewBook()
    book.add_machine(inc("a", rounds=1), T0)
    book.submit("a", AddNote("ana", "listening", text="hmm"), T0 + 1)
    v = book.add_machine(inc("a", rounds=2), T0 + 2)
    assert v.number == 3 and v.incident.provenance is not None
    assert v.incident.provenance.supersedes == "a@v2"
    assert v.incident.provenance.mode is EvaluationMode.AUTOMATIC


def test_make_command_names_bad_input() -> None:
    cmd = make_command("set_rounds", "ana", "counted", {"rounds": 5})
    assert isinstance(cmd, SetRounds) and cmd.rounds == 5
    with pytest.raises(ValueError, match="unknown"):
        make_command("delete", "ana", "x", {})
    with pytest.raises(ValueError, match="colour"):
        make_command("set_rounds", "ana", "x", {"colour": 1})


# --- flows -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nypd(boundaries_dir: Path) -> BoundarySet:
    return load_boundaries(boundaries_dir / "nypd-precincts.geojson")


@pytest.fixture(scope="module")
def sf(boundaries_dir: Path) -> BoundarySet:
    return load_boundaries(boundaries_dir / "sfpd-districts.geojson")


def test_nypd_confirm_creates_cad_job_routed_to_precinct(nypd: BoundarySet) -> None:
    p = nypd.boundary("44").geometry.representative_point()
    clock = ReplayClock(T0)
    chans = [FakeChannel("webhook"), FakeChannel("cap", fail_with="HTTP 503")]
    flow = DispatchFlow(ReviewBook(), nypd, NYPD, chans, clock)
    q = flow.hub.subscribe()
    flow.ingest(inc("x", rounds=3, p=0.9, lat=p.y, lon=p.x))
    clock.advance_by(12.0)

    async def go() -> None:
        out, call = await flow.review("x", ConfirmGunfire("ana", "three clear shots"))
        assert out.ok and call is not None
        assert call.unit_id == "44" and call.status is CallStatus.IN_CAD and call.cad_job_id
        assert call.rounds == 3 and call.confirmed_by == "ana" and call.incident_version == 2
        await flow.drain()
        # a later correction re-sends the call as a new version with the same CAD job
        out2, call2 = await flow.review("x", SetRounds("ana", "recount", rounds=4))
        assert out2.ok and call2 is not None
        assert call2.incident_version == 3 and call2.rounds == 4
        assert call2.cad_job_id == call.cad_job_id and call2.call_id == call.call_id
        await flow.drain()
        out3, call3 = await flow.review("x", AddNote("ana", "ctx", text="n"))
        assert out3.ok and call3 is None

    asyncio.run(go())
    assert [c.incident_version for c in chans[0].sent] == [2, 3]
    assert {(d.channel, d.ok) for d in flow.deliveries} == {("webhook", True), ("cap", False)}
    topics = []
    while not q.empty():
        topics.append(q.get_nowait()["topic"])
    assert topics[0] == "queue" and topics.count("board") >= 4
    assert [c.unit_id for c in flow.visible_calls(Role.DISPATCHER, None)] == ["44"]


def test_sf_dem_supervisor_enters_into_cad_then_dispatchers_see_it(sf: BoundarySet) -> None:
    p = sf.boundary("MISSION").geometry.representative_point()
    clock = ReplayClock(T0)
    mode = sf_dem({"SUP-1", "SUP-2", "SUP-3", "SUP-4"})
    flow = DispatchFlow(ReviewBook(), sf, mode, [FakeChannel()], clock)
    flow.ingest(inc("m", rounds=2, p=0.8, lat=p.y, lon=p.x))

    async def go() -> None:
        out, call = await flow.review("m", ConfirmGunfire("irc-analyst", "gunfire"))
        assert out.ok and call is not None and call.status is CallStatus.PENDING_CAD
        await flow.drain()

    asyncio.run(go())
    assert flow.visible_calls(Role.DISPATCHER, "DISP-9") == []
    assert flow.visible_calls(Role.SUPERVISOR, "DISP-9") == []  # not a listed workstation
    assert len(flow.visible_calls(Role.SUPERVISOR, "SUP-2")) == 1
    bad = flow.enter_into_cad("m", author="d", role=Role.DISPATCHER, workstation="SUP-1")
    assert not bad.ok and "supervisors" in bad.reason
    bad = flow.enter_into_cad("m", author="s", role=Role.SUPERVISOR, workstation="HOME-PC")
    assert not bad.ok and "workstation" in bad.reason
    ok = flow.enter_into_cad("m", author="s", role=Role.SUPERVISOR, workstation="SUP-1")
    assert ok.ok and "CAD job" in ok.reason
    assert not flow.enter_into_cad("m", author="s", role=Role.SUPERVISOR, workstation="SUP-1").ok
    seen = flow.visible_calls(Role.DISPATCHER, "DISP-9")
    assert len(seen) == 1 and seen[0].status is CallStatus.IN_CAD and seen[0].unit_id == "MISSION"
    clock.advance_by(7 * 86400 + 1)
    assert flow.visible_calls(Role.DISPATCHER, "DISP-9") == []
    assert flow.visible_calls(Role.SUPERVISOR, "SUP-1") == []
    allowed, why = can_view_call(mode, Role.SUPERVISOR, "SUP-1", seen[0], clock.now())
    assert not allowed and "7-day" in why


def test_nypd_mode_has_no_manual_cad_entry(nypd: BoundarySet) -> None:
    p = nypd.boundary("1").geometry.representative_point()
    flow = DispatchFlow(ReviewBook(), nypd, NYPD, [], ReplayClock(T0))
    flow.ingest(inc("k", lat=p.y, lon=p.x))
    asyncio.run(flow.review("k", ConfirmGunfire("ana", "gunfire")))
    out = flow.enter_into_cad("k", author="s", role=Role.SUPERVISOR, workstation=None)
    assert not out.ok and "automatically" in out.reason


def test_moving_shooter_reaches_the_call(nypd: BoundarySet) -> None:
    p = nypd.boundary("75").geometry.representative_point()
    machine = inc("mv", rounds=5, lat=p.y, lon=p.x)
    from dataclasses import replace

    machine = replace(machine, movement=Movement(3.0, 180.0, 12.0), automatic=True)
    flow = DispatchFlow(ReviewBook(), nypd, NYPD, [], ReplayClock(T0))
    flow.ingest(machine)
    _, call = asyncio.run(flow.review("mv", ConfirmGunfire("ana", "auto fire moving south")))
    assert call is not None and call.moving and call.heading_deg == 180.0 and call.automatic
    assert "moving S" in call.summary() and "AUTOMATIC" in call.summary()
    assert not math.isnan(call.confidence)


def test_a_withdrawn_forming_incident_leaves_the_queue_but_not_the_history() -> None:
    """The machine may take back an incident it showed while its shots were forming; it
    leaves the queue (its versions stay), comes back if its shots do, and a reviewer's
    decision is never undone by it."""
    from dataclasses import replace as _replace

    from shotwatch.incidents.review import ReviewBook, ReviewState

    book = ReviewBook()
    forming = inc("inc-forming")
    book.add_machine(_replace(forming, extra={"open": True, "tentative": True}), 1.0)
    assert [r.current.incident.incident_id for r in book.queue()] == ["inc-forming"]
    book.add_machine(_replace(forming, extra={"open": True, "withdrawn": True}), 2.0)
    assert book.records["inc-forming"].state is ReviewState.WITHDRAWN
    assert book.queue() == [] and len(book.history("inc-forming")) == 2
    book.add_machine(_replace(forming, extra={"open": True}), 3.0)
    assert book.records["inc-forming"].state is ReviewState.OPEN
    out = book.submit("inc-forming", ConfirmGunfire("ana", "heard it clearly"), 4.0)
    assert out.ok
    book.add_machine(_replace(forming, extra={"open": True, "withdrawn": True}), 5.0)
    assert book.records["inc-forming"].state is ReviewState.CONFIRMED
