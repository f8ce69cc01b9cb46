#!/usr/bin/env python
"""Rebuild the shipped dataset-relative grade models (mmrqa_bids/data/cohort_*.json.gz).

    python scripts/train_cohort_model.py [--out mmrqa_bids/data] [--jobs 1] [--cache .cache]
                                         [--family anat bold] [--per-source 40] [--seed 0]
                                         [--kind split] [--pool-dir DIR]
                                         [--real-ratings abide] [--label-rule rater_1]
                                         [--real-weight equal_total]
                                         [--floor-levels] [--native-t1w]
                                         [--drop-source NAME ...]
                                         [--calibration source_out|random]
                                         [--replicates 1]

Simulates and measures each source's pool once (cached under ``--cache/cohort-pools``, one
record per run, measured again when the metrics code changed; see
:mod:`mmrqa_bids.cohorts.simulate`), refuses a pool that mixes metrics codes, draws
``--per-source`` cohorts per source (sizes 8-200, prevalence 5-50%), fits the model on every
source of the family (:mod:`mmrqa_bids.cohorts.train`; ``--kind abs`` fits the earlier |z|
input, for comparison) and prints its support bounds and the naive score's cut points chosen
on the same cohorts. ``--pool-dir DIR`` reads the pools' measured records from DIR (one
``<run key>.json`` per run, e.g. a frozen copy of ``--cache/cohort-pools/<pool key>``) and
measures nothing. ``--real-ratings abide`` adds ABIDE's rated sites (PyPI ``mriqc-learn``) as
training cohorts of the anatomical model (:mod:`mmrqa_bids.cohorts.rated_sites`: each image
against its own site, label from ``--label-rule``, the real rows together weighing as much as
the simulated ones with ``--real-weight equal_total``); the model file's ``training`` info
records it. ``--floor-levels`` (off by default) simulates one pool per source and noise-floor
level (:data:`mmrqa_bids.cohorts.simulate.FLOOR_LEVELS`, each subject's floor within a factor
~1.5 of its level) and draws every cohort from one level's pool, as one protocol on one scanner
gives its subjects about the same floor; the model file's ``training.floor_levels`` records
the levels. ``--native-t1w`` adds the real T1w heads on their own grids
(:data:`mmrqa_bids.cohorts.simulate.NATIVE_T1W_SOURCES`: ROBEX's 1.5 mm, the MNI152 image's
1 mm) to the anatomical sources; ``--drop-source NAME`` leaves a source out (a held-out
model for ``benchmarks/real_head_study.py --model``). ``--calibration source_out`` (the
default, the shipped files' recipe) fits the temperatures on out-of-source logits;
``random`` on a random fifth of the cohorts, as before 2026-12-03
(:func:`mmrqa_bids.cohorts.train.fit_grade`). ``--replicates N`` simulates N subjects per
artifact x severity in each source's pool (default
:data:`mmrqa_bids.cohorts.train.DEGRADED_REPLICATES`); the model file's
``training.degraded_replicates`` records it when it is not 1. Held-out figures come from
``benchmarks/cohort_grading.py`` (leave-one-source-out) and
``benchmarks/cohort_mriqc_ratings.py`` (real expert ratings).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NIPYPE_NO_ET", "1")


def main(argv=None) -> int:
    from mmrqa_bids.cohorts.relative import family_features
    from mmrqa_bids.cohorts.relative import FEATURE_KINDS
    from mmrqa_bids.cohorts import rated_sites
    from mmrqa_bids.cohorts.simulate import FLOOR_SPREAD, family_sources
    from mmrqa_bids.cohorts.train import (CALIBRATIONS, DEGRADED_REPLICATES, FEATURE_KIND,
                                          cohort_table, declared_floor_levels,
                                          fit_cohort_model,
                                          plan_cohorts, save_model, single_code_pools)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "mmrqa_bids" / "data")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--family", nargs="+", choices=("anat", "bold"), default=["anat", "bold"])
    parser.add_argument("--per-source", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=FEATURE_KINDS, default=FEATURE_KIND)
    parser.add_argument("--pool-dir", type=Path, default=None,
                        help="read measured pool records from this folder; measure nothing")
    parser.add_argument("--real-ratings", choices=("none",) + rated_sites.RATED_DATASETS,
                        default="none", help="real rated cohorts in the anatomical model's "
                                             "training (needs mriqc-learn)")
    parser.add_argument("--label-rule", choices=rated_sites.LABEL_RULES,
                        default=rated_sites.DEFAULT_LABEL_RULE)
    parser.add_argument("--real-weight", choices=rated_sites.WEIGHT_RULES,
                        default=rated_sites.DEFAULT_WEIGHT_RULE)
    parser.add_argument("--floor-levels", action="store_true",
                        help="one pool per source and noise-floor level; each cohort drawn "
                             "from one level (default off: the per-run floor)")
    parser.add_argument("--native-t1w", action="store_true",
                        help="add the real T1w heads on their own grids to the anat sources")
    parser.add_argument("--drop-source", action="append", default=[], metavar="NAME",
                        help="leave this source out of the training (repeatable)")
    parser.add_argument("--calibration", choices=CALIBRATIONS, default="source_out",
                        help="temperatures on out-of-source logits (default, the shipped "
                             "recipe) or on a random fifth of the cohorts (before 2026-12-03)")
    parser.add_argument("--replicates", type=int, default=DEGRADED_REPLICATES,
                        help="subjects per artifact x severity in each source's pool "
                             f"(default {DEGRADED_REPLICATES})")
    args = parser.parse_args(argv)
    if args.replicates < 1:
        parser.error(f"--replicates must be >= 1, got {args.replicates}")
    params = None if args.calibration == "random" else {"calibration": args.calibration}
    for family in args.family:
        try:
            sources = family_sources(family, native_t1w=args.native_t1w,
                                     drop=args.drop_source)
        except ValueError as exc:
            print(f"[train-cohort] {exc}", file=sys.stderr)
            return 1
        levels = declared_floor_levels(sources) if args.floor_levels else None
        try:
            pools, code = single_code_pools(sources, args.cache, args.pool_dir, args.jobs,
                                            floor_levels=levels, replicates=args.replicates)
        except ValueError as exc:
            print(f"[train-cohort] {family}: {exc}", file=sys.stderr)
            return 1
        draws = plan_cohorts(sources, args.per_source, seed=args.seed, floor_levels=levels)
        table = cohort_table(pools, draws, family_features(family))
        info = {"sources": sources, "cohorts_per_source": args.per_source, "seed": args.seed,
                "metrics_code": code}
        if args.replicates != 1:  # absent at 1: the model file as before the option
            info["degraded_replicates"] = args.replicates
        if levels is not None:  # absent when off: the model file as before the option
            info["floor_levels"] = {s: list(v) for s, v in levels.items()}
            info["floor_spread"] = FLOOR_SPREAD
        real_note = ""
        if args.real_ratings != "none" and family == "anat":
            real = rated_sites.abide_site_table(family_features(family), args.label_rule)
            info["real_ratings"] = rated_sites.training_record(
                args.real_ratings, args.label_rule, args.real_weight, len(table["label"]), real)
            weight = info["real_ratings"]["row_weight"]
            table = rated_sites.combine(table, real, args.real_weight)
            real_note = (f" + {len(real['label'])} rated {args.real_ratings} rows of "
                         f"{len(set(real['site']))} sites (labels {args.label_rule}, weight "
                         f"{weight:.2f} each, {args.real_weight})")
        elif args.real_ratings != "none":
            real_note = f" ({args.real_ratings} rates T1w only: no rated rows for {family})"
        doc = fit_cohort_model(family, table, params, seed=args.seed, kind=args.kind, info=info)
        path = save_model(doc, args.out)
        n_sim = int(len(table["label"]) - doc["training"].get("n_real_rows", 0))
        print(f"[train-cohort] {family}: {len(draws)} cohorts, {n_sim} rows "
              f"from {', '.join(sources)}{real_note}; metrics code {code}; input {args.kind}"
              + ("; floor levels " + ", ".join(f"{s} {'/'.join(f'{v:g}' for v in lv)}"
                                               for s, lv in levels.items()) if levels else ""))
        print(f"[train-cohort] {family}: support (mean |z|) Good <= "
              f"{doc['support']['good_max']:.2f}, Medium <= {doc['support']['medium_max']:.2f}; "
              f"naive cuts (mean |z|) {doc['naive_cuts']}; "
              f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB), {doc['model_id']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
