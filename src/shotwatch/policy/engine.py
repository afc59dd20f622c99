"""The single authorization decision point: :func:`decide` (and :class:`PolicyEngine`).

Every API route and command asks ``decide(actor, action, resource, context)`` and gets a
:class:`Decision` with the rules that decided. The decision itself is Cedar's (cedarpy),
evaluated over policies generated from the policy files (:mod:`shotwatch.policy.cedar`);
this module only builds Cedar's entities and maps its reasons back to rule ids.
"""

from __future__ import annotations

import json
from bisect import bisect_left
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
        # No compiled rule names a principal or a resource, and a resource's age enters only
        # as `context.age_s <= limit` of its file's permits: a decision is a function of the
        # attributes in `_decision_key`, and Cedar is deterministic, so one evaluation serves
        # every request with the same key (a live event for 50 consoles of 20 commands asked
        # Cedar 20 times per incident version; ADR 0111).
        self._age_limits = {
            pol.policy.id: tuple(sorted({int(p.max_age_s) for p in pol.permit if p.max_age_s}))
            for pol in self.policies
        }
        self._decided: dict[tuple[object, ...], Decision] = {}

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
        key = _decision_key(
            actor, value, resource, context, bisect_left(self._age_limits[pol.policy.id], age_s)
        )
        known = self._decided.get(key)
        if known is not None:
            return known
        decision, exact = self._evaluate(actor, act, pol, resource, context, age_s=age_s)
        if exact:  # an engine error's text may name the entities: such a decision is not kept
            if len(self._decided) > 65_536:
                self._decided.clear()
            self._decided[key] = decision
        return decision

    def _evaluate(
        self,
        actor: Actor,
        act: Action,
        pol: PolicyFile,
        resource: Resource,
        context: Context,
        *,
        age_s: int,
    ) -> tuple[Decision, bool]:
        """Cedar's decision, and whether it came without engine errors."""
        value = act.spec.value
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
        exact = not errors
        if result.allowed:
            reason = "permitted by " + ", ".join(ids)
            return Decision(True, ids, reason, value, pol.policy.id), exact
        forbids = [r for r in fired if r.effect == "forbid"]
        if forbids:
            reason = "forbidden by " + "; ".join(f"{r.rule_id}" for r in forbids)
            rule_ids = tuple(r.rule_id for r in forbids)
            return Decision(False, rule_ids, reason, value, pol.policy.id), exact
        reason = self._explain(pol.policy.id, act, actor.role, tuple(errors))
        return Decision(False, (), reason, value, pol.policy.id), exact

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


def _decision_key(
    actor: Actor, action: str, resource: Resource, context: Context, age_class: int
) -> tuple[object, ...]:
    """Everything a decision depends on: the attributes the compiled rules read, the
    reference only as present or not (the rules ask `!= ""`), and the age as the number of
    the file's age limits it exceeds; no identifier of principal or resource."""
    return (
        actor.agency,
        actor.role,
        actor.rank,
        actor.command,
        actor.bureau,
        actor.active,
        actor.access,
        actor.trained,
        action,
        _resource_key(resource)[1:],  # the resource's entity without its id
        age_class,
        context.purpose,
        context.reference != "",
        context.remote,
        context.second_factor,
        context.workstation,
        context.disclosure_basis,
        context.privacy_officer_approval,
    )


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
