#!/usr/bin/env python
"""mmrqa's IQM model vs MRIQC's own classifier pipeline, trained on ABIDE, tested on DS030.

    pip install mriqc-learn
    python benchmarks/mriqc_ratings.py [--seeds 0 1 2] [--n-jobs 2] [--reselect] 2>/dev/null

(stderr: mriqc-learn's tree fits make scikit-learn repeat a UserWarning about
``delayed`` tens of thousands of times; the figures are on stdout.)

Both sides see the same data and labels per seed: ABIDE (rater_1 or rater_2, one at random
where both rated; the seed drives that pick and the models' randomness), DS030 rater_1 as the
held-out test. mmrqa: the configuration (IQM set, feature blocks, model, C, class weights,
prior step, decision rule) that ``scripts/train_mriqc_model.py`` selected by leave-one-site-out
CV on ABIDE (read from the shipped model's card), refitted on each seed's labels (a ``tuned``
rule re-tunes its thresholds on that seed's ABIDE LOSO predictions), then one DS030 score
(``mmrqa_bids.mriqc.train``); per-site blocks and the EM prior step use each DS030 site's own
unlabelled IQMs, never its ratings. ``--reselect`` redoes the whole LOSO selection per seed
(slow: 126 candidates x 17 folds).
MRIQC: the steps of ``mriqc_learn.models.production.init_pipeline()`` (drop geometry,
per-site robust scaling, site-predictability feature removal, noise-winnow feature selection,
random forest) built from mriqc-learn's own classes; the module itself cannot be imported
here (it needs ``pkg_resources``, absent from this Python), and its
``SiteCorrelationSelector`` calls ``OneHotEncoder(sparse=...)``, an argument scikit-learn
renamed to ``sparse_output``: the benchmark maps that one argument. Binary Bad-vs-rest is
fitted as in the MRIQC paper (a separate binary pipeline), 3-class on the three ratings.
Metrics: sklearn.metrics; mean (and sd) over the seeds.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

from mmrqa_bids.mriqc.model import IqmModel
from mmrqa_bids.mriqc.train import (CODES, abide_labels, chosen_candidate, confusion_ds030,
                                    evaluate_ds030, mriqc_learn_datasets, read_rated_table,
                                    scores, select_and_fit)

METRICS = (("bin_acc", "binary Bad-vs-rest accuracy"), ("bin_bacc", "binary balanced accuracy"),
           ("bin_auc", "binary ROC-AUC"), ("acc3", "3-class accuracy"),
           ("f1_3", "3-class macro-F1"), ("bacc3", "3-class balanced accuracy"))


def mriqc_pipeline():
    """The steps and settings of mriqc-learn 0.0.3 ``production.init_pipeline()``."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from mriqc_learn.models import preprocess as pp

    pp.OneHotEncoder = lambda sparse=False, **kw: OneHotEncoder(sparse_output=sparse, **kw)
    return Pipeline([
        ("drop_ft", pp.DropColumns(drop=[f"size_{ax}" for ax in "xyz"]
                                   + [f"spacing_{ax}" for ax in "xyz"])),
        ("scale", pp.SiteRobustScaler(with_centering=True, with_scaling=True, unit_variance=True)),
        ("site_pred", pp.SiteCorrelationSelector()),
        ("winnow", pp.NoiseWinnowFeatSelect(use_classifier=True)),
        ("drop_site", pp.DropColumns(drop=["site"])),
        ("rfc", RandomForestClassifier(
            bootstrap=True, class_weight=None, criterion="gini", max_depth=10,
            max_features="sqrt", max_leaf_nodes=None, min_impurity_decrease=0.0,
            min_samples_leaf=10, min_samples_split=10, min_weight_fraction_leaf=0.0,
            n_estimators=400, oob_score=True)),
    ])


def frame(table):
    import pandas as pd
    df = pd.DataFrame(table.X, columns=list(table.names))
    df["site"] = table.sites
    return df


def mriqc_run(seed: int, n_jobs: int) -> dict[str, float]:
    abide = read_rated_table(mriqc_learn_datasets() / "abide.tsv")
    ds030 = read_rated_table(mriqc_learn_datasets() / "ds030.tsv")
    y, y_test = abide_labels(abide, seed), ds030.ratings["rater_1"].astype(int)
    X, X_test = frame(abide), frame(ds030)
    fit_params = {"site_pred__n_jobs": n_jobs, "winnow__n_jobs": n_jobs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(seed)  # mriqc-learn draws from numpy's global generator
        binary = mriqc_pipeline().fit(X, (y == -1).astype(int), **fit_params)
        p_bad = binary.predict_proba(X_test)[:, list(binary.classes_).index(1)]
        np.random.seed(seed)
        three = mriqc_pipeline().fit(X, y.reshape(-1, 1), **fit_params)
        p3 = three.predict_proba(X_test)[:, [list(three.classes_).index(c) for c in CODES]]
    s3 = scores(y_test, p3)
    bad = np.c_[p_bad, 1 - p_bad, np.zeros_like(p_bad)]  # binary metrics from the binary fit
    sb = scores(y_test, bad)
    return {**{k: sb[k] for k in ("bin_acc", "bin_bacc", "bin_auc")},
            **{k: s3[k] for k in ("acc3", "f1_3", "bacc3")}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-jobs", type=int, default=2, help="threads of MRIQC's tree models")
    parser.add_argument("--reselect", action="store_true",
                        help="redo the LOSO selection over the whole grid for every seed")
    args = parser.parse_args(argv)
    # mriqc-learn's joblib workers warn about sklearn's `delayed` once per task; silence them
    # (inherited by the worker processes, started after this).
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")
    cand, rule, prior = chosen_candidate(IqmModel.load())
    search = ({"n_jobs": args.n_jobs} if args.reselect
              else {"grid": [cand], "rules": [rule], "priors": [prior]})
    print("mmrqa configuration: " + ("full LOSO reselection per seed" if args.reselect else
                                     f"{cand.name} prior {prior} {rule} (shipped model card), "
                                     "refit per seed"))
    ours, theirs, chosen, t_ours, t_theirs = [], [], [], 0.0, 0.0
    for seed in args.seeds:
        t0 = time.perf_counter()
        model, _ = select_and_fit(seed, **search)
        ours.append(evaluate_ds030(model))
        c = model.card["chosen"]
        print(f"seed {seed}: mmrqa DS030 confusion (rows truth Bad/Medium/Good, columns grade): "
              + str(confusion_ds030(model).tolist()))
        chosen.append(f"{c['features']} {'+'.join(c['blocks'])} {c['kind']} C={c['C']:g} "
                      f"{c['weight']} prior {c['prior']} {c['rule']}"
                      + (f" {c['thresholds'][0]:.2f}/{c['thresholds'][1]:.2f}"
                         if c["thresholds"] else ""))
        t1 = time.perf_counter()
        theirs.append(mriqc_run(seed, args.n_jobs))
        t2 = time.perf_counter()
        t_ours, t_theirs = t_ours + t1 - t0, t_theirs + t2 - t1
        print(f"seed {seed}: mmrqa ({chosen[-1]}) "
              + " ".join(f"{k} {ours[-1][k]:.3f}" for k, _ in METRICS)
              + " | MRIQC " + " ".join(f"{k} {theirs[-1][k]:.3f}" for k, _ in METRICS), flush=True)
    print(f"\nDS030 held-out test (265 images, 2 unseen sites; trained on ABIDE only), "
          f"mean (sd) of {len(args.seeds)} seeds")
    print(f"{'metric':30s} {'mmrqa IQM model':>18s} {'MRIQC pipeline':>18s} {'difference':>11s}")
    for key, label in METRICS:
        a = np.array([r[key] for r in ours])
        b = np.array([r[key] for r in theirs])
        print(f"{label:30s} {a.mean():11.3f} ({a.std():.3f}) {b.mean():11.3f} ({b.std():.3f}) "
              f"{a.mean() - b.mean():+11.3f}")
    print(f"{'train + test time per seed':30s} {t_ours / len(args.seeds):16.1f} s "
          f"{t_theirs / len(args.seeds):16.1f} s   (incl. LOSO for mmrqa)")
    print("mmrqa models per seed: " + ", ".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
