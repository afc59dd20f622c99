"""In CI the browser and directory tests must run, not skip: their tools must be there."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("CI", "").lower() != "true", reason="only CI promises every system tool"
)


@pytest.mark.parametrize("tool", ["/usr/bin/chromium", "/usr/sbin/slapd"])
def test_system_tool_installed_in_ci(tool: str) -> None:
    assert Path(tool).exists(), f"{tool} missing: scripts/system-deps.sh should install it"


@pytest.mark.parametrize("module", ["playwright.sync_api", "schemathesis", "ldap3"])
def test_python_test_tool_installed_in_ci(module: str) -> None:
    assert importlib.util.find_spec(module) is not None, f"{module} missing from the dev extra"
