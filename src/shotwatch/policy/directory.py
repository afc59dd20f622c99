"""Directory (LDAP / Active Directory) sign-in: "Passwords are never stored locally; user
authentication is stored within the AD."

The user binds to the directory with their own DN and password (ldap3); on success the
directory's attributes are the source of truth for the assignment and are synchronised into
the identity tables. Attribute mapping (inetOrgPerson): ``o`` agency, ``title`` rank,
``employeeType`` role, ``departmentNumber`` command, ``ou`` bureau, ``cn`` display name.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any


def load_ldap3() -> ModuleType:
    """Import ldap3 (only when a directory is configured). Its ASN.1 dependency emits
    DeprecationWarnings at import time that are not ours to fix; they are silenced here only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import ldap3
        import ldap3.core.exceptions
        import ldap3.utils.conv
    return ldap3


ATTRS = ("o", "title", "employeeType", "departmentNumber", "ou", "cn", "uid")


class DirectoryError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    username: str
    agency: str
    rank: str
    role: str
    command: str
    bureau: str
    display_name: str


def _first(entry: Any, name: str) -> str:
    values = entry[name].values if name in entry else []
    return str(values[0]) if values else ""


class Directory:
    def __init__(self, url: str, user_dn_template: str, timeout_s: float = 5.0) -> None:
        self.ldap3 = ldap3 = load_ldap3()
        self.server = ldap3.Server(url, connect_timeout=timeout_s, get_info=ldap3.NONE)
        self.template = user_dn_template
        self.timeout_s = timeout_s

    def authenticate(self, username: str, password: str) -> DirectoryUser:
        """Bind as the user; return their directory attributes. Raises DirectoryError."""
        if not password:
            raise DirectoryError("empty password")  # an empty simple bind is anonymous
        ldap3 = self.ldap3
        dn = self.template.format(username=ldap3.utils.conv.escape_filter_chars(username))
        try:
            conn = ldap3.Connection(
                self.server,
                user=dn,
                password=password,
                receive_timeout=max(1, math.ceil(self.timeout_s)),
            )
            try:
                if not conn.bind():
                    raise DirectoryError(
                        f"directory refused the sign-in: {conn.result['description']}"
                    )
                conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=list(ATTRS))
                if not conn.entries:
                    raise DirectoryError("the directory returned no entry for the user")
                e = conn.entries[0]
            finally:
                conn.unbind()
        except ldap3.core.exceptions.LDAPException as exc:
            raise DirectoryError(f"directory unavailable: {exc}") from exc
        user = DirectoryUser(
            dn=dn,
            username=username,
            agency=_first(e, "o"),
            rank=_first(e, "title"),
            role=_first(e, "employeeType"),
            command=_first(e, "departmentNumber"),
            bureau=_first(e, "ou"),
            display_name=_first(e, "cn"),
        )
        missing = [f for f in ("agency", "rank", "role", "command") if not getattr(user, f)]
        if missing:
            raise DirectoryError(f"directory entry {dn} lacks {', '.join(missing)}")
        return user
