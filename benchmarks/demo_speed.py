"""Time each step of ``make demo`` (the same three commands as the Makefile), and where the
participant level's time goes.

    python benchmarks/demo_speed.py [--dir /tmp/mmrqa-demo-speed] [--nprocs 2] [--keep]
                                    [--compare OTHER_DEMO_DIR]

Steps: the demo BIDS dataset (``python -m mmrqa_bids.testing.demo_dataset``), the participant
level (``mmrqa BIDS OUT participant --nprocs 2 -w WORK``) and the group level
(``mmrqa BIDS OUT group``), each in a fresh interpreter as ``make demo`` runs them. Then, from
the run records the participant level leaves in its work folder, the summed per-run time of
measuring and of rendering the mosaics, and the time to import the CLI's modules. Issue #24's
target: the whole demo in under a minute. The load average is printed with every figure (the
machine may be shared).

``--compare DIR``: check that this demo's outputs equal those of another demo folder (grades,
probabilities, metrics and narratives of every run JSON, and the group TSVs), ignoring
provenance times, paths and durations: a speed-up must not change an output.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Keys whose values differ between two identical runs (times, durations, hosts, paths).
VOLATILE = {"timestamp", "started", "finished", "duration_s", "timings", "date", "host",
            "elapsed_s", "work_dir", "output_dir", "bids_dir", "cwd", "path"}


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: The Makefile's DEMO_MALLOC, which its demo dataset step runs under.
DEMO_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296",
               "MALLOC_TOP_PAD_": "536870912"}


def step(label: str, cmd: list[str], extra_env: dict[str, str] | None = None
         ) -> tuple[float, float]:
    """(wall, CPU) seconds of one command; CPU is user + system time of the command and of
    the processes it waited for (its workers), which the machine's load inflates less."""
    # this checkout's code, also for `mmrqa`
    env = {**os.environ, **(extra_env or {}), "PYTHONPATH": str(REPO)}
    t0, c0 = time.perf_counter(), cpu_children()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_children() - c0
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    print(f"{label:<28s} wall {wall:6.1f} s   CPU {cpu:6.1f} s   ({load()})", flush=True)
    return wall, cpu


def record_times(work: Path) -> dict[str, float]:
    """Summed measure / mosaics seconds over the run records in the work folder."""
    sums: dict[str, float] = {}
    for path in work.rglob("*.json"):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("timings"), dict) and "run" in rec:
            for key, value in rec["timings"].items():
                sums[key] = sums.get(key, 0.0) + float(value)
    return sums


def strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def outputs(root: Path) -> dict[str, Any]:
    """Run JSONs (provenance dropped) and group TSVs of a demo's derivatives folder
    (``DEMO/bids/derivatives/mmrqa``), with the demo folder's path written as ``<demo>``."""
    found: dict[str, Any] = {}
    demo = str(root.parents[2])
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.suffix == ".json" and rel.startswith("sub-"):
            doc = json.loads(path.read_text().replace(demo, "<demo>"))
            doc.pop("provenance", None)
            found[rel] = strip(doc)
        elif path.suffix == ".tsv":
            found[rel] = path.read_text().replace(demo, "<demo>")
        elif path.is_file() and not rel.startswith("logs"):
            found[rel] = None  # listed only
    return found


def compare(a: Path, b: Path) -> int:
    oa, ob = outputs(a), outputs(b)
    if oa.keys() != ob.keys():
        print(f"file listings differ: only here {sorted(oa.keys() - ob.keys())[:5]}, only "
              f"there {sorted(ob.keys() - oa.keys())[:5]}")
        return 1
    diff = [k for k in oa if oa[k] != ob[k]]
    print(f"outputs compared with {b}: {len(oa)} files, {len(diff)} differ"
          + (f": {diff[:5]}" if diff else " (grades, metrics, narratives, group TSVs equal)"))
    return 1 if diff else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mmrqa-demo-speed"))
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the demo folder")
    parser.add_argument("--compare", type=Path, help="another demo folder to compare with")
    parser.add_argument("--compare-only", action="store_true",
                        help="compare --dir's existing outputs with --compare's, run nothing")
    args = parser.parse_args(argv)
    if args.compare_only:
        sub = Path("bids") / "derivatives" / "mmrqa"
        return compare(args.dir / sub, args.compare / sub)
    shutil.rmtree(args.dir, ignore_errors=True)
    bids, work = args.dir / "bids", args.dir / "work"
    out = bids / "derivatives" / "mmrqa"
    py, mmrqa = sys.executable, str(Path(sys.executable).parent / "mmrqa")
    print(f"make demo, step by step ({load()} at start)")
    steps = [step("demo dataset", [py, "-m", "mmrqa_bids.testing.demo_dataset", str(bids)],
                  DEMO_MALLOC),
             step("participant level", [mmrqa, str(bids), str(out), "participant",
                                        "--nprocs", str(args.nprocs), "-w", str(work)]),
             step("group level", [mmrqa, str(bids), str(out), "group"])]
    print(f"{'total':<28s} wall {sum(w for w, _ in steps):6.1f} s   "
          f"CPU {sum(c for _, c in steps):6.1f} s   (target: wall < 60 s)")
    sums = record_times(work)
    n = len(list(out.rglob("sub-*/**/*.json")))
    print(f"participant level, summed over {n} runs: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(sums.items())))
    step("import the CLI (no work)", [py, "-c", "import mmrqa_bids.cli.run as r; "
                                      "r._configure_logging(0)"])
    rc = compare(out, args.compare / "bids" / "derivatives" / "mmrqa") if args.compare else 0
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
