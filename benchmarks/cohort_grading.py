#!/usr/bin/env python
"""Dataset-relative grades on simulated cohorts, every source held out in turn.

    python benchmarks/cohort_grading.py [--cache .cache] [--per-source 40] [--per-cell 2]
                                        [--family anat bold] [--jobs 1]
                                        [--kinds directional split abs]
                                        [--sizes 8 16 32 100]
                                        [--train-floor-levels] [--test-floor-levels]
                                        [--native-t1w] [--calibration random]
                                        [--train-replicates N] [--test-replicates N]

For each family (anat, bold) and each of its sources (:data:`mmrqa_bids.cohorts.simulate.
SOURCES`, real heads as acquired among them), the cohort model is fitted on cohorts of the
*other* sources (:mod:`mmrqa_bids.cohorts.train`) and graded on cohorts of the held-out one:
``--per-cell`` cohorts for every size (``--sizes``, default 8, 16, 32, 100) x prevalence
(5%, 20%, 40%) cell, every member graded (leave-one-out z up to 64 runs, as the grader does). One model per input kind
of ``--kinds`` (``directional``: departures above and below the cohort apart, per metric;
``split``: the same and aggregates of |z|; ``abs``: |z|, |relative change| and the aggregates,
the earlier input), each with its support bounds; beside them, the
naive score (mean |z|, nothing fitted but its two cut points, chosen on the same training
cohorts). Every pool record must come from one metrics code (printed).
``--train-floor-levels`` / ``--test-floor-levels`` draw the training / held-out cohorts from
the floor-level pools (one pool per source and noise-floor level, every cohort at one level:
:data:`mmrqa_bids.cohorts.simulate.FLOOR_LEVELS`) instead of the pools whose subjects each
draw their own floor. ``--native-t1w`` adds the real T1w heads on their own grids
(:data:`~mmrqa_bids.cohorts.simulate.NATIVE_T1W_SOURCES`) to the anatomical sources, and a
held-out real head's twin on the other grid leaves the training with it
(:func:`~mmrqa_bids.cohorts.simulate.real_twins`); the held-out figures over the sources of
:data:`~mmrqa_bids.cohorts.simulate.SOURCES` alone are printed too, to compare with a run
without the option. Each fold's temperatures are fitted on out-of-source logits of its
training sources, as the shipped files' are; ``--calibration random`` fits them on a random
fifth of the cohorts, as before 2026-12-03 (:func:`mmrqa_bids.cohorts.train.fit_grade`).
``--train-replicates`` / ``--test-replicates`` (default
:data:`mmrqa_bids.cohorts.train.DEGRADED_REPLICATES`): subjects per artifact x severity in the
pools the training / held-out cohorts are drawn from (two settings of the training compared
on one held-out set: give both the same ``--test-replicates``).

Printed: held-out accuracy, macro-F1 (95% bootstrap intervals over runs, which understate the
uncertainty: runs of one cohort and one source are not independent), balanced accuracy,
clean runs graded Bad, ECE, clean runs graded Good; per held-out source; by cohort size; by prevalence; real clean
acquisitions (each real head in cohorts of its own augmented clean copies) graded Good;
outliers (every metric 10 robust SD off, random directions, 500 draws per fold) graded Good;
and the group level's speed on 1,000 synthetic rows. Targets (issue #24): accuracy >= 0.90,
macro-F1 >= 0.85, no clean run graded Bad.

Figures measured in simulation are not evidence about real scans: the real-rating figures
are in ``benchmarks/cohort_mriqc_ratings.py``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NIPYPE_NO_ET", "1")

SIZES = (8, 16, 32, 100)
PREVALENCES = (0.05, 0.2, 0.4)


def predict(doc, table):
    """(labels, confidence) of a test table by a model document (with its support bounds),
    and the same by its naive cut points."""
    from mmrqa_bids.cohorts.relative import CohortModel, naive_probabilities, ordinal_labels
    from mmrqa_bids.grading.base import LABELS

    model = CohortModel.from_dict(doc)
    p = model.predict_proba(table["z"], table["rel"])
    q = naive_probabilities(table["naive"], doc["naive_cuts"])
    lab = np.array(LABELS)
    k, kq = ordinal_labels(p), ordinal_labels(q)
    rows = np.arange(len(k))
    return lab[k], p[rows, k], lab[kq], q[rows, kq]


def outliers_good(doc, n: int = 500, seed: int = 0) -> int:
    """How many of ``n`` runs 10 robust SD off in every metric (random directions; relative
    change 0.3 in the same direction) a model document grades Good."""
    from mmrqa_bids.cohorts.relative import CohortModel, ordinal_labels

    model = CohortModel.from_dict(doc)
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], (n, len(model.features)))
    p = model.predict_proba(10.0 * signs, 0.3 * signs)
    return int(np.sum(ordinal_labels(p) == 0))


def figures(truth, pred, conf, clean) -> dict:
    from mmrqa_bids.evaluation import evaluate

    res = evaluate(list(truth), list(pred), list(conf))
    res["clean_bad"] = int(np.sum((np.asarray(pred) == "Bad") & clean))
    res["clean_good"] = int(np.sum((np.asarray(pred) == "Good") & clean))
    res["n_clean"] = int(clean.sum())
    return res


def row(name: str, r: dict, with_ci: bool = False) -> str:
    ci = r["ci95"]
    acc = f"{r['accuracy']:.3f}"
    f1 = f"{r['macro_f1']:.3f}"
    if with_ci:
        acc += f" [{ci['accuracy'][0]:.3f}-{ci['accuracy'][1]:.3f}]"
        f1 += f" [{ci['macro_f1'][0]:.3f}-{ci['macro_f1'][1]:.3f}]"
    return (f"{name:<26}{r['n']:>6}  {acc:<22}{f1:<22}{r['balanced_accuracy']:>6.3f}"
            f"{r['clean_bad']:>5}/{r['n_clean']:<5}{r['ece']:>7.3f}"
            f"{r['clean_good']:>6}/{r['n_clean']:<5}")


HEADER = (f"{'':<26}{'runs':>6}  {'accuracy [95% CI]':<22}{'macro-F1 [95% CI]':<22}"
          f"{'bal.acc':>6} {'clean->Bad':>10}{'ECE':>7} {'clean->Good':>11}")


def loso(family: str, pools: dict, per_source: int, per_cell: int, seed: int,
         kinds: tuple[str, ...], sizes: tuple[int, ...] = SIZES,
         train_levels: dict | None = None, test_levels: dict | None = None,
         sources: list[str] | None = None, params: dict | None = None,
         train_replicates: int | None = None, test_replicates: int | None = None) -> dict:
    """Leave-one-source-out predictions of one family (every held-out source's cells; a
    real source's twins on other grids, :func:`~mmrqa_bids.cohorts.simulate.real_twins`,
    leave the training with it). ``train_levels`` / ``test_levels`` (source -> noise-floor
    levels, or None: the per-run floor) draw the training / test cohorts from the
    floor-level pools (:func:`~mmrqa_bids.cohorts.train.plan_cohorts`). ``sources``: the
    family's sources (default: those of :data:`~mmrqa_bids.cohorts.simulate.SOURCES`);
    ``params``: the grade model's fit settings (:func:`~mmrqa_bids.cohorts.train.fit_grade`);
    ``train_replicates`` / ``test_replicates``: draw the training / held-out cohorts from
    the pools cut to that many subjects per artifact x severity (None: the pools as given;
    :func:`~mmrqa_bids.cohorts.train.limit_replicates`)."""
    from mmrqa_bids.cohorts.relative import family_features
    from mmrqa_bids.cohorts.simulate import family_sources, real_twins, source_by_name
    from mmrqa_bids.cohorts.train import (cohort_table, fit_cohort_model, limit_replicates,
                                          plan_cohorts, subset)

    sources = sources or family_sources(family)
    features = family_features(family)
    t0 = time.perf_counter()
    train_pools = pools if train_replicates is None else limit_replicates(pools,
                                                                          train_replicates)
    pools = pools if test_replicates is None else limit_replicates(pools, test_replicates)
    train_all = cohort_table(train_pools, plan_cohorts(sources, per_source, seed=seed,
                                                 floor_levels=train_levels), features)
    tests = {h: cohort_table(pools, plan_cohorts([h], per_cell, seed=seed + 1, sizes=sizes,
                                                 prevalences=PREVALENCES,
                                                 floor_levels=test_levels),
                             features, rows_per_cohort=None) for h in sources}
    # Real clean acquisitions: each real head in cohorts of its own augmented clean copies.
    reals = [h for h in sources if source_by_name(h).kind == "real"]
    clean_tests = {h: cohort_table(pools, plan_cohorts([h], per_cell, seed=seed + 2,
                                                       sizes=(8, 16, 32), prevalences=(0.0,),
                                                       floor_levels=test_levels),
                                   features, rows_per_cohort=None) for h in reals}
    print(f"[{family}] relative features of {len(train_all['label'])} training and "
          f"{sum(len(t['label']) for t in tests.values())} test rows in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    keys = list(kinds) + ["naive"]
    out: dict = {"truth": [], "clean": [], "source": [], "size": [], "prevalence": [],
                 "real_clean": {k: {} for k in keys}, "outliers_good": {k: 0 for k in kinds},
                 "outliers_n": 0, **{k: [] for k in keys}, **{f"{k}_conf": [] for k in keys}}
    for h in sources:
        t = tests[h]
        train = subset(train_all, ~np.isin(train_all["source"], [h] + real_twins(h, sources)))
        for i, kind in enumerate(kinds):
            doc = fit_cohort_model(family, train, params, seed=seed, kind=kind)
            m, mc, n, nc = predict(doc, t)
            out[kind] += m.tolist()
            out[f"{kind}_conf"] += mc.tolist()
            out["outliers_good"][kind] += outliers_good(doc, seed=seed)
            if i == 0:  # the naive cuts do not depend on the kind
                out["naive"] += n.tolist()
                out["naive_conf"] += nc.tolist()
            if h in clean_tests:
                m2, _, n2, _ = predict(doc, clean_tests[h])
                out["real_clean"][kind][h] = (int(np.sum(m2 == "Good")),
                                              int(np.sum(m2 == "Bad")), len(m2))
                out["real_clean"]["naive"][h] = (int(np.sum(n2 == "Good")),
                                                 int(np.sum(n2 == "Bad")), len(n2))
        out["outliers_n"] += 500
        out["truth"] += t["label"].tolist()
        out["clean"] += t["clean"].tolist()
        out["source"] += [h] * len(t["label"])
        out["size"] += t["size"].tolist()
        out["prevalence"] += t["prevalence"].tolist()
    return {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in out.items()}


def print_family(name: str, res: dict, keys: list[str], sizes: tuple[int, ...] = SIZES) -> None:
    from mmrqa_bids.cohorts.simulate import SOURCES

    clean = res["clean"].astype(bool)
    print(f"\n== {name}: held-out sources (leave-one-source-out) ==")
    print(HEADER)
    for key in keys:
        print(row(f"{key}", figures(res["truth"], res[key], res[f"{key}_conf"], clean), True))
    base = np.isin(res["source"], [s.name for s in SOURCES])
    if not base.all():
        print("-- the held-out sources of SOURCES alone (as without --native-t1w) --")
        for key in keys:
            print(row(f"{key}", figures(res["truth"][base], res[key][base],
                                        res[f"{key}_conf"][base], clean[base]), True))
    print(f"\n-- per held-out source ({' | '.join(keys)}) --")
    print(HEADER)
    for h in dict.fromkeys(res["source"].tolist()):
        sel = res["source"] == h
        for key in keys:
            print(row(f"{h} {key}"[:26], figures(res["truth"][sel], res[key][sel],
                                              res[f"{key}_conf"][sel], clean[sel])))
    for what, values, fmt in (("cohort size", sizes, "{}"), ("prevalence", PREVALENCES,
                                                              "{:.0%}")):
        print(f"\n-- by {what} --")
        print(HEADER)
        col = res["size"] if what == "cohort size" else res["prevalence"]
        for v in values:
            sel = np.isclose(col.astype(float), v)
            for key in keys:
                print(row(f"{what} {fmt.format(v)} {key}"[:26],
                          figures(res["truth"][sel], res[key][sel], res[f"{key}_conf"][sel],
                                  clean[sel])))
    if res["real_clean"]["naive"]:
        print("\n-- real clean acquisitions in cohorts of their own augmented copies "
              "(sizes 8/16/32) --")
        for h in res["real_clean"]["naive"]:
            print(f"{h:<26}" + "   ".join(
                f"{k}: {res['real_clean'][k][h][0]}/{res['real_clean'][k][h][2]} Good, "
                f"{res['real_clean'][k][h][1]} Bad" for k in keys))
    print("\n-- runs 10 robust SD off in every metric, random directions, graded Good --")
    for k, v in res["outliers_good"].items():
        print(f"{k:<26}{v}/{res['outliers_n']}")


def speed(n_rows: int = 1000) -> None:
    """build_reference + grade_cohort on synthetic rows: one cohort of n_rows, and cohorts
    of 20 (leave-one-out)."""
    from mmrqa_bids.cohorts.reference import build_reference
    from mmrqa_bids.cohorts.relative import grade_cohort
    from mmrqa_bids.metrics.names import ANAT_METRICS

    rng = np.random.default_rng(0)
    rows = [{m: float(v) for m, v in zip(ANAT_METRICS, 1 + 0.05 * rng.standard_normal(
        len(ANAT_METRICS)))} for _ in range(n_rows)]
    print(f"\n-- group level speed on {n_rows} synthetic anatomical rows "
          f"({len(ANAT_METRICS)} metrics) --")
    for size in (n_rows, 20):
        t0 = time.perf_counter()
        for start in range(0, n_rows, size):
            part = rows[start:start + size]
            ref = build_reference(part, cohort_id=f"c{start}", protocol={},
                                  members=[str(i) for i in range(len(part))])
            grade_cohort(ref, part, "anat")
        print(f"cohorts of {size}: {time.perf_counter() - t0:.2f} s (target < 10 s)")


def main(argv=None) -> int:
    from mmrqa_bids.cohorts.relative import FEATURE_KINDS
    from mmrqa_bids.cohorts.simulate import family_sources, pool_metrics_codes
    from mmrqa_bids.cohorts.train import DEGRADED_REPLICATES, declared_floor_levels, load_pools

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=REPO / ".cache")
    parser.add_argument("--per-source", type=int, default=40)
    parser.add_argument("--per-cell", type=int, default=2)
    parser.add_argument("--family", nargs="+", choices=("anat", "bold"),
                        default=["anat", "bold"])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--kinds", nargs="+", choices=FEATURE_KINDS,
                        default=["directional", "split", "abs"])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                        help="held-out cohort sizes (default 8 16 32 100; sizes below the "
                             "grader's MIN_COHORT_SIZE evaluate where it could be set)")
    parser.add_argument("--train-floor-levels", action="store_true",
                        help="training cohorts from the floor-level pools (each cohort at one "
                             "noise-floor level; mmrqa_bids.cohorts.simulate.FLOOR_LEVELS)")
    parser.add_argument("--test-floor-levels", action="store_true",
                        help="held-out cohorts from the floor-level pools")
    parser.add_argument("--native-t1w", action="store_true",
                        help="add the real T1w heads on their own grids to the anat sources")
    parser.add_argument("--calibration", choices=("source_out", "random", "real_source_out"),
                        default="source_out",
                        help="temperatures on out-of-source logits (default, the shipped "
                             "recipe) or on a random fifth of the cohorts (before 2026-12-03)")
    parser.add_argument("--train-replicates", type=int, default=DEGRADED_REPLICATES,
                        help="subjects per artifact x severity in the training cohorts' "
                             f"pools (default {DEGRADED_REPLICATES})")
    parser.add_argument("--test-replicates", type=int, default=DEGRADED_REPLICATES,
                        help="the same for the held-out cohorts' pools")
    args = parser.parse_args(argv)
    if min(args.train_replicates, args.test_replicates) < 1:
        parser.error("--train-replicates and --test-replicates must be >= 1")
    replicates = max(args.train_replicates, args.test_replicates)
    params = None if args.calibration == "random" else {"calibration": args.calibration}
    keys = list(args.kinds) + ["naive"]
    results = {}
    for family in args.family:
        names = family_sources(family, native_t1w=args.native_t1w)
        levels = declared_floor_levels(names)
        pools = {}
        if not (args.train_floor_levels and args.test_floor_levels):
            pools.update(load_pools(names, args.cache, n_jobs=args.jobs, verbose=False,
                                    replicates=replicates))
        if args.train_floor_levels or args.test_floor_levels:
            pools.update(load_pools(names, args.cache, n_jobs=args.jobs, verbose=False,
                                    floor_levels=levels, replicates=replicates))
        print(f"[{family}] training cohorts: "
              f"{'floor levels' if args.train_floor_levels else 'per-run floor'}, "
              f"{args.train_replicates} subject(s) per artifact x severity; held-out "
              f"cohorts: {'floor levels' if args.test_floor_levels else 'per-run floor'}, "
              f"{args.test_replicates}", flush=True)
        codes = pool_metrics_codes([r for p in pools.values() for r in p])
        print(f"[{family}] pool of {sum(codes.values())} runs, metrics code "
              f"{', '.join(f'{c} ({n} runs)' for c, n in codes.items())}", flush=True)
        results[family] = loso(family, pools, args.per_source, args.per_cell, args.seed,
                               tuple(args.kinds), tuple(args.sizes),
                               levels if args.train_floor_levels else None,
                               levels if args.test_floor_levels else None, names, params,
                               args.train_replicates, args.test_replicates)
        print_family(family, results[family], keys, tuple(args.sizes))
    if len(results) > 1:
        both = {k: np.concatenate([r[k] for r in results.values()])
                for k in ["truth", "clean"] + keys + [f"{k}_conf" for k in keys]}
        print("\n== all families: held-out sources ==")
        print(HEADER)
        for key in keys:
            print(row(key, figures(both["truth"], both[key], both[f"{key}_conf"],
                                   both["clean"].astype(bool)), True))
    speed()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
