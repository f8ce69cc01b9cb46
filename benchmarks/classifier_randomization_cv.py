#!/usr/bin/env python
"""Choosing the anat domain randomisation of the metric classifier without the unseen sources.

    python benchmarks/classifier_randomization_cv.py anat NAME=JSON [NAME=JSON ...] [--draws 4]
        [--val-anatomy robex[,b0]] [--val-draws 2] [--save-models DIR]

Each candidate ``NAME=JSON`` is a family ``randomize`` dict (see
:func:`mmrqa_bids.train.metric_model.rendering._render_clean`), e.g.
``R3='{"contrast":0.5,"zoom":0.15,"random_contrast":0.5,"smooth":0.5}'``.
:mod:`classifier_source_cv` compares feature sets on the training examples themselves; a
change of randomisation changes those examples, so here every candidate is scored on the
*same* validation examples: one plain draw (the named contrast, no zoom, smoothing or
texture, as the unseen sources are rendered) of each training source, with seeds of their own
(recipe seed + 1000). For each training source s, the candidate's training examples of the
other sources (``--draws`` draws each) are fitted and the plain examples of s graded
(leave-one-source-out, LOSO); the criterion is the mean macro-F1 over the sources. LOPO
holds out a protocol (contrast and voxel size) in both renderings (mni and mnihard, nearly
the same anatomy), the stricter figure where a candidate fits plain renderings. Also
printed: the fit on every training source graded on every plain example ("all"), and the
true-Medium examples graded Good there (the error the unseen sources showed).

A candidate's JSON may also hold ``"extra_features"`` (metrics added to the family's
candidate features and to the recipe's own ``extra_features``, see
:func:`~mmrqa_bids.train.metric_model.fit.select_features`), ``"exclude_features"`` (metrics
left out, as the recipe's ``exclude_features``) and
``"model"``: model settings over the recipe's (e.g. ``{"grade_model": "ordinal",
"monotonic": "training"}``, see :func:`~mmrqa_bids.train.metric_model.fit.fit_model`), and
``"extra_train"``: a list of training sources added to the
fit (e.g. ``[{"anatomy": "mnihard", "contrast": "bold", "voxel_size": 4.0}]``); the
validation examples stay those of the recipe's sources. LOSO then still fits the other
rendering of a held-out protocol; LOPO does not (the fair figure for such a candidate).

``--val-anatomy A`` (recipe 6 on) adds a cross-anatomy validation: plain renderings of
anatomy A (e.g. ``robex``, a real subject none of the candidates' training sources is made
from) at every protocol of the recipe's training sources, ``--val-draws`` draws each, graded
by the candidate fitted on all its training examples. Sources of anatomy A in the recipe's
training list are dropped from every fit and from LOSO/LOPO (a recipe that trains on A is
then validated as one that does not). Its macro-F1 is what LOSO cannot
measure (every LOSO fold still fits the MNI anatomy it grades). The criterion is then the
mean of the LOSO macro-F1 and A's macro-F1 ("criterion" in the output), declared in
a commit before any candidate was run (the selection log in
``docs/classifier_selection_history.md`` keeps every round's rule and figures);
also printed, mean(LOPO, A), the criterion from recipe 6's round 3 on: both its figures hold
out the graded anatomy (LOSO fits the other rendering of the graded protocol, so a plain
share in training inflates it).

Several anatomies may be named (``--val-anatomy robex,b0``, recipe 6's round 7 on): each is
left out of every fit and graded as above, and the criterion is the mean of LOPO and each
anatomy's macro-F1 ("mean(LOPO, A, B)"), so that no single validation head decides.

``--save-models DIR`` writes each candidate's fit on all its training examples to
``DIR/NAME/`` beside a copy of the other family's shipped model, a ``--model`` folder for the
classifier grader (e.g. for ``benchmarks/classifier_real_scans.py --model-dir DIR/NAME``).

The held-out "unseen" sources take no part. Metrics come from the trainer's cache.
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


def candidate(recipe: dict, family: str, randomize: dict, draws: int,
              extra_train: list | None = None) -> dict:
    """The recipe with ``randomize`` and ``draws`` training draws for every training source,
    plus the training sources ``extra_train`` (fitted only: the validation examples stay
    those of the recipe's own training sources)."""
    out = copy.deepcopy(recipe)
    cfg = out[family]
    cfg["randomize"] = randomize
    cfg["draws"] = {**cfg["draws"], "train": draws}
    cfg["train"] = cfg["train"] + copy.deepcopy(list(extra_train or []))
    for src in cfg["train"]:
        src.pop("draws", None)
    return out


def validation_recipe(recipe: dict, family: str, anatomy: str | None = None,
                      draws: int = 1) -> dict:
    """Plain draws of each training source, as "unseen" examples of a recipe seeded apart;
    with ``anatomy``, of each training protocol (contrast, voxel size) rendered on that
    anatomy instead (seeded apart again)."""
    from mmrqa_bids.train.metric_model.recipe import held_out_recipe

    sources = recipe[family]["train"]
    if anatomy is not None:
        protocols = sorted({(s["contrast"], float(s["voxel_size"])) for s in sources})
        sources = [{"anatomy": anatomy, "contrast": c, "voxel_size": v} for c, v in protocols]
    return held_out_recipe(recipe, family, sources, 1000 if anatomy is None else 2000, draws)


def grade_rows(doc: dict, rows: list) -> list:
    """Most likely grade of each metric row under a model file's content."""
    from mmrqa_bids.grading.base import LABELS
    from mmrqa_bids.grading.classifier import MetricModel, metric_matrix

    model = MetricModel.from_dict(doc)
    p = model.grade.predict_proba(metric_matrix(rows, model.features))
    return [LABELS[k] for k in p.argmax(axis=1)]


def save_candidate(doc: dict, family: str, folder: Path) -> None:
    """``doc`` as the family's model file in ``folder``, with the shipped model of the other
    family beside it."""
    import shutil

    from mmrqa_bids.grading.classifier import MODEL_FILES
    from mmrqa_bids.resources import data_dir
    from mmrqa_bids.train.metric_model.export import save_model

    save_model(doc, folder)
    for other, name in MODEL_FILES.items():
        if other != family:
            shutil.copyfile(data_dir() / name, folder / name)


def main(argv=None) -> int:
    from mmrqa_bids.train.metric_model.fit import evaluate_model, fit_model, select_features
    from mmrqa_bids.train.metric_model.measuring import build_training_set
    from mmrqa_bids.train.metric_model.recipe import DEFAULT_RECIPE, family_params, plan_examples

    argv = list(sys.argv[1:] if argv is None else argv)
    opts = {"--draws": "4", "--val-anatomy": "", "--val-draws": "2", "--save-models": ""}
    for flag in opts:
        if flag in argv:
            i = argv.index(flag)
            opts[flag] = argv[i + 1]
            del argv[i:i + 2]
    draws = int(opts["--draws"])
    val_anatomies = [a for a in opts["--val-anatomy"].split(",") if a]
    family, specs = argv[0], argv[1:]
    cache = Path(os.environ.get("CV_CACHE", REPO / ".cache" / "classifier-metrics"))
    jobs = int(os.environ.get("CV_JOBS", "2"))
    base = copy.deepcopy(DEFAULT_RECIPE)
    # Leave the validation anatomies out of every fit (and of LOSO/LOPO).
    base[family]["train"] = [s for s in base[family]["train"]
                             if s["anatomy"] not in val_anatomies]
    params = {**family_params(base, family), **json.loads(os.environ.get("CV_PARAMS", "{}"))}
    excluded = set(base[family].get("exclude_features", ()))

    val = [e for e in plan_examples(validation_recipe(base, family), family)
           if e.split == "unseen"]
    vrec = build_training_set(val, cache_dir=cache, n_jobs=jobs, verbose=False)
    vrows = [r["metrics"] for r in vrec]
    vlab = [r.get("label") or e.label for r, e in zip(vrec, val)]
    vsrc = np.array([e.source for e in val])
    cross_val = {}  # anatomy -> (metric rows, labels)
    for anatomy in val_anatomies:
        xval = [e for e in plan_examples(validation_recipe(base, family, anatomy,
                                                           int(opts["--val-draws"])), family)
                if e.split == "unseen"]
        xrec = build_training_set(xval, cache_dir=cache, n_jobs=jobs, verbose=False)
        cross_val[anatomy] = ([r["metrics"] for r in xrec],
                              [r.get("label") or e.label for r, e in zip(xrec, xval)])
    print(f"{family}: {len(val)} plain validation examples"
          + "".join(f" + {len(v[1])} of {a}" for a, v in cross_val.items())
          + f", {draws} training draws per source, params {params}", flush=True)
    for spec in specs:
        name, randomize = spec.split("=", 1)
        randomize = json.loads(randomize)
        extra = randomize.pop("extra_train", [])
        # the recipe's own extra features (recipe 7 on), then the candidate's
        extra_features = list(dict.fromkeys(list(base[family].get("extra_features", []))
                                            + randomize.pop("extra_features", [])))
        dropped = excluded | set(randomize.pop("exclude_features", []))
        cand_params = {**params, **randomize.pop("model", {})}
        t0 = time.time()
        ex = [e for e in plan_examples(candidate(base, family, randomize, draws, extra),
                                       family) if e.split == "train"]
        rec = build_training_set(ex, cache_dir=cache, n_jobs=jobs, verbose=False)
        rows = [r["metrics"] for r in rec]
        labels = [r.get("label") or e.label for r, e in zip(rec, ex)]
        src = np.array([e.source for e in ex])
        feats = [f for f in select_features(family, rows, extra_features) if f not in dropped]

        def fit_eval(train_i, test_i, predictions=False):
            doc = fit_model(family, [rows[i] for i in train_i], [labels[i] for i in train_i],
                            [ex[i].artifact_label for i in train_i],
                            [ex[i].severity == "none" for i in train_i],
                            params=cand_params, seed=0, features=feats)
            res = evaluate_model(doc, [vrows[i] for i in test_i], [vlab[i] for i in test_i])
            if not predictions:
                return res
            return res, grade_rows(doc, [vrows[i] for i in test_i]), doc

        loso = []
        for s in sorted(set(vsrc)):
            e = fit_eval(np.where(src != s)[0], np.where(vsrc == s)[0])
            loso.append((s, e["accuracy"], e["macro_f1"]))
        # Stricter: hold out a protocol (contrast + voxel size) in both renderings, so that
        # no near-copy of the graded anatomy (mni vs mnihard) is fitted.
        proto = np.array([f"{e.contrast}-{e.voxel_size:g}mm" for e in ex])
        vproto = np.array([f"{e.contrast}-{e.voxel_size:g}mm" for e in val])
        lopo = []
        for s in sorted(set(vproto)):
            e = fit_eval(np.where(proto != s)[0], np.where(vproto == s)[0])
            lopo.append((s, e["accuracy"], e["macro_f1"]))
        every, pred, doc = fit_eval(np.arange(len(ex)), np.arange(len(val)), predictions=True)
        cross = ""
        loso_f1 = float(np.mean([x[2] for x in loso]))
        lopo_f1 = float(np.mean([x[2] for x in lopo]))
        xf1 = {}
        for anatomy, (xrows, xlab) in cross_val.items():
            xe = evaluate_model(doc, xrows, xlab)  # the fit on every training example
            xf1[anatomy] = xe["macro_f1"]
            cross += (f" | {anatomy} acc {xe['accuracy']:.3f} macro-F1 {xe['macro_f1']:.3f} "
                      f"conf {np.array(xe['confusion']).tolist()}")
        if len(xf1) == 1:
            (anatomy, f1), = xf1.items()
            cross += (f" | criterion {(loso_f1 + f1) / 2:.3f}"
                      f" | mean(LOPO, {anatomy}) {(lopo_f1 + f1) / 2:.3f}")
        elif xf1:
            cross += (f" | mean(LOPO, {', '.join(xf1)}) "
                      f"{np.mean([lopo_f1, *xf1.values()]):.3f}")
        if opts["--save-models"]:
            save_candidate(doc, family, Path(opts["--save-models"]) / name)
        conf = np.array(every["confusion"])
        missed = {}
        for e, truth, p in zip(val, vlab, pred):
            if truth != "Good" and p == "Good":
                missed[e.artifact] = missed.get(e.artifact, 0) + 1
        print(f"{name}: LOSO mean acc {np.mean([x[1] for x in loso]):.3f} macro-F1 "
              f"{np.mean([x[2] for x in loso]):.3f} | "
              + " ".join(f"{s}:{m:.2f}" for s, _, m in loso)
              + f" | LOPO mean acc {np.mean([x[1] for x in lopo]):.3f} macro-F1 "
              f"{np.mean([x[2] for x in lopo]):.3f} ("
              + " ".join(f"{s}:{m:.2f}" for s, _, m in lopo) + ")"
              + f" | all acc {every['accuracy']:.3f} macro-F1 {every['macro_f1']:.3f} "
              f"M->G {conf[1, 0]}/{conf[1].sum()} conf {conf.tolist()} graded Good though "
              f"degraded: {missed}"
              + cross + f"  ({len(ex)} ex, {time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
