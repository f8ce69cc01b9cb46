"""The generated study of the cohort command-line tests: a T1w cohort of 7 runs (more than
``MIN_COHORT_SIZE``; ``sub-05`` degraded by motion) and two T2w runs, graded first by a
per-subject participant run, as a SLURM array would (absolute grades, no join step).

Test modules import it (no conftest.py here: a second module named ``conftest`` would
shadow the top-level one)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE
from mmrqa_bids.testing.cli import run_cli
from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

N_T1W = max(MIN_COHORT_SIZE + 1, 7)
assert 2 < MIN_COHORT_SIZE  # the two T2w runs stay a cohort too small
DEGRADED = "sub-05_T1w"


def study_plans() -> list[RunPlan]:
    plans = [RunPlan(f"{i:02d}", "T1w", noise=0.010 + 0.002 * (i % 3), gain=900.0 + 30 * i)
             for i in range(1, N_T1W + 1)]
    plans[4] = RunPlan("05", "T1w", artifact="motion", severity=1.0, noise=0.05)
    return plans + [RunPlan("01", "T2w"), RunPlan("02", "T2w")]


def per_subject_study(root: Path, out_name: str
                      ) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The study built under ``root/bids`` and its T1w participants run through
    ``participant --participant-label`` into ``root/out_name`` (the invocation asserted to
    exit 0). Returns the BIDS folder, the output folder and the participant invocation."""
    bids, out = root / "bids", root / out_name
    build_dataset(bids, study_plans(), voxel_size=3.0, seed=5)
    labels = [f"{i:02d}" for i in range(1, N_T1W + 1)]
    part = run_cli(bids, out, "participant", "--participant-label", *labels, "--nprocs", "2",
                   "-w", root / "work")
    assert part.returncode == 0, part.stdout + part.stderr
    return bids, out, part


def assert_group_rerun_changes_nothing(bids: Path, out: Path) -> None:
    """A group level run again on ``out`` exits 0 and rewrites none of the run JSONs, group
    tables, cohort references or reports (the group level is idempotent)."""
    watched = sorted(out.glob("sub-*/anat/*.json")) + sorted(out.glob("group_*.tsv")) + \
        sorted(out.glob("cohorts/*.json")) + sorted(out.glob("sub-*.html"))
    before = {p: p.read_bytes() for p in watched}
    again = run_cli(bids, out, "group")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [str(p.relative_to(out)) for p in watched if p.read_bytes() != before[p]] == []
