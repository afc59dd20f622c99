"""The single authorization decision point: :func:`decide` (and :class:`PolicyEngine`).

Every API route and command asks ``decide(actor, action, resource, context)`` and gets a
:class:`Decision` with the rules that decided. The decision itself is Cedar's (cedarpy),
evaluated over policies generated from the policy files (:mod:`shotwatch.policy.cedar`);
this module only builds Cedar's entities and maps its reasons back to rule ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import cedarpy

from shotwatch.policy.actions import Action, require_registered
from shotwatch.policy.cedar import CedarRule, compile_policies
from shotwatch.policy.schema import PolicyFile, load_policies


@dataclass(frozen=True)
class Actor:
    """Who asks: identity attributes as they stand at the moment of the request."""

    user_id: str
    agency: str
    role: str
    rank: str
    command: str
    bureau: str = ""
    active: bool = True
    access: frozenset[str] = frozenset()
    trained: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Resource:
    """What is acted on; ``policy`` names the policy file that governs it."""

    resource_id: str
    policy: str
    kind: str
    command: str = ""
    created_at_s: float | None = None
    flags: frozenset[str] = frozenset()
    subject_category: str = ""
    attrs: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Why and from where: purpose and reference (the articulable need), the session's
    network situation, the workstation, and the time of the request (from the clock)."""

    now_s: float
    purpose: str = ""
    reference: str = ""
    remote: bool = False
    second_factor: bool = False
    workstation: str = ""
    disclosure_basis: str = ""
    privacy_officer_approval: bool = False


@dataclass(frozen=True)
class Decision:
    allow: bool
    rules: tuple[str, ...]
    reason: str
    action: str
    policy: str


class PolicyEngine:
    """Compiled Cedar policies for a set of policy files."""

    def __init__(self, policies: Sequence[PolicyFile]) -> None:
        self.policies = list(policies)
        self._by_id = {p.policy.id: p for p in self.policies}
        self.cedar_text, self.rules = compile_policies(self.policies)
        # One Cedar policy set per policy file and action: a resource is governed by exactly
        # one file, and a rule whose scope names other actions can neither fire nor fail for
        # this one, so leaving it out changes no decision and keeps evaluation short.
        self._sets: dict[tuple[str, str], tuple[cedarpy.PolicySet, dict[str, CedarRule]]] = {}
        for pol in self.policies:
            _, rules = compile_policies([pol])
            for act in Action:
                mine = [r for r in rules if r.applies_to(act.spec.value)]
                text = "\n\n".join(r.text for r in mine) + "\n"
                rule_of = {f"policy{i}": r for i, r in enumerate(mine)}
                self._sets[(pol.policy.id, act.spec.value)] = (
                    cedarpy.PolicySet.from_str(text),
                    rule_of,
                )
        # Cedar entities are parsed once per actor (the Actor value is its version: a transfer,
        # a new grant or training changes it, so a stale entry can never be used) and once per
        # actor and resource; parsing entity JSON cost more than the decision itself.
        self._actor_entities = lru_cache(maxsize=4096)(self._build_actor_entities)
        self._entities = lru_cache(maxsize=16384)(self._build_entities)
        # Denials' plain-English explanation depends only on file, action, role and errors.
        self._explain = lru_cache(maxsize=4096)(self._explain_by_id)

    def policy(self, policy_id: str) -> PolicyFile | None:
        return self._by_id.get(policy_id)

    def decide(
        self, actor: Actor, action: Action | str, resource: Resource, context: Context
    ) -> Decision:
        act = require_registered(action)
        value = act.spec.value
        pol = self._by_id.get(resource.policy)
        if pol is None:
            return Decision(False, (), f"no policy governs {resource.policy!r}", value, "")
        age_s = 0
        if resource.created_at_s is not None:
            age_s = max(0, int(context.now_s - resource.created_at_s))
        entities = self._entities(actor, _resource_key(resource))
        request = {
            "principal": {"type": "User", "id": actor.user_id},
            "action": {"type": "Action", "id": value},
            "resource": {"type": "Resource", "id": resource.resource_id},
            "context": {
                "purpose": context.purpose,
                "reference": context.reference,
                "remote": context.remote,
                "second_factor": context.second_factor,
                "workstation": context.workstation,
                "age_s": age_s,
                "disclosure_basis": context.disclosure_basis,
                "privacy_officer_approval": context.privacy_officer_approval,
            },
        }
        policy_set, rule_of = self._sets[(pol.policy.id, value)]
        result = cedarpy.is_authorized(request, policy_set, entities)
        # Cedar reports the satisfied policies in no fixed order: list them in the policy
        # file's order, so the same request always records the same rules.
        reasons = sorted((r for r in result.diagnostics.reasons if r in rule_of), key=_policy_index)
        fired = [rule_of[r] for r in reasons]
        errors = list(result.diagnostics.errors)
        ids = tuple(r.rule_id for r in fired)
        if result.allowed:
            return Decision(True, ids, "permitted by " + ", ".join(ids), value, pol.policy.id)
        forbids = [r for r in fired if r.effect == "forbid"]
        if forbids:
            reason = "forbidden by " + "; ".join(f"{r.rule_id}" for r in forbids)
            return Decision(False, tuple(r.rule_id for r in forbids), reason, value, pol.policy.id)
        return Decision(
            False,
            (),
            self._explain(pol.policy.id, act, actor.role, tuple(errors)),
            value,
            pol.policy.id,
        )

    @staticmethod
    def _build_actor_entities(actor: Actor) -> cedarpy.Entities:
        return cedarpy.Entities.from_json_str(json.dumps([user_entity(actor)]))

    def _build_entities(self, actor: Actor, resource_key: _ResourceKey) -> cedarpy.Entities:
        delta = json.dumps([resource_entity(resource_key)])
        return self._actor_entities(actor).with_added_json_str(delta)

    def _explain_by_id(
        self, policy_id: str, action: Action, role: str, errors: tuple[str, ...]
    ) -> str:
        return self._explain_no_permit(self._by_id[policy_id], action, role, list(errors))

    def _explain_no_permit(
        self, pol: PolicyFile, action: Action, role: str, errors: list[str]
    ) -> str:
        candidates = [p for p in pol.permits_for(action) if role in p.roles]
        if not candidates:
            return f"no rule of {pol.policy.id} grants {action.spec.value!r} to role {role!r}"
        names = ", ".join(f"{p.id} (requires {requirements_text(pol, p)})" for p in candidates)
        extra = f"; engine errors: {errors}" if errors else ""
        return f"conditions not met for {names}{extra}"


def _policy_index(cedar_id: str) -> int:
    """``policy12`` -> 12: Cedar numbers policies in the order of the policy text."""
    return int(cedar_id.removeprefix("policy"))


_ResourceKey = tuple[str, str, str, str, frozenset[str], str, tuple[tuple[str, bool], ...]]


def _resource_key(resource: Resource) -> _ResourceKey:
    """Everything of a resource that goes into its Cedar entity, hashable."""
    return (
        resource.resource_id,
        resource.policy,
        resource.kind,
        resource.command,
        resource.flags,
        resource.subject_category,
        tuple(sorted((k, bool(v)) for k, v in resource.attrs.items())),
    )


def user_entity(actor: Actor) -> dict[str, object]:
    """The Cedar entity of the principal (shapes in :mod:`shotwatch.policy.cedar`)."""
    return {
        "uid": {"type": "User", "id": actor.user_id},
        "attrs": {
            "agency": actor.agency,
            "role": actor.role,
            "rank": actor.rank,
            "command": actor.command,
            "bureau": actor.bureau,
            "active": actor.active,
            "access": sorted(actor.access),
            "trained": sorted(actor.trained),
        },
        "parents": [],
    }


def resource_entity(key: _ResourceKey) -> dict[str, object]:
    """The Cedar entity of the resource; rule-named boolean attributes never shadow the
    fixed ones."""
    resource_id, policy, kind, command, flags, subject_category, attrs = key
    res_attrs: dict[str, object] = {
        "policy": policy,
        "kind": kind,
        "command": command,
        "flags": sorted(flags),
        "subject_category": subject_category,
    }
    for k, v in attrs:
        if k not in res_attrs:
            res_attrs[k] = v
    return {"uid": {"type": "Resource", "id": resource_id}, "attrs": res_attrs, "parents": []}


def requirements_text(pol: PolicyFile, p: object) -> str:
    """Plain-English conditions of a permit rule (used in denials and the rendered policy)."""
    from shotwatch.policy.schema import Permit

    assert isinstance(p, Permit)
    parts = [f"role {' or '.join(p.roles)}"]
    if p.min_rank:
        parts.append(f"rank {p.min_rank} or above")
    if p.bureaus:
        parts.append(f"bureau {' or '.join(p.bureaus)}")
    if p.resource_kinds:
        parts.append(f"data of kind {', '.join(p.resource_kinds)}")
    if p.own_command:
        parts.append("the user's own command")
    if p.requires_access_grant:
        parts.append("a current access grant for this technology (removed on transfer)")
    if p.requires_training:
        parts.append("acknowledged training")
    if p.articulable_need:
        purposes = p.purposes or pol.purposes
        parts.append(f"a purpose ({', '.join(purposes)}) and a case or incident reference")
    if p.workstation_allow_list:
        parts.append(f"one of the workstations {', '.join(pol.workstations)}")
    if p.max_age_s is not None:
        parts.append(f"data no older than {p.max_age_s} s ({p.max_age_s / 86400:g} days)")
    for k, v in sorted(p.resource_attrs.items()):
        parts.append(f"{k} = {str(v).lower()}")
    return "; ".join(parts)


@lru_cache(maxsize=1)
def default_engine() -> PolicyEngine:
    """The engine over the packaged policy files (validated on first use)."""
    return PolicyEngine(load_policies())


def decide(
    actor: Actor,
    action: Action | str,
    resource: Resource,
    context: Context,
    *,
    engine: PolicyEngine | None = None,
) -> Decision:
    """Allow or deny ``action`` by ``actor`` on ``resource``, with the deciding rules."""
    return (engine or default_engine()).decide(actor, action, resource, context)


__all__ = [
    "Actor",
    "CedarRule",
    "Context",
    "Decision",
    "PolicyEngine",
    "Resource",
    "decide",
    "default_engine",
]
