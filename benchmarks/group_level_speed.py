"""The whole group level (``mmrqa ... group``) on N synthetic run JSONs: cohorts, references,
dataset grades, every run JSON rewritten, the group TSV, and (with --reports) the group report.

    python benchmarks/group_level_speed.py [--runs 1000] [--cohort-size 250] [--reports]

The run JSONs carry the anatomical metrics (each near 1 with a 5% spread, a tenth of the runs
shifted as if degraded) and a recorded protocol, so nothing but the output folder is read.
Issue #24's target: 1,000 runs in under 10 s. Prints the time of a first run and of a rerun
(which must leave every file as it was).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrqa_bids.group import run_group  # noqa: E402
from mmrqa_bids.metrics.names import ANAT_METRICS  # noqa: E402


def write_runs(out: Path, n_runs: int, cohort_size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n_runs):
        cohort = i // cohort_size
        name = f"sub-{i:05d}_T1w"
        shift = 6.0 if rng.random() < 0.1 else 0.0
        metrics = {m: float(1 + 0.05 * (rng.standard_normal() + shift)) for m in ANAT_METRICS}
        grid = [1.0, 1.0, 1.0 + 0.1 * cohort]
        doc = {"bids_meta": {"bids_name": name, "suffix": "T1w", "datatype": "anat",
                             "subject": f"{i:05d}", "shape": [176, 256, 256], "voxel_size_mm": grid,
                             "protocol": {"suffix": "T1w", "voxel_size_mm": grid,
                                          "matrix": [176, 256, 256]}},
               "metrics": metrics,
               "grade": {"label": "Medium", "probabilities": {"Good": 0.3, "Medium": 0.5, "Bad": 0.2},
                         "confidence": 0.5, "outside_training": []},
               "artifacts": [{"type": "noise", "likelihood": 0.4}],
               "narrative": {"classification": "c", "artifact": "a", "analysis": "n"},
               "provenance": {"backend": "classifier", "model_id": "m"}}
        path = out / f"sub-{i:05d}" / "anat" / f"{name}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(doc))


def timed_group(out: Path, reports: bool) -> float:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # one line per missing individual report
        run_group(out, ("T1w",), reports=reports)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cohort-size", type=int, default=250)
    parser.add_argument("--reports", action="store_true", help="also write the group report")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        write_runs(out, args.runs, args.cohort_size)
        first = timed_group(out, args.reports)
        before = {p: p.read_bytes() for p in out.rglob("*.json")}
        again = timed_group(out, args.reports)
        changed = sum(p.read_bytes() != b for p, b in before.items())
    n_cohorts = -(-args.runs // args.cohort_size)
    print(f"group level, {args.runs} runs in {n_cohorts} cohort(s) of {args.cohort_size}"
          f"{' with the group report' if args.reports else ''}: first {first:.2f} s, "
          f"rerun {again:.2f} s (target < 10 s); JSON files changed by the rerun: {changed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
