"""Translate policy files into Cedar policies: one Cedar policy per permit/forbid rule.

Cedar evaluates deny-by-default with forbid overriding permit, which is exactly how the use
policies read ("only ...", "not ... in furtherance of immigration enforcement"). The generated
text is deterministic, so it can be reviewed (``shotwatch policy cedar``) and diffed.

Entity shapes (built by :mod:`shotwatch.policy.engine`):

* principal ``User``: ``agency``, ``role``, ``rank``, ``command``, ``bureau``, ``active``,
  ``access`` (set of policy ids the user holds a current access grant for), ``trained``
  (set of policy ids whose training the user acknowledged);
* resource ``Resource``: ``policy``, ``kind``, ``command``, ``flags`` (set), ``subject_category``,
  and any boolean attributes a rule names (``entered_in_cad``);
* context: ``purpose``, ``reference``, ``remote``, ``second_factor``, ``workstation``,
  ``age_s``, ``disclosure_basis``, ``privacy_officer_approval``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from shotwatch.policy.schema import Forbid, Permit, PolicyFile


def _s(value: str) -> str:
    return json.dumps(value)


def _set(values: Iterable[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def _actions(values: Iterable[str]) -> str:
    vals = list(values)
    if not vals:
        return "action"
    return "action in [" + ", ".join(f"Action::{_s(v)}" for v in vals) + "]"


@dataclass(frozen=True)
class CedarRule:
    rule_id: str
    policy_id: str
    effect: str
    text: str
    actions: tuple[str, ...] = ()  # the action values the rule's scope names; () = every action

    def applies_to(self, action: str) -> bool:
        return not self.actions or action in self.actions


def permit_conditions(pol: PolicyFile, p: Permit) -> list[str]:
    pid = pol.policy.id
    conds = [
        f"resource.policy == {_s(pid)}",
        f"principal.agency == {_s(pol.policy.agency)}",
        "principal.active",
        f"{_set(p.roles)}.contains(principal.role)",
    ]
    if p.min_rank is not None:
        allowed = pol.ranks[pol.rank_level(p.min_rank) :]
        conds.append(f"{_set(allowed)}.contains(principal.rank)")
    if p.bureaus:
        conds.append(f"{_set(p.bureaus)}.contains(principal.bureau)")
    if p.resource_kinds:
        conds.append(f"{_set(p.resource_kinds)}.contains(resource.kind)")
    if p.own_command:
        conds.append("principal.command == resource.command")
    if p.requires_access_grant:
        conds.append(f"principal.access.contains({_s(pid)})")
    if p.requires_training:
        conds.append(f"principal.trained.contains({_s(pid)})")
    if p.articulable_need:
        purposes = p.purposes or pol.purposes
        conds.append(f"{_set(purposes)}.contains(context.purpose)")
        conds.append('context.reference != ""')
    if p.workstation_allow_list:
        conds.append(f"{_set(pol.workstations)}.contains(context.workstation)")
    if p.max_age_s is not None:
        conds.append(f"context.age_s <= {int(p.max_age_s)}")
    for attr, value in sorted(p.resource_attrs.items()):
        conds.append(f"resource has {attr} && resource.{attr} == {'true' if value else 'false'}")
    return conds


def forbid_conditions(pol: PolicyFile, f: Forbid) -> list[str]:
    conds = [f"resource.policy == {_s(pol.policy.id)}"]
    if f.kind == "purpose":
        conds.append(f"{_set(f.purposes)}.contains(context.purpose)")
    elif f.kind == "purpose_not_in":
        conds.append('context.purpose != ""')
        conds.append(f"!({_set(f.purposes)}.contains(context.purpose))")
    elif f.kind == "resource_flag":
        conds.append(f"resource.flags.contains({_s(f.flag or '')})")
    elif f.kind == "remote":
        conds.append("context.remote")
    elif f.kind == "remote_without_second_factor":
        conds.append("context.remote && !context.second_factor")
    elif f.kind == "resource_kind":
        conds.append(f"{_set(f.resource_kinds)}.contains(resource.kind)")
    elif f.kind == "subject_category":
        conds.append(f"{_set(f.categories)}.contains(resource.subject_category)")
    elif f.kind == "disclosure_basis":
        bases = pol.disclosure.bases if pol.disclosure else []
        all_ids = [b.id for b in bases]
        approval = [b.id for b in bases if b.needs_privacy_officer_approval]
        conds.append(
            f"(!({_set(all_ids)}.contains(context.disclosure_basis)) || "
            f"({_set(approval)}.contains(context.disclosure_basis) && "
            "!context.privacy_officer_approval))"
        )
    if f.except_bureaus:
        conds.append(f"!({_set(f.except_bureaus)}.contains(principal.bureau))")
    if f.except_roles:
        conds.append(f"!({_set(f.except_roles)}.contains(principal.role))")
    if f.except_purposes:
        conds.append(f"!({_set(f.except_purposes)}.contains(context.purpose))")
    return conds


def compile_policies(policies: Iterable[PolicyFile]) -> tuple[str, list[CedarRule]]:
    """Cedar text for every rule, and the rules in the order Cedar numbers them
    (``policy0``, ``policy1``, ...), so a decision's reasons map back to rule ids."""
    chunks: list[str] = []
    rules: list[CedarRule] = []
    for pol in policies:
        for p in pol.permit:
            body = " &&\n  ".join(permit_conditions(pol, p))
            text = (
                f"// {p.id} ({pol.policy.id})\n"
                f"permit(principal, {_actions(p.actions)}, resource)\nwhen {{\n  {body}\n}};"
            )
            chunks.append(text)
            rules.append(CedarRule(p.id, pol.policy.id, "permit", text, tuple(p.actions)))
        for f in pol.forbid:
            body = " &&\n  ".join(forbid_conditions(pol, f))
            text = (
                f"// {f.id} ({pol.policy.id})\n"
                f"forbid(principal, {_actions(f.actions)}, resource)\nwhen {{\n  {body}\n}};"
            )
            chunks.append(text)
            rules.append(CedarRule(f.id, pol.policy.id, "forbid", text, tuple(f.actions)))
    return "\n\n".join(chunks) + "\n", rules
