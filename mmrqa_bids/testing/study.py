"""A small study-like BIDS dataset with a rater's grades: many participants on one protocol,
most runs clean, some degraded the way a rater grades Medium or Bad, and a ratings TSV in the
documented format with grades only (no ``artifact`` column), as a rater who only grades
writes it. For the tests of the ``train`` level on a site's own ratings.

    python -m mmrqa_bids.testing.study OUT_DIR [--per-grade 14] [--bold 4]

Built on :mod:`mmrqa_bids.testing.demo_dataset` (MNI152 head, Rician noise, k-space motion,
ghost, blur), with one head rendering shared by every run and per-participant gain and
noise floor (scanner and subject variation).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from mmrqa_bids.testing.demo_dataset import RunPlan, bold_series, degrade, write_run
from mmrqa_bids.phantom import load_head

#: How each grade is made (cycled over the participants of that grade): demo-dataset
#: degradations a rater would call Medium (visible, usable) or Bad (unusable).
GRADE_RECIPES: dict[str, tuple[dict, ...]] = {
    "Good": ({},),
    "Medium": ({"noise": 0.05}, {"artifact": "blur", "severity": 0.4},
               {"artifact": "motion", "severity": 0.35}),
    "Bad": ({"artifact": "motion", "severity": 1.0, "noise": 0.03},
            {"artifact": "ghost", "severity": 0.8}, {"noise": 0.12}),
}


def study_plans(per_grade: dict[str, int], n_bold: int = 0, bold_bad: int = 1,
                seed: int = 0) -> list[tuple[RunPlan, str]]:
    """(run plan, rating) of every run: ``per_grade[g]`` T1w participants of grade g, then
    ``n_bold`` bold participants (the last ``bold_bad`` of them with a head jerk, Bad). Clean
    runs get a noise floor U(0.010, 0.016) and a gain U(700, 1300), seeded."""
    rng = np.random.default_rng(seed)
    out: list[tuple[RunPlan, str]] = []
    k = 0
    for grade in ("Good", "Medium", "Bad"):
        for i in range(per_grade.get(grade, 0)):
            k += 1
            plan = RunPlan(f"{k:02d}", "T1w", noise=float(rng.uniform(0.010, 0.016)),
                           gain=float(rng.uniform(700, 1300)))
            out.append((replace(plan, **GRADE_RECIPES[grade][i % len(GRADE_RECIPES[grade])]),
                        grade))
    for i in range(n_bold):
        k += 1
        bad = i >= n_bold - bold_bad
        plan = RunPlan(f"{k:02d}", "bold", task="rest", n_volumes=10,
                       gain=float(rng.uniform(700, 1300)),
                       **({"artifact": "motion", "severity": 1.0} if bad else {}))
        out.append((plan, "Bad" if bad else "Good"))
    return out


def build_study(root: str | Path, plans: Sequence[tuple[RunPlan, str]],
                voxel_size: float = 4.0, seed: int = 0) -> Path:
    """Write the BIDS dataset under ``root`` and ``<root>/../ratings.tsv`` (grades only);
    returns the ratings path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "mmrqa study-like test dataset", "BIDSVersion": "1.9.0",
         "DatasetType": "raw"}, indent=2))
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"sub-{p.subject}\n" for p, _ in plans))
    head = load_head(voxel_size)  # one rendering for every run (anat and bold)
    for i, (plan, _) in enumerate(plans):
        rng = np.random.default_rng(seed + i)
        if plan.suffix == "bold":
            data = bold_series(head.render("bold"), plan, rng)
        else:
            data = degrade(head.render(plan.suffix), plan, rng)
        write_run(root, plan, data, head.affine)
    tsv = root.parent / "ratings.tsv"  # the documented columns, no artifact column
    tsv.write_text("participant_id\tsession_id\trun_id\tsuffix\trating\n" + "".join(
        f"sub-{p.subject}\tn/a\tn/a\t{p.suffix}\t{rating}\n" for p, rating in plans))
    return tsv


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--per-grade", type=int, default=14, help="T1w participants per grade")
    ap.add_argument("--bold", type=int, default=4, help="bold participants")
    args = ap.parse_args(argv)
    n = args.per_grade
    tsv = build_study(args.out_dir / "bids", study_plans({"Good": n, "Medium": n, "Bad": n},
                                                        args.bold))
    print(f"wrote {args.out_dir / 'bids'} and {tsv}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
