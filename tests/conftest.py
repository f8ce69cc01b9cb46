"""Shared fixtures: small BIDS datasets generated from the MNI152 head (never committed)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("NIPYPE_NO_ET", "1")

from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset  # noqa: E402


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark(name)``: the script benchmarks/<name>.py as a module (the benchmarks
    are scripts, not a package), for tests of their own pieces."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(autouse=True)
def _console():
    """Library calls made directly by a test log to the console as under the ``mmrqa``
    command (mmrqa_bids.cli.console), so their lines reach capsys."""
    from mmrqa_bids.cli.console import configure
    configure("mmrqa")

# T1w and bold, sessions, two runs of one subject, one degraded run.
E2E_PLANS = (
    RunPlan("01", "T1w", session="1"),
    RunPlan("01", "T1w", session="2", run=1),
    RunPlan("01", "T1w", session="2", run=2, artifact="motion", severity=1.0, noise=0.04),
    RunPlan("01", "bold", session="1", task="rest", n_volumes=12),
    RunPlan("02", "T1w"),
    RunPlan("02", "bold", task="rest", n_volumes=12),
)


@pytest.fixture(scope="session")
def small_bids(tmp_path_factory) -> Path:
    """A 3 mm dataset (fast) with the structure of a real one. Treat as read-only."""
    root = tmp_path_factory.mktemp("bids") / "ds"
    build_dataset(root, E2E_PLANS, voxel_size=3.0, bold_voxel_size=4.0, seed=1)
    return root
