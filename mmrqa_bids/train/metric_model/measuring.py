"""Measuring the simulated examples: their metrics and measured labels, cached on disk by
example, simulation settings and a hash of the metrics code (:func:`cache_key`)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrqa_bids.train.metric_model.recipe import Example
from mmrqa_bids.train.metric_model.rendering import SIMULATION_VERSION, simulate_example


def cache_key() -> str:
    """Metrics code hash + hash of the simulation settings: one cache folder per pair."""
    from mmrqa_bids.artifacts import (BASE_NOISE, CALIBRATION_STEPS, CALIBRATION_TOL,
                                      GRADE_CUTS, SEVERITY_BANDS, SEVERITY_RANGES)

    sim = json.dumps([SIMULATION_VERSION, SEVERITY_RANGES, BASE_NOISE, SEVERITY_BANDS,
                      GRADE_CUTS, CALIBRATION_STEPS, CALIBRATION_TOL], sort_keys=True)
    return f"{metrics_code_hash()}-{hashlib.sha256(sim.encode()).hexdigest()[:8]}"


def metrics_code_hash() -> str:
    """Hash of the metrics package's code: cached metrics are reused only for the same code.

    The syntax trees are hashed without their docstrings (comments never reach them), so an
    edit of the documentation keeps the cache and the hash recorded in the model files. The
    trees' dump format belongs to the Python version: another version starts a new cache.
    """
    import ast

    import mmrqa_bids.metrics as metrics_pkg

    digest = hashlib.sha256()
    for path in sorted(Path(metrics_pkg.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                  ast.AsyncFunctionDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(path.name.encode())
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:12]


def measure_example(ex: Example, cache_dir: Path | None) -> dict[str, Any]:
    """``{"metrics": {...}, "degradation": d or None, "label": Good/Medium/Bad}`` of one
    example: its metrics and the grade of its measured degradation (cached by example,
    simulation settings and metrics code)."""
    from mmrqa_bids.metrics import measure

    cached = None
    if cache_dir is not None:
        cached = cache_dir / cache_key() / f"{ex.family}-{ex.key()}.json"
        if cached.is_file():
            record = json.loads(cached.read_text())
            record["metrics"] = {k: np.nan if v is None else v
                                 for k, v in record["metrics"].items()}
            return record
    suffix = "bold" if ex.family == "bold" else ex.contrast
    sim = simulate_example(ex, cache_dir)
    metrics = measure(sim.data, suffix, (ex.voxel_size,) * 3).metrics
    # A metric undefined on the example (e.g. an empty background region) is NaN, the trees'
    # missing value; strict JSON has no NaN, so the cache stores it as null.
    record = {"metrics": {k: float(v) if np.isfinite(v) else np.nan for k, v in metrics.items()},
              "degradation": sim.degradation, "label": sim.label}
    if cached is not None:
        from mmrqa_bids.io import atomic_write_json
        atomic_write_json(cached, {**record, "metrics": {
            k: v if np.isfinite(v) else None for k, v in record["metrics"].items()}})
    return record


def _measure_group(examples: Sequence[Example], cache_dir: Path | None) -> list[dict[str, Any]]:
    return [measure_example(ex, cache_dir) for ex in examples]


def build_training_set(examples: Sequence[Example], cache_dir: Path | None = None,
                       n_jobs: int = 1, verbose: bool = True) -> list[dict[str, Any]]:
    """:func:`measure_example` of every example, in order. Work is grouped by source (a head
    is built once per worker and source) and spread over ``n_jobs`` processes."""
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(f"{ex.family}:{ex.source}:{ex.split}", []).append(i)
    chunks = []
    for idx in groups.values():
        for start in range(0, len(idx), 24):
            chunks.append(idx[start:start + 24])
    t0 = time.perf_counter()
    if n_jobs > 1:
        from joblib import Parallel, delayed
        results = Parallel(n_jobs=n_jobs, verbose=0)(
            delayed(_measure_group)([examples[i] for i in chunk], cache_dir) for chunk in chunks)
    else:
        results = [_measure_group([examples[i] for i in chunk], cache_dir) for chunk in chunks]
    out: list[dict[str, Any] | None] = [None] * len(examples)
    for chunk, res in zip(chunks, results):
        for i, m in zip(chunk, res):
            out[i] = m
    if verbose:
        print(f"[train-classifier] metrics of {len(examples)} examples in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return out  # type: ignore[return-value]
