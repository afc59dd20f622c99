from __future__ import annotations

from pathlib import Path

import pytest

from shotwatch.policy.actions import (
    Action,
    UnregisteredAction,
    action_from_value,
    require_registered,
)
from shotwatch.policy.engine import Actor, Context, Resource, default_engine
from shotwatch.policy.schema import PolicyFileErrors, load_policies, packaged_policy_texts

EXPECTED_POLICIES = {
    "nypd-shotspotter",
    "sf-dem-gunshot-detection",
    "nypd-digital-cameras",
    "nypd-portable-electronic-devices",
    "nypd-electronic-record-management",
}


def test_all_five_policies_ship_and_validate() -> None:
    assert {p.policy.id for p in load_policies()} == EXPECTED_POLICIES


def test_action_values_are_distinct() -> None:
    values = [a.spec.value for a in Action]
    assert len(values) == len(set(values))
    names = [a.name for a in Action]
    assert len(names) == len(set(names))


def test_unregistered_action_fails() -> None:
    with pytest.raises(UnregisteredAction):
        action_from_value("incident.delete_everything")
    with pytest.raises(UnregisteredAction):
        require_registered(object())
    e = default_engine()
    a = Actor("u", "NYPD", "officer", "police_officer", "c")
    r = Resource("r", "nypd-shotspotter", "incident", "c")
    with pytest.raises(UnregisteredAction):
        e.decide(a, "incident.teleport", r, Context(0.0))
    assert require_registered("incident.view") is Action.INCIDENT_VIEW


def _copy_packaged(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for where, text in packaged_policy_texts():
        p = tmp_path / Path(where).name
        p.write_text(text, encoding="utf-8")
        out[p.name] = p
    return out


def test_bad_file_names_file_and_field_and_checks_the_rest(tmp_path: Path) -> None:
    files = _copy_packaged(tmp_path)
    sf = files["sf_dem_gunshot_detection.toml"]
    sf.write_text(
        sf.read_text().replace('roles = ["dispatcher", "supervisor"]', 'roles = ["janitor"]')
    )
    ss = files["nypd_shotspotter.toml"]
    ss.write_text(
        ss.read_text().replace('actions = ["record.export"]', 'actions = ["record.shred"]')
    )
    with pytest.raises(PolicyFileErrors) as err:
        load_policies(tmp_path)
    text = str(err.value)
    assert "sf_dem_gunshot_detection.toml" in text and "unknown role 'janitor'" in text
    assert "nypd_shotspotter.toml" in text and "record.shred" in text
    assert len(err.value.errors) == 2


def test_sensitive_action_without_articulable_need_is_rejected(tmp_path: Path) -> None:
    files = _copy_packaged(tmp_path)
    cam = files["nypd_digital_cameras.toml"]
    text = cam.read_text()
    head, sep, tail = text.partition('id = "NYPD-CAM-ACCESS"')
    tail = tail.replace("articulable_need = true\n", "", 1)
    cam.write_text(head + sep + tail)
    with pytest.raises(PolicyFileErrors, match=r"permit\[0\].*articulable_need"):
        load_policies(tmp_path)


def test_field_errors_name_the_path(tmp_path: Path) -> None:
    files = _copy_packaged(tmp_path)
    erms = files["nypd_electronic_record_management.toml"]
    erms.write_text(erms.read_text().replace("years = 25", "years = -25"))
    with pytest.raises(
        PolicyFileErrors, match=r"nypd_electronic_record_management.toml: retention\[1\]\.years"
    ):
        load_policies(tmp_path)
