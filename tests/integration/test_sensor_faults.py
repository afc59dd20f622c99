"""Fault tests of the sensor: kill -9 during buffer writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_kill9_at_100_random_points_leaves_a_readable_bounded_buffer(tmp_path: Path) -> None:
    harness = Path(__file__).with_name("sensor_buffer_killer.py")
    proc = subprocess.run(
        [sys.executable, str(harness), str(tmp_path / "buf"), "100", "20261123"],
        capture_output=True,
        text=True,
        timeout=240,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    trials = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(trials) == 100
    assert all(t["killed"] for t in trials), "every writer must die by SIGKILL"
    bad = [t for t in trials if not t["readable"] or not t["ok_content"]]
    assert not bad, bad[:3]
    assert max(t["span_s"] for t in trials) <= 5.0 + 1e-9
    assert all(t["leftover_tmp"] == [] for t in trials)
    # The kills really hit the commit protocol at many different places.
    assert len({t["step"] for t in trials if t["mode"] == "step"}) >= 6
    assert trials[-1]["next_idx"] > 20_000  # time advanced: eviction was exercised
