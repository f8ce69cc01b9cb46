#!/usr/bin/env python
"""Grouped cross-validation across the *training* sources of the metric classifier.

    python benchmarks/classifier_source_cv.py anat [R2:0 R3:0 R3:3 ...]
    python benchmarks/classifier_source_cv.py bold R2:0 R3:0 R3:3

How the recipe-3 choices were made (the "unseen" sources take no part). Examples are the
"train" split of the candidate recipe: :data:`~mmrqa_bids.train.metric_model.recipe.DEFAULT_RECIPE`,
whose bold family gets the 8 hard-label ("mnihard") draws per voxel size that anat has.
Configurations ``NAME:K``: ``R2`` fits on the template ("mni") sources only, ``R3`` on mni and
mnihard; ``K`` drops the K metrics whose clean values move most between the two renderings
(|median difference| / IQR over the clean examples). Printed per configuration:

* LOSO: each training source (anatomy, contrast, voxel size) held out once, fit on the
  others, accuracy and macro-F1 on the held-out one; the mean macro-F1 is the criterion;
* LOAO: one rendering held out (fit on the other), a proxy of an unseen anatomy.

Metrics come from the trainer's cache (``--cache``; computed there when missing).
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NIPYPE_NO_ET", "1")


def candidate_recipe() -> dict:
    """DEFAULT_RECIPE with the bold family's recipe-3 candidate sources."""
    from mmrqa_bids.train.metric_model.recipe import DEFAULT_RECIPE

    recipe = copy.deepcopy(DEFAULT_RECIPE)
    if not any(s["anatomy"] == "mnihard" for s in recipe["bold"]["train"]):
        recipe["bold"]["train"] += [{"anatomy": "mnihard", "contrast": "bold", "voxel_size": v,
                                     "draws": {"train": 8}} for v in (4.0, 5.0)]
    return recipe


def main(argv=None) -> int:
    from mmrqa_bids.train.metric_model.fit import evaluate_model, fit_model, select_features
    from mmrqa_bids.train.metric_model.measuring import build_training_set
    from mmrqa_bids.train.metric_model.recipe import plan_examples

    argv = list(sys.argv[1:] if argv is None else argv)
    fam = argv[0]
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in argv[1:]] or \
        [("R2", 0), ("R3", 0), ("R3", 3), ("R3", 6), ("R3", 10)]
    recipe = candidate_recipe()
    params = {**recipe["model"], **json.loads(os.environ.get("CV_PARAMS", "{}"))}
    cache = Path(os.environ.get("CV_CACHE", REPO / ".cache" / "classifier-metrics"))
    ex = [e for e in plan_examples(recipe, fam) if e.split == "train"]
    rec = build_training_set(ex, cache_dir=cache, n_jobs=2, verbose=False)
    rows = [q["metrics"] for q in rec]
    labels = [q.get("label") or e.label for q, e in zip(rec, ex)]
    feats = select_features(fam, [rows[i] for i, e in enumerate(ex) if e.anatomy == "mni"])
    src = np.array([e.source for e in ex])
    anat = np.array([e.anatomy for e in ex])
    clean = np.array([e.severity == "none" for e in ex])
    shift = {}
    for f in feats:
        v = np.array([rw.get(f, np.nan) for rw in rows], float)
        a, b = v[clean & (anat == "mni")], v[clean & (anat == "mnihard")]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        iqr = np.subtract(*np.percentile(np.r_[a, b], [75, 25])) + 1e-12
        shift[f] = abs(np.median(a) - np.median(b)) / iqr
    ranked = sorted(feats, key=lambda f: -shift[f])
    print(f"{fam}: {len(ex)} training examples, params {params}")
    print("clean shift mni vs mnihard:", ", ".join(f"{f} {shift[f]:.2f}" for f in ranked[:12]))

    def fit_eval(train_i, test_i, features):
        doc = fit_model(fam, [rows[i] for i in train_i], [labels[i] for i in train_i],
                        [ex[i].artifact_label for i in train_i],
                        [ex[i].severity == "none" for i in train_i],
                        params=params, seed=0, features=features)
        return evaluate_model(doc, [rows[i] for i in test_i], [labels[i] for i in test_i])

    for config, k in configs:
        t0 = time.time()
        features = [f for f in feats if f not in set(ranked[:k])]
        allowed = np.ones(len(ex), bool) if config == "R3" else (anat == "mni")
        loso = []
        for s in sorted(set(src)):
            e = fit_eval(np.where(allowed & (src != s))[0], np.where(src == s)[0], features)
            loso.append((s, e["accuracy"], e["macro_f1"]))
        loao = []
        for a in ("mni", "mnihard"):
            tr = np.where(allowed & (anat != a))[0]
            if len(tr):
                e = fit_eval(tr, np.where(anat == a)[0], features)
                loao.append((a, e["accuracy"], e["macro_f1"]))
        print(f"{config} drop{k:>2}: LOSO mean acc {np.mean([x[1] for x in loso]):.3f} "
              f"macro-F1 {np.mean([x[2] for x in loso]):.3f} | "
              + " ".join(f"{s}:{m:.2f}" for s, _, m in loso)
              + " | LOAO " + " ".join(f"->{a}:{acc:.3f}/{m:.3f}" for a, acc, m in loao)
              + f"  ({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
