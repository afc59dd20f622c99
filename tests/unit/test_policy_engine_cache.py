"""Cached Cedar entities never outlive the identity or resource they were built from."""

from __future__ import annotations

from dataclasses import replace

from bench.policy_audit import requests_mix

from shotwatch.policy.engine import PolicyEngine, default_engine


def _uncached(engine: PolicyEngine) -> PolicyEngine:
    engine._entities.cache_clear()
    engine._actor_entities.cache_clear()
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
