"""Directory sign-in against a real OpenLDAP server (Debian's slapd) started here."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from shotwatch.audit.log import AuditLog
from shotwatch.core.clock import ReplayClock
from shotwatch.core.settings import PolicySettings
from shotwatch.policy.directory import load_ldap3
from shotwatch.policy.engine import default_engine
from shotwatch.policy.identity import AuthError, IdentityService
from shotwatch.storage.db import make_engine, migrate

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
BASE = "dc=shotwatch,dc=test"
ADMIN = f"cn=admin,{BASE}"
SS = "nypd-shotspotter"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(SLAPD).exists():
        pytest.skip("slapd not installed (apt-get install slapd ldap-utils)")
    ldap3 = load_ldap3()
    d = tmp_path_factory.mktemp("slapd")
    (d / "db").mkdir()
    (d / "slapd.conf").write_text(
        "include /etc/ldap/schema/core.schema\n"
        "include /etc/ldap/schema/cosine.schema\n"
        "include /etc/ldap/schema/inetorgperson.schema\n"
        "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
        f"pidfile {d}/slapd.pid\n"
        f'database mdb\nsuffix "{BASE}"\nrootdn "{ADMIN}"\nrootpw admin-secret\n'
        f"directory {d}/db\nmaxsize 10485760\n"
    )
    port = _free_port()
    url = f"ldap://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [SLAPD, "-f", str(d / "slapd.conf"), "-h", url + "/", "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = ldap3.Server(url)
        for _ in range(100):
            try:
                conn = ldap3.Connection(server, ADMIN, "admin-secret", auto_bind=True)
                break
            except Exception:
                time.sleep(0.1)
        else:
            pytest.fail("slapd did not start")
        conn.add(BASE, ["dcObject", "organization"], {"o": "ShotWatch test", "dc": "shotwatch"})
        conn.add(f"ou=people,{BASE}", ["organizationalUnit"], {"ou": "people"})
        conn.add(
            f"uid=jdoe,ou=people,{BASE}",
            ["inetOrgPerson"],
            {
                "uid": "jdoe",
                "cn": "Jane Doe",
                "sn": "Doe",
                "userPassword": "dir-pass-1",
                "o": "NYPD",
                "title": "detective",
                "employeeType": "investigator",
                "departmentNumber": "pct-75",
                "ou": "detective",
            },
        )
        assert conn.result["description"] == "success", conn.result
        conn.unbind()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_directory_sign_in_and_transfer(slapd: str, tmp_path: Path) -> None:
    ldap3 = load_ldap3()
    db = f"sqlite:///{tmp_path / 'd.db'}"
    migrate(db)
    clock = ReplayClock(1_800_000_000.0)
    engine = make_engine(db)
    audit = AuditLog(engine, clock)
    settings = PolicySettings(
        ldap_url=slapd, ldap_user_dn_template=f"uid={{username}},ou=people,{BASE}"
    )
    ids = IdentityService(
        engine,
        clock,
        settings,
        default_engine().policies,
        audit=audit,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    with pytest.raises(AuthError, match="directory"):
        ids.login("jdoe", "wrong", address="10.0.0.5")
    res = ids.login("jdoe", "dir-pass-1", address="10.0.0.5")
    actor = ids.actor_by_id(res.user_id)
    assert (actor.agency, actor.rank, actor.role, actor.command) == (
        "NYPD",
        "detective",
        "investigator",
        "pct-75",
    )
    ids.grant_access("jdoe", SS, requested_by="co75", approved_by="itb1")
    assert ids.actor_by_id("jdoe").access == frozenset({SS})

    # the directory moves her: the next sign-in is a transfer, old sessions and grants end
    conn = ldap3.Connection(ldap3.Server(slapd), ADMIN, "admin-secret", auto_bind=True)
    conn.modify(
        f"uid=jdoe,ou=people,{BASE}", {"departmentNumber": [(ldap3.MODIFY_REPLACE, ["pct-40"])]}
    )
    conn.unbind()
    ids.login("jdoe", "dir-pass-1", address="10.0.0.5")
    with pytest.raises(AuthError, match="transferred"):
        ids.actor_for_session(res.token)
    moved = ids.actor_by_id("jdoe")
    assert moved.command == "pct-40" and moved.access == frozenset()
    assert [a.command for a in ids.assignments("jdoe")] == ["pct-75", "pct-40"]
    with pytest.raises(AuthError, match="directory"):
        ids.login("nobody", "x", address="10.0.0.5")
    assert audit.verify().ok
