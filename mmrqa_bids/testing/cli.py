"""Run the real ``mmrqa`` command line in a subprocess (tests and benchmarks)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path, env: dict | None = None,
            timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m mmrqa_bids ARGS`` with this checkout first on the path."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "mmrqa_bids", *map(str, args)],
                          capture_output=True, text=True, env=full_env, timeout=timeout)
