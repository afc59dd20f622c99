"""Deployment modes: the NYPD flow and the SF DEM flow as configuration, not forks. Pure core.

NYPD (ShotSpotter Impact and Use Policy, 2021): analysts review; a confirmed incident becomes a
CAD job automatically, routed to the precinct; authorised personnel see confirmed gunfire.

SF DEM (Surveillance Technology Policy, 19B): Public Safety Supervisors, on the listed supervisor
workstations only, see activations and enter them into CAD as incidents; Public Safety
Dispatchers see the data only once it is in CAD; an activation is visible for seven days,
then no longer accessible to the department.

A mode is a value of :class:`DeploymentMode`; :func:`can_view_call` is the one visibility rule
both flows use (the policy engine asks it with the request's role and workstation).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shotwatch.dispatch.models import CallForService, CallStatus

DAY_S = 86_400.0


class Role(enum.StrEnum):
    ANALYST = "analyst"  # reviews incidents (incident review center)
    SUPERVISOR = "supervisor"  # SF DEM 8239-8240: sees activations, enters them into CAD
    DISPATCHER = "dispatcher"  # sees calls once in CAD, broadcasts to officers
    OFFICER = "officer"  # mobile view of calls for their unit
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class DeploymentMode:
    name: str
    require_cad_entry: bool
    visibility_s: float | None
    supervisor_workstations: frozenset[str] | None
    #: roles that may see a call before it is in CAD
    pre_cad_roles: frozenset[Role]
    #: roles that may see a call once it is in CAD
    cad_roles: frozenset[Role]


NYPD = DeploymentMode(
    name="nypd",
    require_cad_entry=False,
    visibility_s=None,
    supervisor_workstations=None,
    pre_cad_roles=frozenset({Role.ANALYST, Role.SUPERVISOR, Role.ADMIN}),
    cad_roles=frozenset({Role.ANALYST, Role.SUPERVISOR, Role.DISPATCHER, Role.OFFICER, Role.ADMIN}),
)


def sf_dem(workstations: frozenset[str] | set[str] | tuple[str, ...] = ()) -> DeploymentMode:
    """The SF DEM mode with its listed supervisor workstations."""
    return DeploymentMode(
        name="sfdem",
        require_cad_entry=True,
        visibility_s=7 * DAY_S,
        supervisor_workstations=frozenset(workstations),
        pre_cad_roles=frozenset({Role.SUPERVISOR, Role.ANALYST}),
        cad_roles=frozenset({Role.SUPERVISOR, Role.DISPATCHER, Role.ANALYST, Role.OFFICER}),
    )


def mode_named(name: str, workstations: tuple[str, ...] = ()) -> DeploymentMode:
    from shotwatch.core.errors import InputError

    if name == "nypd":
        return NYPD
    if name == "sfdem":
        return sf_dem(workstations)
    raise InputError("dispatch settings", "mode", f"unknown mode {name!r} (nypd, sfdem)")


def can_view_call(
    mode: DeploymentMode,
    role: Role,
    workstation: str | None,
    call: CallForService,
    now_s: float,
) -> tuple[bool, str]:
    """Whether ``role`` at ``workstation`` may see ``call`` now, and why not."""
    if mode.visibility_s is not None and now_s - call.created_s > mode.visibility_s:
        days = mode.visibility_s / DAY_S
        return False, f"activation older than the {days:g}-day visibility period"
    if (
        role is Role.SUPERVISOR
        and mode.supervisor_workstations is not None
        and workstation not in mode.supervisor_workstations
    ):
        return False, f"workstation {workstation!r} is not a listed supervisor workstation"
    if call.status is CallStatus.IN_CAD:
        if role in mode.cad_roles:
            return True, ""
        return False, f"role {role.value} may not see calls"
    if role in mode.pre_cad_roles:
        return True, ""
    return False, f"role {role.value} sees calls only once they are in CAD"


def can_enter_into_cad(
    mode: DeploymentMode, role: Role, workstation: str | None
) -> tuple[bool, str]:
    """SF DEM: only a supervisor on a listed workstation enters activations into CAD."""
    if not mode.require_cad_entry:
        return False, "this deployment creates CAD jobs automatically"
    if role not in (Role.SUPERVISOR, Role.ADMIN):
        return False, "only supervisors enter activations into CAD"
    if mode.supervisor_workstations is not None and workstation not in (
        mode.supervisor_workstations
    ):
        return False, f"workstation {workstation!r} is not a listed supervisor workstation"
    return True, ""
