"""Cached Cedar entities and decisions never outlive the identity or resource they were built
from, and a decision shared between requests is the one Cedar gives each of them."""

from __future__ import annotations

from dataclasses import replace

import cedarpy
import pytest
from bench.policy_audit import requests_mix

from shotwatch.policy.engine import Actor, Context, PolicyEngine, Resource, default_engine


def _uncached(engine: PolicyEngine) -> PolicyEngine:
    engine._entities.cache_clear()
    engine._actor_entities.cache_clear()
    engine._decided.clear()
    return engine


def test_same_user_changed_identity_is_decided_afresh() -> None:
    engine = default_engine()
    cold = PolicyEngine(engine.policies)
    allowed = [m for m in requests_mix() if engine.decide(*m).allow]
    assert allowed
    flipped = 0
    for actor, action, resource, context in allowed[::7]:
        assert engine.decide(actor, action, resource, context).allow  # now cached
        # Same user id: transferred (new command, grants removed), deactivated, untrained.
        for changed in (
            replace(actor, command="cmd-Z", access=frozenset()),
            replace(actor, active=False),
            replace(actor, trained=frozenset()),
        ):
            got = engine.decide(changed, action, resource, context)
            assert got == _uncached(cold).decide(changed, action, resource, context)
            flipped += not got.allow
        # And back: the original identity is allowed again.
        assert engine.decide(actor, action, resource, context).allow
    assert flipped > len(allowed[::7])


def test_same_resource_id_with_other_attributes_is_decided_afresh() -> None:
    engine = default_engine()
    cold = PolicyEngine(engine.policies)
    changed_answers = 0
    for actor, action, resource, context in requests_mix():
        if resource.policy != "nypd-digital-cameras":
            continue
        before = engine.decide(actor, action, resource, context)
        flagged = replace(resource, flags=frozenset({"political_activity"}))
        other_cmd = replace(resource, command="cmd-Q")
        for changed in (flagged, other_cmd):
            got = engine.decide(actor, action, changed, context)
            assert got == _uncached(cold).decide(actor, action, changed, context)
            changed_answers += got != before
        assert engine.decide(actor, action, resource, context) == before
    assert changed_answers > 0


def test_cached_engine_answers_like_a_fresh_engine_on_the_whole_mix() -> None:
    warm = default_engine()
    mix = requests_mix()
    for m in mix:
        warm.decide(*m)
    cold = PolicyEngine(warm.policies)
    for m in mix:
        assert warm.decide(*m) == cold.decide(*m)


def test_a_decision_is_shared_across_ids_and_is_what_cedar_says_for_each() -> None:
    """Other user and resource ids with the same attributes get the same decision from one
    Cedar evaluation, and it equals a cold evaluation of each request."""
    warm = default_engine()
    cold = PolicyEngine(warm.policies)
    mix = requests_mix()
    for m in mix:
        warm.decide(*m)
    for i, (actor, action, resource, context) in enumerate(mix[::3]):
        other_actor = replace(actor, user_id=f"someone-else-{i}")
        other_res = replace(resource, resource_id=f"other-{i}")
        got = warm.decide(other_actor, action, other_res, context)
        assert got == _uncached(cold).decide(other_actor, action, other_res, context)


def test_one_cedar_evaluation_serves_many_incidents_with_the_same_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = default_engine()
    calls = []
    real = cedarpy.is_authorized
    monkeypatch.setattr(cedarpy, "is_authorized", lambda *a: calls.append(1) or real(*a))
    actor = Actor("u1", "NYPD", "reviewer", "police_officer", "075", trained=frozenset())
    ctx = Context(now_s=1_000_000.0, purpose="emergency_response", reference="live")
    answers = {
        engine.decide(
            actor,
            "incident.view",
            Resource(f"inc-{n}", "nypd-shotspotter", "incident", "075", created_at_s=999_990.0),
            ctx,
        )
        for n in range(200)
    }
    assert len(answers) == 1
    assert len(calls) == 1


@pytest.mark.parametrize("age_s", [0, 604_799, 604_800, 604_801, 10**7])
def test_age_limits_are_decided_exactly_at_their_edges(age_s: int) -> None:
    """SF DEM sees an activation for a week: a decision cached for a young incident is never
    given to one past the limit, nor the other way round."""
    warm = default_engine()
    cold = PolicyEngine(warm.policies)
    pid = "sf-dem-gunshot-detection"
    sup = Actor(
        "sup-1",
        "SF-DEM",
        "supervisor",
        "public_safety_supervisor_8239",
        "dem",
        access=frozenset({pid}),
        trained=frozenset({pid}),
    )
    now = 2_000_000.0
    ctx = Context(now_s=now, purpose="dispatch", reference="cad-1", workstation="DEM-SUP-WS-1")
    for warm_age in (0, 604_800, 604_801):  # prime the cache on every side of the limit
        young = Resource("inc-w", pid, "incident", created_at_s=now - warm_age)
        warm.decide(sup, "incident.view", young, ctx)
    res = Resource("inc-x", pid, "incident", created_at_s=now - age_s)
    got = warm.decide(sup, "incident.view", res, ctx)
    assert got == _uncached(cold).decide(sup, "incident.view", res, ctx)
    assert got.allow == (age_s <= 604_800)
