#!/usr/bin/env python
"""Seen vs unseen-anatomy accuracy of the shipped metric classifier.

    python benchmarks/classifier_unseen_anatomy.py [--model-dir mmrqa_bids/data] [--jobs 2]
                                                   [--fresh epi] [--family bold]

Re-creates the evaluation examples of the model's own recipe (stored in the model file):
"seen" = fresh draws (new seeds) of the training sources; "unseen" = whole sources never
used in training (another subject's anatomy from nipype's test data, an unseen contrast and
voxel size). Labels are the grades of each example's measured degradation (relative RMS
error against its clean image, :mod:`mmrqa_bids.artifacts`). Computes their metrics with the current metrics code (cached in --cache), grades
them with the shipped model exactly as the participant level does, and prints accuracy,
macro-F1, balanced accuracy, ECE, confusion matrices and per-source accuracy side by side.

``--fresh ANATOMY`` adds a third column: the same evaluation on an anatomy that took no part
in training or in any model choice (``epi``, nibabel's fMRI subject, held out from recipe 9
on), rendered at :data:`FRESH_PROTOCOLS`, 2 draws each, seeded apart from the recipe's
other examples. It gives a figure that repeated looks at the unseen sources cannot have
flattered (see the selection log in ``docs/classifier_selection_history.md``).
``fsl`` (fslpy's fMRI subject, 4 x 4 x 6 mm) is a second fresh source, for bold only
(``--fresh fsl --family bold``): its voxels are too coarse for the 3 mm anatomical protocols.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NIPYPE_NO_ET", "1")

#: Contrast and voxel size of each fresh-source protocol, per family.
FRESH_PROTOCOLS = {"anat": (("T1w", 3.0), ("T2w", 3.0)), "bold": (("bold", 4.0), ("bold", 5.0))}


def fresh_recipe(recipe: dict, family: str, anatomy: str) -> dict:
    """``recipe`` with ``anatomy`` at :data:`FRESH_PROTOCOLS` as its only (unseen) sources."""
    from mmrqa_bids.train.metric_model.recipe import held_out_recipe

    return held_out_recipe(recipe, family, [{"anatomy": anatomy, "contrast": c, "voxel_size": v}
                                            for c, v in FRESH_PROTOCOLS[family]], 3000, 2)


def main(argv=None) -> int:
    from mmrqa_bids.evaluation import evaluate
    from mmrqa_bids.grading.base import LABELS, GradeRequest
    from mmrqa_bids.grading.classifier import ClassifierGrader, model_paths
    from mmrqa_bids.train.metric_model.measuring import build_training_set
    from mmrqa_bids.train.metric_model.recipe import plan_examples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "classifier-metrics")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fresh", default=None, metavar="ANATOMY",
                        help="also grade this held-out anatomy (e.g. epi)")
    parser.add_argument("--family", choices=("anat", "bold"), default=None,
                        help="evaluate this family's model only (default: both)")
    args = parser.parse_args(argv)

    grader = ClassifierGrader.from_paths(model_paths(str(args.model_dir) if args.model_dir
                                                     else None))
    for family, model in grader.models.items():
        if args.family and family != args.family:
            continue
        recipe = {**model.recipe["recipe"]}
        examples = [ex for ex in plan_examples(recipe, family) if ex.split != "train"]
        splits = ["seen", "unseen"]
        if args.fresh:
            splits.append("fresh")
            examples += [dataclasses.replace(ex, split="fresh") for ex in plan_examples(
                fresh_recipe(recipe, family, args.fresh), family) if ex.split == "unseen"]
        t0 = time.perf_counter()
        records = build_training_set(examples, cache_dir=args.cache, n_jobs=args.jobs,
                                     verbose=False)
        rows = [r["metrics"] for r in records]
        truths = [r["label"] for r in records]  # the grade of the measured degradation
        suffix = "bold" if family == "bold" else "T1w"
        t1 = time.perf_counter()
        grades = grader.grade([GradeRequest(f"ex{i}", suffix, m) for i, m in enumerate(rows)])
        grade_ms = (time.perf_counter() - t1) / len(rows) * 1000
        print(f"\n== {family}: {model.model_id}  ({len(examples)} examples, metrics "
              f"{time.perf_counter() - t0:.0f} s, grading {grade_ms:.2f} ms/run)")
        print(f"features: {', '.join(model.features)}")
        results, per_source = {}, {}
        for split in splits:
            idx = [i for i, ex in enumerate(examples) if ex.split == split]
            truth = [truths[i] for i in idx]
            pred = [grades[i].label for i in idx]
            results[split] = evaluate(truth, pred, [grades[i].confidence for i in idx])
            degraded = [i for i in idx if examples[i].severity in ("moderate", "severe")]
            results[split]["artifact"] = sum(
                bool(grades[i].artifacts) and grades[i].artifacts[0]["type"] == examples[i].artifact
                for i in degraded) / max(len(degraded), 1)
            for i in idx:
                key = (split, examples[i].source)
                hit = per_source.setdefault(key, [0, 0])
                hit[0] += grades[i].label == truths[i]
                hit[1] += 1
        print(f"{'':30}" + "".join(f"{s:>10}" for s in splits))
        for key, name in (("n", "examples"), ("accuracy", "accuracy"), ("macro_f1", "macro-F1"),
                          ("balanced_accuracy", "balanced accuracy"), ("ece", "ECE"),
                          ("artifact", "artifact type top-1 (M/B)")):
            cells = "".join(f"{results[s][key]:>10d}" if key == "n" else
                            f"{results[s][key]:>10.3f}" for s in splits)
            print(f"{name:<30}{cells}")
            if key in ("accuracy", "macro_f1"):  # runs as independent: a lower bound
                print(f"{'  95% bootstrap interval':<30}" + "".join(
                    "{:>10}".format("{:.2f}-{:.2f}".format(*results[s]["ci95"][key]))
                    for s in splits))
        for split in splits:
            print(f"confusion {split:<7} rows=truth {'/'.join(LABELS)}: {results[split]['confusion']}")
        print("accuracy per source:")
        for (split, source), (ok, n) in sorted(per_source.items()):
            print(f"  {split:<7}{source:<24}{ok / n:>7.3f}  (n={n})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
