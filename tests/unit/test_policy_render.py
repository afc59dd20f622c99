from __future__ import annotations

import html
from pathlib import Path

import pytest

from shotwatch.cli.main import main
from shotwatch.core.settings import PolicySettings
from shotwatch.policy.render import document, to_html, to_markdown, to_pdf
from shotwatch.policy.schema import load_policies

POLICIES = load_policies()


@pytest.mark.parametrize("pol", POLICIES, ids=[p.policy.id for p in POLICIES])
def test_every_configured_rule_is_in_the_document(pol) -> None:  # type: ignore[no-untyped-def]
    settings = PolicySettings(internal_networks=["192.0.2.0/24"], session_idle_s=321.0)
    blocks = document(pol, settings)
    md = to_markdown(blocks)
    page = to_html(blocks, pol.policy.title)
    for rule in pol.all_rules():
        assert rule.id in md and rule.text in md, rule.id
        assert rule.id in page and html.escape(rule.text) in page, rule.id
    for p in pol.permit:
        for a in p.actions:
            assert a in md
        for r in p.roles:
            assert r in md
    if pol.disclosure:
        for b in pol.disclosure.bases:
            assert b.text in md
    for use in [*pol.training.authorized_uses, *pol.training.prohibited_uses]:
        assert use in md
    for ws in pol.workstations:
        assert ws in md
    # the running configuration, not defaults
    assert "192.0.2.0/24" in md and "321 s idle" in md


def test_render_cli_writes_all_formats(tmp_path: Path) -> None:
    assert (
        main(["policy", "render", "--out", str(tmp_path), "--policy", "sf-dem-gunshot-detection"])
        == 0
    )
    md = (tmp_path / "sf-dem-gunshot-detection.md").read_text()
    assert "SF-DEM-SUPERVISOR-VIEW" in md and "DEM-SUP-WS-4" in md and "SHA-256" in md
    assert (tmp_path / "sf-dem-gunshot-detection.html").read_text().startswith("<!doctype html>")
    assert (tmp_path / "sf-dem-gunshot-detection.pdf").read_bytes().startswith(b"%PDF")


def test_pdf_is_a_pdf() -> None:
    pol = POLICIES[0]
    data = to_pdf(document(pol, PolicySettings()), pol.policy.title)
    assert data.startswith(b"%PDF") and len(data) > 2000
