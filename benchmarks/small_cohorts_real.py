#!/usr/bin/env python
"""Small cohorts on real heads as acquired: the dataset grade at n runs against the absolute
model it replaces, on the same runs.

    python benchmarks/small_cohorts_real.py STUDY_DIR [STUDY_DIR ...] [--sizes 3 4 5 6 8]
                                            [--draws 200] [--seed 0]
                                            [--model FAMILY=PATH] [--only TEXT]

A STUDY_DIR is the ``--out`` folder of ``benchmarks/real_head_study.py`` after its
participant level (``truth.json`` and ``out/`` with every run's JSON: its metrics and the
absolute model's grade, ``grade.model_grade``). Each (folder, suffix, head) is a pool of runs
of one real head on one protocol. For every pool and cohort size n, ``--draws`` cohorts are
drawn: n runs without replacement, half of the draws all clean and half with one degraded run
(prevalence 1/n). Every member is graded against the others (leave-one-out, as the grader
does for cohorts of up to 64 runs) by the shipped cohort model, **whatever n** (the grader
itself only gives dataset grades from ``MIN_COHORT_SIZE`` runs up), and beside it the
absolute model's grade of the same run (what the grader keeps below the minimum).
``--model anat=PATH`` grades a family's cohorts with another cohort model file (a model
trained without a head, ``scripts/train_cohort_model.py --drop-source``, to hold that head
out); ``--only TEXT`` keeps the pools whose name (``folder:suffix:head``) contains TEXT.

Printed per n, pooled over pools and draws (graded runs, so a run counts once per draw it is
in): clean runs graded Good and Bad; accuracy and macro-F1 against the project's measured
labels and against the TorchIO severity truth; for the dataset grade and the absolute model.
Draws share runs, so the figures are averages over many small cohorts of few heads, not
independent samples: the number of distinct runs per pool is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NIPYPE_NO_ET", "1")

FAMILY = {"T1w": "anat", "T2w": "anat", "FLAIR": "anat", "bold": "bold"}


def study_pools(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """(folder, suffix, head) -> its runs: metrics, absolute grade, truths."""
    from benchmarks.real_head_study import run_json

    truth = json.loads((folder / "truth.json").read_text())["runs"]
    pools: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in truth:
        doc = run_json(folder / "out", t["participant_id"], t["suffix"])
        if doc is None or not isinstance(doc.get("metrics"), dict):
            continue
        grade = doc["grade"]
        absolute = grade.get("model_grade") if isinstance(grade.get("model_grade"), dict) \
            else grade
        pools[f"{folder.name}:{t['suffix']}:{t['source']}"].append({
            "metrics": doc["metrics"], "suffix": t["suffix"],
            "clean": t["truth"] == "clean", "severity_label": t["truth_label"],
            "measured_label": t["measured_label"] or "Good",
            "absolute": absolute["label"]})
    return dict(pools)


def draw(pool: Sequence[dict[str, Any]], n: int, with_degraded: bool,
         rng: np.random.Generator) -> list[dict[str, Any]] | None:
    """n runs of the pool: all clean, or n - 1 clean and one degraded; None if too few."""
    clean = [r for r in pool if r["clean"]]
    bad = [r for r in pool if not r["clean"]]
    k = 1 if with_degraded else 0
    if len(clean) < n - k or len(bad) < k:
        return None
    picks = [clean[i] for i in rng.choice(len(clean), n - k, replace=False)]
    picks += [bad[i] for i in rng.choice(len(bad), k, replace=False)]
    return picks


def dataset_grades(rows: Sequence[dict[str, Any]], family: str, model: Any = None
                   ) -> list[str]:
    """Each member's grade against the others by ``model`` (default: the shipped cohort
    model of the family), at any size >= 3 (the grader's own path without its size check)."""
    from mmrqa_bids.cohorts.relative import load_cohort_model, member_grades

    model = model or load_cohort_model(family)
    return [g.label for g in member_grades(model, [r["metrics"] for r in rows])]


def scores(truth: Sequence[str], pred: Sequence[str]) -> tuple[float, float]:
    """Accuracy and macro-F1 over the three grades (an absent one counts 0)."""
    from mmrqa_bids.evaluation import accuracy, confusion, macro_f1
    from mmrqa_bids.grading.base import LABELS

    return accuracy(list(truth), list(pred)), macro_f1(confusion(truth, pred), over=LABELS)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="+", type=Path, help="real_head_study --out folders")
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 4, 5, 6, 8])
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", action="append", default=[], metavar="FAMILY=PATH",
                    help="a cohort model file for a family instead of the shipped one")
    ap.add_argument("--only", default="", help="keep the pools whose name contains this")
    args = ap.parse_args(argv)
    from mmrqa_bids.cohorts.relative import read_model_file

    models = {}
    for spec in args.model:
        family, _, path = spec.partition("=")
        if family not in ("anat", "bold") or not path:
            ap.error(f"--model {spec!r}: expected anat=PATH or bold=PATH")
        models[family] = read_model_file(path)
    if min(args.sizes) < 3:
        ap.error("a cohort needs at least 3 runs (each member against 2 others)")
    pools: dict[str, list[dict[str, Any]]] = {}
    for folder in args.studies:
        if not (folder / "truth.json").is_file():
            print(f"{folder}: no truth.json (run benchmarks/real_head_study.py --out {folder})",
                  file=sys.stderr)
            return 2
        pools.update({k: v for k, v in study_pools(folder).items() if args.only in k})
    for name, runs in pools.items():
        print(f"pool {name}: {sum(r['clean'] for r in runs)} clean, "
              f"{sum(not r['clean'] for r in runs)} degraded runs")
    head = (f"{'n':>3} {'graded by':<10}{'runs':>7}  {'clean Good':>11} {'clean Bad':>10}  "
            f"{'acc meas':>8} {'mF1 meas':>8}  {'acc sev':>7} {'mF1 sev':>7}")
    print(f"\n{args.draws} draws per pool and size, half with one degraded run\n{head}")
    for n in args.sizes:
        rng = np.random.default_rng([args.seed, n])
        out: dict[str, list] = {"dataset": [], "absolute": []}
        rows_all: list[dict[str, Any]] = []
        for name, pool in pools.items():
            family = FAMILY.get(pool[0]["suffix"])
            if family is None:
                continue
            for d in range(args.draws):
                rows = draw(pool, n, d % 2 == 1, rng)
                if rows is None:
                    continue
                out["dataset"] += dataset_grades(rows, family, models.get(family))
                out["absolute"] += [r["absolute"] for r in rows]
                rows_all += rows
        clean = np.array([r["clean"] for r in rows_all])
        for key, pred in out.items():
            g = np.asarray(pred)
            am, fm = scores([r["measured_label"] for r in rows_all], pred)
            as_, fs = scores([r["severity_label"] for r in rows_all], pred)
            print(f"{n:>3} {key:<10}{len(pred):>7}  {np.sum((g == 'Good') & clean):>5}/"
                  f"{clean.sum():<5} {np.sum((g == 'Bad') & clean):>4}/{clean.sum():<5}  "
                  f"{am:>8.3f} {fm:>8.3f}  {as_:>7.3f} {fs:>7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
