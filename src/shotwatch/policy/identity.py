"""Identity and authentication: users, assignments, access grants, training, sanctions,
sessions.

* Passwords are Argon2id (argon2-cffi); ``lockout_failures`` failures in a row lock the
  account for ``lockout_s``.
* A sign-in from outside the configured internal networks is remote and needs a TOTP code
  (pyotp): "Accessing NYPD computer systems remotely requires dual factor authentication."
* Sessions end ``session_expiry_s`` after sign-in, after ``session_idle_s`` idle, or at once
  when the user is transferred, deactivated or their access is revoked.
* :meth:`IdentityService.actor_for_session` reads the user's *current* assignment, grants and
  training at every request, so a transfer removes access immediately.

Every sign-in (success or failure), transfer, grant, revocation, acknowledgment and sanction
is written to the audit log.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from shotwatch.audit.log import AuditLog
from shotwatch.core.clock import Clock
from shotwatch.core.errors import InputError, ShotWatchError
from shotwatch.core.settings import PolicySettings
from shotwatch.policy.directory import Directory, DirectoryError, DirectoryUser
from shotwatch.policy.engine import Actor, Context
from shotwatch.policy.schema import PolicyFile
from shotwatch.policy.tables import (
    AccessGrantRow,
    AssignmentRow,
    SanctionRow,
    SessionRow,
    TrainingAckRow,
    UserRow,
)


class AuthError(ShotWatchError):
    """Sign-in or session refused; ``reason`` is safe to log (never shown per-field to users)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class LoginResult:
    token: str
    user_id: str
    remote: bool
    second_factor: bool
    expires_at_s: float


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def training_digest(pol: PolicyFile) -> str:
    """What was acknowledged: the training text and the authorized and prohibited uses."""
    t = pol.training
    text = "\n".join([t.text, *t.authorized_uses, "--", *t.prohibited_uses])
    return hashlib.sha256(text.encode()).hexdigest()


class IdentityService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        settings: PolicySettings,
        policies: Sequence[PolicyFile],
        *,
        audit: AuditLog | None = None,
        hasher: PasswordHasher | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.settings = settings
        self.policies = {p.policy.id: p for p in policies}
        self.audit = audit
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        if directory is None and settings.ldap_url:
            directory = Directory(
                settings.ldap_url, settings.ldap_user_dn_template, settings.ldap_timeout_s
            )
        self.directory = directory
        # bumped by every change this process makes (all of them are audited, and sign-out):
        # a live stream re-reads its user when it moves (ADR 0095)
        self.epoch = 0
        try:
            self.networks = [ipaddress.ip_network(n) for n in settings.internal_networks]
        except ValueError as exc:
            raise InputError("settings", "policy.internal_networks", str(exc)) from exc

    # ---- helpers -------------------------------------------------------------------------

    def _audit(  # noqa: PLR0917 - one call shape for every audited identity event
        self,
        actor: str,
        action: str,
        kind: str,
        allowed: bool,
        item: str,
        reason: str,
        detail: dict[str, object] | None = None,
    ) -> None:
        self.epoch += 1
        if self.audit is not None:
            self.audit.append(
                actor=actor,
                action=action,
                kind=kind,
                allowed=allowed,
                item=item,
                reason=reason,
                detail=detail or {},
            )

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def is_remote(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return True  # unknown origin: treat as remote
        return not any(ip in n for n in self.networks)

    def _policy(self, policy_id: str) -> PolicyFile:
        pol = self.policies.get(policy_id)
        if pol is None:
            raise InputError("identity", "policy_id", f"unknown policy {policy_id!r}")
        return pol

    # ---- users ---------------------------------------------------------------------------

    def create_user(
        self,
        *,
        user_id: str,
        username: str,
        agency: str,
        rank: str,
        role: str,
        command: str,
        bureau: str = "",
        password: str | None = None,
        display_name: str = "",
        created_by: str = "system",
    ) -> None:
        now = self.clock.now()
        known_roles = {
            r.name for p in self.policies.values() if p.policy.agency == agency for r in p.roles
        }
        if not known_roles:
            raise InputError(f"user {user_id}", "agency", f"no policy for agency {agency!r}")
        if role not in known_roles:
            raise InputError(f"user {user_id}", "role", f"{role!r} is not a role of {agency}")
        with self._session() as s, s.begin():
            s.add(
                UserRow(
                    id=user_id,
                    username=username,
                    display_name=display_name,
                    agency=agency,
                    rank=rank,
                    role=role,
                    command=command,
                    bureau=bureau,
                    password_hash=self.hasher.hash(password) if password else None,
                    active=True,
                    failed_logins=0,
                    created_at_s=now,
                )
            )
            s.flush()
            s.add(
                AssignmentRow(
                    user_id=user_id,
                    command=command,
                    role=role,
                    rank=rank,
                    bureau=bureau,
                    start_s=now,
                    reason="created",
                )
            )
        self._audit(
            created_by,
            "identity.admin",
            "admin",
            True,
            f"user:{user_id}",
            "user created",
            {"role": role, "rank": rank, "command": command},
        )

    def set_password(self, user_id: str, password: str) -> None:
        with self._session() as s, s.begin():
            s.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(password_hash=self.hasher.hash(password))
            )

    def enroll_totp(self, user_id: str) -> str:
        """A new TOTP secret for the user's authenticator app (returned once)."""
        secret = pyotp.random_base32()
        with self._session() as s, s.begin():
            s.execute(update(UserRow).where(UserRow.id == user_id).values(totp_secret=secret))
        self._audit(user_id, "identity.admin", "admin", True, f"user:{user_id}", "TOTP enrolled")
        return secret

    def revoke_sessions(self, s: Session, user_id: str, reason: str) -> int:
        res = s.execute(
            update(SessionRow)
            .where(SessionRow.user_id == user_id, SessionRow.revoked_at_s.is_(None))
            .values(revoked_at_s=self.clock.now(), revoke_reason=reason)
        )
        return int(res.rowcount or 0)  # type: ignore[attr-defined]

    def transfer(
        self,
        user_id: str,
        *,
        command: str,
        by: str,
        role: str | None = None,
        rank: str | None = None,
        bureau: str | None = None,
        reason: str = "transfer",
    ) -> None:
        """Move a user to another command: access grants and open sessions end at once."""
        now = self.clock.now()
        with self._session() as s, s.begin():
            user = s.get(UserRow, user_id)
            if user is None:
                raise InputError("transfer", "user_id", f"no user {user_id!r}")
            s.execute(
                update(AssignmentRow)
                .where(AssignmentRow.user_id == user_id, AssignmentRow.end_s.is_(None))
                .values(end_s=now)
            )
            user.command = command
            user.role = role or user.role
            user.rank = rank or user.rank
            user.bureau = bureau if bureau is not None else user.bureau
            s.add(
                AssignmentRow(
                    user_id=user_id,
                    command=command,
                    role=user.role,
                    rank=user.rank,
                    bureau=user.bureau,
                    start_s=now,
                    reason=reason,
                )
            )
            grants = s.execute(
                update(AccessGrantRow)
                .where(AccessGrantRow.user_id == user_id, AccessGrantRow.revoked_at_s.is_(None))
                .values(revoked_at_s=now, revoke_reason=f"transferred to {command}")
            )
            sessions = self.revoke_sessions(s, user_id, f"transferred to {command}")
        self._audit(
            by,
            "identity.admin",
            "admin",
            True,
            f"user:{user_id}",
            reason,
            {
                "command": command,
                "grants_revoked": int(grants.rowcount or 0),  # type: ignore[attr-defined]
                "sessions_revoked": sessions,
            },
        )

    def deactivate(self, user_id: str, *, by: str, reason: str) -> None:
        with self._session() as s, s.begin():
            s.execute(update(UserRow).where(UserRow.id == user_id).values(active=False))
            self.revoke_sessions(s, user_id, reason)
        self._audit(
            by, "identity.admin", "admin", True, f"user:{user_id}", f"deactivated: {reason}"
        )

    def grant_access(
        self, user_id: str, policy_id: str, *, requested_by: str, approved_by: str
    ) -> None:
        """Technology access for the user's current command, requested by their Commanding
        Officer and approved by someone else (ITB)."""
        self._policy(policy_id)
        if requested_by == approved_by:
            raise InputError(
                "grant", "approved_by", "request and approval need two different people"
            )
        with self._session() as s, s.begin():
            user = s.get(UserRow, user_id)
            if user is None:
                raise InputError("grant", "user_id", f"no user {user_id!r}")
            s.add(
                AccessGrantRow(
                    user_id=user_id,
                    policy_id=policy_id,
                    command=user.command,
                    requested_by=requested_by,
                    approved_by=approved_by,
                    granted_at_s=self.clock.now(),
                )
            )
        self._audit(
            approved_by,
            "identity.admin",
            "admin",
            True,
            f"user:{user_id}",
            "access granted",
            {"policy": policy_id, "requested_by": requested_by},
        )

    def acknowledge_training(self, user_id: str, policy_id: str) -> None:
        """The user read and acknowledged the authorized and prohibited uses."""
        pol = self._policy(policy_id)
        with self._session() as s, s.begin():
            s.add(
                TrainingAckRow(
                    user_id=user_id,
                    policy_id=policy_id,
                    training_sha256=training_digest(pol),
                    acknowledged_at_s=self.clock.now(),
                )
            )
        self._audit(
            user_id,
            "identity.admin",
            "admin",
            True,
            f"user:{user_id}",
            "training acknowledged",
            {"policy": policy_id},
        )

    def record_sanction(
        self, user_id: str, policy_id: str, *, by: str, note: str = ""
    ) -> SanctionRow:
        """Record a violation; the measure follows the policy's progressive steps (SF:
        retraining, formal counseling, letter of reprimand). Retraining also withdraws the
        training acknowledgment, so access stops until the user acknowledges again."""
        pol = self._policy(policy_id)
        if pol.sanctions is None or not pol.sanctions.steps:
            raise InputError(policy_id, "sanctions", "this policy defines no sanction steps")
        steps = sorted(pol.sanctions.steps, key=lambda x: x.offense)
        with self._session() as s, s.begin():
            prior = len(
                s.execute(
                    select(SanctionRow.id).where(
                        SanctionRow.user_id == user_id, SanctionRow.policy_id == policy_id
                    )
                ).all()
            )
            offense = prior + 1
            measure = next((x.measure for x in steps if x.offense == offense), steps[-1].measure)
            row = SanctionRow(
                user_id=user_id,
                policy_id=policy_id,
                offense=offense,
                measure=measure,
                recorded_by=by,
                recorded_at_s=self.clock.now(),
                note=note,
            )
            s.add(row)
            if measure.lower() == "retraining":
                for ack in s.scalars(
                    select(TrainingAckRow).where(
                        TrainingAckRow.user_id == user_id, TrainingAckRow.policy_id == policy_id
                    )
                ):
                    ack.training_sha256 = "withdrawn:" + ack.training_sha256[:50]
        self._audit(
            by,
            "identity.admin",
            "admin",
            True,
            f"user:{user_id}",
            f"sanction: {measure}",
            {"policy": policy_id, "offense": offense},
        )
        return row

    def sanctions(self, user_id: str) -> list[SanctionRow]:
        with self._session() as s:
            return list(
                s.scalars(
                    select(SanctionRow)
                    .where(SanctionRow.user_id == user_id)
                    .order_by(SanctionRow.id)
                )
            )

    def assignments(self, user_id: str) -> list[AssignmentRow]:
        with self._session() as s:
            return list(
                s.scalars(
                    select(AssignmentRow)
                    .where(AssignmentRow.user_id == user_id)
                    .order_by(AssignmentRow.id)
                )
            )

    # ---- authentication ------------------------------------------------------------------

    def login(
        self,
        username: str,
        password: str,
        *,
        address: str,
        totp_code: str | None = None,
        workstation: str = "",
    ) -> LoginResult:
        now = self.clock.now()
        st = self.settings
        dir_user: DirectoryUser | None = None
        dir_reason = ""
        if self.directory is not None:
            try:
                dir_user = self.directory.authenticate(username, password)
            except DirectoryError as exc:
                dir_reason = exc.reason
            if dir_user is not None:
                self.sync_from_directory(dir_user)
        with self._session() as s, s.begin():
            user = s.scalars(select(UserRow).where(UserRow.username == username)).first()
            if self.directory is not None and user is None:
                reason = f"directory: {dir_reason or 'unknown user'}"
                uid = f"unknown:{username}"
            elif user is None or (not user.password_hash and self.directory is None):
                reason = "unknown user or no password"
                uid = f"unknown:{username}"
            elif not user.active:
                reason, uid = "account inactive", user.id
            elif user.locked_until_s is not None and user.locked_until_s > now:
                reason, uid = "account locked", user.id
            else:
                uid = user.id
                if self.directory is not None:
                    # the directory holds the password; nothing is checked locally
                    reason = "" if dir_user is not None else f"directory: {dir_reason}"
                else:
                    try:
                        self.hasher.verify(user.password_hash or "", password)
                        reason = ""
                    except (VerificationError, InvalidHashError):
                        reason = "wrong password"
                remote = self.is_remote(address)
                second = False
                if not reason and remote:
                    if not user.totp_secret:
                        reason = "remote sign-in needs a second factor and none is enrolled"
                    elif not totp_code or not pyotp.TOTP(user.totp_secret).verify(
                        totp_code, for_time=int(now), valid_window=1
                    ):
                        reason = "remote sign-in needs a valid TOTP code"
                    else:
                        second = True
                if reason:
                    user.failed_logins += 1
                    if user.failed_logins >= st.lockout_failures:
                        user.locked_until_s = now + st.lockout_s
                        user.failed_logins = 0
                        reason += f"; account locked for {st.lockout_s:g} s"
                else:
                    if (
                        self.directory is None
                        and user.password_hash
                        and self.hasher.check_needs_rehash(user.password_hash)
                    ):
                        user.password_hash = self.hasher.hash(password)
                    user.failed_logins = 0
                    user.locked_until_s = None
                    token = secrets.token_urlsafe(32)
                    s.add(
                        SessionRow(
                            token_sha256=token_hash(token),
                            user_id=user.id,
                            created_at_s=now,
                            last_seen_s=now,
                            expires_at_s=now + st.session_expiry_s,
                            remote=remote,
                            second_factor=second,
                            address=address,
                            workstation=workstation,
                        )
                    )
        if reason:
            self._audit(
                uid,
                "auth.login",
                "login",
                False,
                f"user:{uid}",
                reason,
                {"address": address, "workstation": workstation},
            )
            raise AuthError(reason)
        self._audit(
            uid,
            "auth.login",
            "login",
            True,
            f"user:{uid}",
            "signed in",
            {
                "address": address,
                "workstation": workstation,
                "remote": remote,
                "second_factor": second,
            },
        )
        return LoginResult(token, uid, remote, second, now + st.session_expiry_s)

    def sync_from_directory(self, d: DirectoryUser) -> None:
        """Create the local record of a directory user, or follow the directory's assignment:
        a changed command is a transfer (access grants and sessions end at once)."""
        with self._session() as s:
            user = s.scalars(select(UserRow).where(UserRow.username == d.username)).first()
            current = None if user is None else (user.command, user.role, user.rank, user.bureau)
            uid = None if user is None else user.id
        if uid is None:
            self.create_user(
                user_id=d.username,
                username=d.username,
                agency=d.agency,
                rank=d.rank,
                role=d.role,
                command=d.command,
                bureau=d.bureau,
                display_name=d.display_name,
                created_by="directory",
            )
            with self._session() as s, s.begin():
                s.execute(
                    update(UserRow)
                    .where(UserRow.id == d.username)
                    .values(directory_dn=d.dn, password_hash=None)
                )
            return
        if current != (d.command, d.role, d.rank, d.bureau):
            self.transfer(
                uid,
                command=d.command,
                role=d.role,
                rank=d.rank,
                bureau=d.bureau,
                by="directory",
                reason="directory assignment changed",
            )

    def logout(self, token: str) -> None:
        with self._session() as s, s.begin():
            s.execute(
                update(SessionRow)
                .where(SessionRow.token_sha256 == token_hash(token))
                .values(revoked_at_s=self.clock.now(), revoke_reason="signed out")
            )
        self.epoch += 1

    def actor_for_session(
        self,
        token: str,
        *,
        purpose: str = "",
        reference: str = "",
        disclosure_basis: str = "",
        privacy_officer_approval: bool = False,
    ) -> tuple[Actor, Context]:
        """The actor as they stand now, and the request context from their session."""
        now = self.clock.now()
        with self._session() as s, s.begin():
            sess = s.get(SessionRow, token_hash(token))
            if sess is None:
                raise AuthError("no such session")
            if sess.revoked_at_s is not None:
                raise AuthError(f"session ended: {sess.revoke_reason}")
            if now >= sess.expires_at_s:
                raise AuthError("session expired")
            if now - sess.last_seen_s > self.settings.session_idle_s:
                sess.revoked_at_s = now
                sess.revoke_reason = "idle timeout"
                raise AuthError("session expired (idle)")
            user = s.get(UserRow, sess.user_id)
            assert user is not None
            # a lockout or deactivation ends open sessions too, at their next request
            if not user.active:
                raise AuthError("account inactive")
            if user.locked_until_s is not None and user.locked_until_s > now:
                raise AuthError("account locked")
            sess.last_seen_s = now
            actor = self.actor(s, user)
            ctx = Context(
                now_s=now,
                purpose=purpose,
                reference=reference,
                remote=sess.remote,
                second_factor=sess.second_factor,
                workstation=sess.workstation,
                disclosure_basis=disclosure_basis,
                privacy_officer_approval=privacy_officer_approval,
            )
        return actor, ctx

    def actor(self, s: Session, user: UserRow) -> Actor:
        grants = s.scalars(
            select(AccessGrantRow.policy_id).where(
                AccessGrantRow.user_id == user.id,
                AccessGrantRow.revoked_at_s.is_(None),
                AccessGrantRow.command == user.command,
            )
        ).all()
        acks = s.execute(
            select(TrainingAckRow.policy_id, TrainingAckRow.training_sha256).where(
                TrainingAckRow.user_id == user.id
            )
        ).all()
        trained = {
            pid
            for pid, digest in acks
            if pid in self.policies and digest == training_digest(self.policies[pid])
        }
        return Actor(
            user_id=user.id,
            agency=user.agency,
            role=user.role,
            rank=user.rank,
            command=user.command,
            bureau=user.bureau,
            active=user.active,
            access=frozenset(grants),
            trained=frozenset(trained),
        )

    def actor_by_id(self, user_id: str) -> Actor:
        with self._session() as s:
            user = s.get(UserRow, user_id)
            if user is None:
                raise InputError("identity", "user_id", f"no user {user_id!r}")
            return self.actor(s, user)
