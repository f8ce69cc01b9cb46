"""The whole group level (``mmrqa BIDS OUT group``, through the CLI's own ``main``) on N
synthetic run JSONs: cohorts, references, dataset grades, every run JSON rewritten, the group
TSV, and (unless --no-reports) the group report and the individual reports' grade injection.

    python benchmarks/group_level_speed.py [--runs 1000] [--cohort-size 20 250] [--repeats 3]

The run JSONs carry the anatomical metrics (each near 1 with a 5% spread, a tenth of the runs
shifted as if degraded) and a recorded protocol, so nothing but the output folder is read.
Each configuration is timed from a fresh copy of the participant-level outputs (the copy is
not timed), median of ``--repeats`` (the versions alternating), without and with the
reports, for two versions side by side:

- ``before``: the leave-one-out statistics as a loop over rows calling ``column_stats`` (the
  code before #24's speed-up) and the run JSONs written one at a time;
- ``after``: :func:`mmrqa_bids.cohorts.reference.leave_one_out_column_stats` and the writes
  overlapped (``mmrqa_bids.group.WRITE_THREADS``).

Cohorts of up to ``LOO_MAX_SIZE`` (64) runs compare each member with the others only
(leave-one-out), so 50 cohorts of 20 is the group level's slowest case; 4 of 250 use one
reference per cohort. Also printed: a rerun (which must leave every file as it was) and one
call of the real command line in a fresh interpreter (start-up and imports included), with
the load average. Issue #24's target: 1,000 runs in under 10 s.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import mmrqa_bids.cohorts.relative as relative  # noqa: E402
import mmrqa_bids.group as group  # noqa: E402
from mmrqa_bids.cli.run import main as cli_main  # noqa: E402
from mmrqa_bids.cohorts.reference import (column_stats,  # noqa: E402
                                          leave_one_out_column_stats)
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
               "grade": {"label": "Medium",
                         "probabilities": {"Good": 0.3, "Medium": 0.5, "Bad": 0.2},
                         "confidence": 0.5, "outside_training": []},
               "artifacts": [{"type": "noise", "likelihood": 0.4}],
               "narrative": {"classification": "c", "artifact": "a", "analysis": "n"},
               "provenance": {"backend": "classifier", "model_id": "m"}}
        path = out / f"sub-{i:05d}" / "anat" / f"{name}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(doc))


def loop_leave_one_out(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The leave-one-out statistics as they were computed before: one column_stats per row."""
    centre, spread = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
    for i in range(x.shape[0]):
        centre[i], spread[i] = column_stats(np.delete(x, i, axis=0))
    return centre, spread


VERSIONS = {"before": (loop_leave_one_out, 1),
            "after": (leave_one_out_column_stats, group.WRITE_THREADS)}


@contextlib.contextmanager
def version(name: str):
    loo, threads = VERSIONS[name]
    saved = relative.leave_one_out_stats, group.WRITE_THREADS
    relative.leave_one_out_stats, group.WRITE_THREADS = loo, threads
    try:
        yield
    finally:
        relative.leave_one_out_stats, group.WRITE_THREADS = saved


def group_args(bids: Path, out: Path, reports: bool) -> list[str]:
    return [str(bids), str(out), "group"] + ([] if reports else ["--no-reports"])


def timed_group(bids: Path, out: Path, reports: bool) -> float:
    """Seconds of one ``mmrqa BIDS OUT group`` in this process (console output discarded)."""
    sink = io.StringIO()
    root = logging.getLogger()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        handlers = root.handlers[:]
        rc = cli_main(group_args(bids, out, reports))
        root.handlers[:] = handlers
    elapsed = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"group level exited {rc}:\n{sink.getvalue()[-2000:]}")
    return elapsed


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cohort-size", type=int, nargs="+", default=[20, 250])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-reports", action="store_true",
                        help="time only the group level without its reports")
    parser.add_argument("--reports-only", action="store_true",
                        help="time only the group level with its reports")
    parser.add_argument("--versions", nargs="+", choices=tuple(VERSIONS),
                        default=list(VERSIONS))
    args = parser.parse_args(argv)
    print(f"{args.runs} runs, median of {args.repeats}; {load()} at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="mmrqa-group-speed-") as tmp:
        bids = Path(tmp) / "bids"
        bids.mkdir()
        (bids / "dataset_description.json").write_text(
            json.dumps({"Name": "synthetic", "BIDSVersion": "1.8.0"}))
        warm = Path(tmp) / "warm"
        write_runs(warm, 16, 16)
        timed_group(bids, warm, reports=True)  # imports and first-call costs, not timed
        for size in args.cohort_size:
            template = Path(tmp) / f"template-{size}"
            write_runs(template, args.runs, size)
            n_cohorts = -(-args.runs // size)
            for reports in ([False] if args.no_reports else [True] if args.reports_only
                            else [False, True]):
                times: dict[str, list[float]] = {name: [] for name in args.versions}
                for r in range(args.repeats):
                    # the versions alternate, so that a change of the machine's load
                    # during the benchmark does not favour one of them
                    for name in args.versions[::1 if r % 2 == 0 else -1]:
                        out = Path(tmp) / f"out-{size}-{reports}-{name}"
                        shutil.rmtree(out, ignore_errors=True)
                        shutil.copytree(template, out)
                        with version(name):
                            times[name].append(timed_group(bids, out, reports))
                name = args.versions[-1]  # a rerun on its last output folder
                out = Path(tmp) / f"out-{size}-{reports}-{name}"
                before = {p: p.read_bytes() for p in out.rglob("*.json")}
                with version(name):
                    again = timed_group(bids, out, reports)
                changed = sum(p.read_bytes() != b for p, b in before.items())
                for name in args.versions:
                    shutil.rmtree(Path(tmp) / f"out-{size}-{reports}-{name}")
                cells = "   ".join(
                    f"{name} {statistics.median(t):6.2f} s ({', '.join(f'{x:.2f}' for x in t)})"
                    for name, t in times.items())
                print(f"{n_cohorts:3d} cohort(s) of {size:4d}, "
                      f"{'with reports   ' if reports else 'without reports'}: {cells};"
                      f" rerun {again:.2f} s, JSON files changed by it: {changed}; {load()}",
                      flush=True)
        # the real command line once, in a fresh interpreter, on the current code
        out = Path(tmp) / "cli"
        shutil.copytree(Path(tmp) / f"template-{args.cohort_size[0]}", out)
        cmd = [sys.executable, "-m", "mmrqa_bids.cli.run", *group_args(bids, out, True)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(f"mmrqa BIDS OUT group (fresh interpreter, current code, reports, cohorts of "
              f"{args.cohort_size[0]}): {wall:.2f} s, exit {proc.returncode}; {load()}")
    print("target: < 10 s for 1,000 runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
