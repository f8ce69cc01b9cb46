"""The listing CircleCI compares its read-only container run with is the one a real local
run of the same commands produces today (so CircleCI fails on a real regression only).

After an intended change of the outputs, regenerate it:
    PYTHON=.venv/bin/python scripts/ci/expected_outputs.sh > .circleci/expected_outputs.txt
"""
from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXPECTED = REPO / ".circleci" / "expected_outputs.txt"

pytestmark = pytest.mark.slow


def test_expected_listing_matches_a_local_run():
    env = dict(os.environ, PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                          if p))
    proc = subprocess.run([str(REPO / "scripts" / "ci" / "expected_outputs.sh")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = EXPECTED.read_text().splitlines()
    got = proc.stdout.splitlines()
    assert got == expected, (
        "outputs changed; if intended, regenerate .circleci/expected_outputs.txt "
        "(see this module's docstring):\n" + "\n".join(difflib.unified_diff(
            expected, got, "expected_outputs.txt", "local run", lineterm="")))


def test_listing_masks_timestamps_and_sorts(tmp_path):
    for rel in ("b.json", "a/z.html", "logs/settings_group_20260101T120000.toml",
                "logs/settings_participant_20260101T120000.332684_4321.toml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    out = subprocess.run([str(REPO / "scripts" / "ci" / "list_outputs.sh"), str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["a/z.html", "b.json", "logs/settings_group_<timestamp>.toml",
                   "logs/settings_participant_<timestamp>.toml"]
