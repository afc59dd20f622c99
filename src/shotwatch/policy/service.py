"""Decide and audit in one step: what routes and commands call.

:class:`Authorizer` asks :meth:`PolicyEngine.decide` and writes the decision to the audit log
with the actor, the item, the purpose and reference, and the rules that decided, whether the
answer is allow or deny.
"""

from __future__ import annotations

from typing import Any

from shotwatch.audit.log import AuditLog
from shotwatch.policy.actions import Action, require_registered
from shotwatch.policy.engine import Actor, Context, Decision, PolicyEngine, Resource


def item_id(resource: Resource) -> str:
    return f"{resource.kind}:{resource.resource_id}"


class Authorizer:
    def __init__(self, engine: PolicyEngine, audit: AuditLog | None) -> None:
        self.engine = engine
        self.audit = audit

    def authorize(
        self,
        actor: Actor,
        action: Action | str,
        resource: Resource,
        context: Context,
        *,
        detail: dict[str, Any] | None = None,
    ) -> Decision:
        act = require_registered(action)
        decision = self.engine.decide(actor, act, resource, context)
        if self.audit is not None:
            self.audit.append(
                actor=actor.user_id,
                action=decision.action,
                kind=act.spec.audit.value,
                allowed=decision.allow,
                item=item_id(resource),
                purpose=context.purpose,
                reference=context.reference,
                rules=decision.rules,
                reason=decision.reason,
                policy=decision.policy,
                detail={
                    "remote": context.remote,
                    "second_factor": context.second_factor,
                    "workstation": context.workstation,
                    **(detail or {}),
                },
            )
        return decision
