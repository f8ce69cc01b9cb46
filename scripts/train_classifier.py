#!/usr/bin/env python
"""Rebuild the shipped metric classifier (``mmrqa_bids/data/classifier_{anat,bold}.json.gz``).

    python scripts/train_classifier.py [--out mmrqa_bids/data] [--jobs 2] [--cache DIR]
                                       [--family anat bold] [--recipe RECIPE.json]
                                       [--pool-cache DIR]

Deterministic for a given recipe, metrics code and library versions. Metrics are cached in
``--cache`` by example and by a hash of the metrics code, so re-running after an unrelated
change costs seconds, and re-running after a metrics change recomputes everything. Prints the
seen vs unseen-anatomy figures of each model (also stored in the model file).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NIPYPE_NO_ET", "1")


def main(argv=None) -> int:
    from mmrqa_bids.train.metric_model.export import train
    from mmrqa_bids.train.metric_model.recipe import DEFAULT_RECIPE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "mmrqa_bids" / "data")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "classifier-metrics")
    parser.add_argument("--pool-cache", type=Path, default=REPO / ".cache",
                        help="the cache folder of the cohort simulation (its measured runs "
                             "lie under DIR/cohort-pools, as scripts/train_cohort_model.py's "
                             "--cache): real heads as acquired, recipe 11")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--family", nargs="+", choices=("anat", "bold"), default=["anat", "bold"])
    parser.add_argument("--recipe", type=Path, default=None,
                        help="JSON recipe (default: "
                             "mmrqa_bids.train.metric_model.recipe.DEFAULT_RECIPE)")
    args = parser.parse_args(argv)
    recipe = json.loads(args.recipe.read_text()) if args.recipe else DEFAULT_RECIPE
    train(args.out, recipe, families=args.family, cache_dir=args.cache, n_jobs=args.jobs,
          pool_cache=args.pool_cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
