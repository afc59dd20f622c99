from __future__ import annotations

from pathlib import Path

import pytest

from shotwatch.core.errors import InputError
from shotwatch.core.settings import load_settings, settings_reference_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_reference_docs_match_schema() -> None:
    page = (ROOT / "docs/reference/settings.md").read_text(encoding="utf-8")
    assert page.strip() == settings_reference_markdown().strip(), (
        "docs/reference/settings.md is stale: run `shotwatch settings docs`"
    )


def test_every_setting_has_help() -> None:
    page = settings_reference_markdown()
    for line in page.splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), f"setting without help: {line}"


def test_bad_setting_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[association]\nmin_sensors = 2\n")
    with pytest.raises(InputError, match="min_sensors"):
        load_settings(cfg)
