"""Shared by the scale-out tests: a tiny dataset, running the CLI, comparing derivatives."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

REPO = Path(__file__).resolve().parents[2]

PLANS = (
    RunPlan("01", "T1w"),
    RunPlan("02", "T1w", artifact="motion", severity=0.8),
    RunPlan("03", "T1w", artifact="ghost", severity=0.6, noise=0.03),
)


def make_dataset(root: Path, plans=PLANS) -> Path:
    build_dataset(root, plans, voxel_size=3.0)
    return root


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("LOGNAME", "mmrqa")  # Nipype's batch plugins name jobs after it
    env.update(extra)
    return env


def run_cli(*args: Any, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mmrqa_bids", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or cli_env(),
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} -> {proc.returncode}\n" \
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def derivatives(output_dir: Path) -> dict[str, dict[str, Any]]:
    """bids_name -> the per-run JSON without its provenance (timings, plugin, paths)."""
    docs = {}
    for path in sorted(output_dir.glob("sub-*/**/*.json")):
        doc = json.loads(path.read_text())
        doc.pop("provenance")
        docs[doc["bids_meta"]["bids_name"]] = doc
    return docs


def assert_same_derivatives(a: Path, b: Path) -> None:
    da, db = derivatives(a), derivatives(b)
    assert da, f"no derivatives in {a}"
    assert sorted(da) == sorted(db)
    for name in da:
        for key in ("metrics", "grade", "artifacts", "narrative", "bids_meta"):
            assert da[name][key] == db[name][key], f"{name}: {key} differs between {a} and {b}"
