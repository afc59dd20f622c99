"""The single authorization decision point: :func:`decide` (and :class:`PolicyEngine`).

Every API route and command asks ``decide(actor, action, resource, context)`` and gets a
:class:`Decision` with the rules that decided. The decision itself is Cedar's (cedarpy),
evaluated over policies generated from the policy files (:mod:`shotwatch.policy.cedar`);
this module only builds Cedar's entities and maps its reasons back to rule ids.
"""

from __future__ import annotations

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
        # One Cedar policy set per policy file: a resource is governed by exactly one file,
        # and evaluating only its rules keeps a decision well under a millisecond.
        self._sets: dict[str, tuple[cedarpy.PolicySet, dict[str, CedarRule]]] = {}
        for pol in self.policies:
            text, rules = compile_policies([pol])
            rule_of = {f"policy{i}": r for i, r in enumerate(rules)}
            self._sets[pol.policy.id] = (cedarpy.PolicySet.from_str(text), rule_of)

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
        res_attrs: dict[str, object] = {
            "policy": resource.policy,
            "kind": resource.kind,
            "command": resource.command,
            "flags": sorted(resource.flags),
            "subject_category": resource.subject_category,
        }
        for k, v in resource.attrs.items():
            if k not in res_attrs:
                res_attrs[k] = bool(v)
        entities = [
            {
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
            },
            {
                "uid": {"type": "Resource", "id": resource.resource_id},
                "attrs": res_attrs,
                "parents": [],
            },
        ]
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
        policy_set, rule_of = self._sets[pol.policy.id]
        result = cedarpy.is_authorized(request, policy_set, entities)
        fired = [rule_of[r] for r in result.diagnostics.reasons if r in rule_of]
        errors = list(result.diagnostics.errors)
        ids = tuple(r.rule_id for r in fired)
        if result.allowed:
            return Decision(True, ids, "permitted by " + ", ".join(ids), value, pol.policy.id)
        forbids = [r for r in fired if r.effect == "forbid"]
        if forbids:
            reason = "forbidden by " + "; ".join(f"{r.rule_id}" for r in forbids)
            return Decision(False, tuple(r.rule_id for r in forbids), reason, value, pol.policy.id)
        return Decision(
            False, (), self._explain_no_permit(pol, act, actor, errors), value, pol.policy.id
        )

    def _explain_no_permit(
        self, pol: PolicyFile, action: Action, actor: Actor, errors: list[str]
    ) -> str:
        candidates = [p for p in pol.permits_for(action) if actor.role in p.roles]
        if not candidates:
            return f"no rule of {pol.policy.id} grants {action.spec.value!r} to role {actor.role!r}"
        names = ", ".join(f"{p.id} (requires {requirements_text(pol, p)})" for p in candidates)
        extra = f"; engine errors: {errors}" if errors else ""
        return f"conditions not met for {names}{extra}"


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
