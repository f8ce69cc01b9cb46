"""How many ratings per grade the ``train`` level needs before a model fitted on a study's
own ratings beats the shipped metric classifier (the basis of
:data:`mmrqa_bids.train.metric_model.rated.MIN_PER_CLASS`).

Studies are simulated cohorts (:mod:`mmrqa_bids.cohorts.simulate`): per source (one head and
protocol: ROBEX's real T1w and the MNI152 T1w image as acquired, the held-out tpm subject
rendered in T1w), a pool of 95 subjects, 32 clean and 63 with one artifact at a graded
severity (3 of each artifact x severity), labelled by their measured degradation. Each draw
splits a pool in halves stratified by grade: the test half is graded by the fitted and the
shipped model; from the other half k runs of each grade are "rated" (Good at least 5: the
clean runs the narrative's reference ranges need) and a model is fitted on them as the
``train`` level fits one (:func:`~mmrqa_bids.train.metric_model.rated.fit_rated_family`, with
``minimum`` k). Figures: mean macro-F1 and accuracy over ``--draws`` draws per source (95%
interval of the mean, bootstrap over draws), fitted and shipped side by side on the same
test halves.

    python benchmarks/rated_classifier_minimum.py [--draws 20] [--ks 2 3 5 8] [--jobs 2]
        [--random-ns 10 20 40]

A second table rates n runs of each study at random (as a rater working down a list would)
and grades the rest with what the ``train`` level leaves: the fitted model where every grade
has :data:`~mmrqa_bids.train.metric_model.rated.MIN_PER_CLASS` ratings, else the shipped one.

Simulated cohorts are not real scans: these figures choose a floor, they do not promise an
accuracy on a real study.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SOURCES = ("robex-T1w-real", "mni152-T1w-real", "tpm-T1w")


def pools(cache_dir: Path, jobs: int) -> dict[str, list[dict]]:
    from mmrqa_bids.cohorts import simulate as S

    return {s: S.measure_pool(S.plan_pool(s, per_artifact_severity=3), cache_dir, n_jobs=jobs, verbose=False)
            for s in SOURCES}


def draw(pool: list[dict], k: int, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """(rated, test): the test half of every grade, and k runs of each grade (Good max(k, 5))
    drawn from the other half."""
    rated, test = [], []
    for grade in ("Good", "Medium", "Bad"):
        idx = rng.permutation([i for i, r in enumerate(pool) if r["label"] == grade]).tolist()
        half = len(idx) // 2
        n = max(k, 5) if grade == "Good" else k
        if len(idx) - half < n:
            raise SystemExit(f"the pool has {len(idx)} {grade} runs: k={k} is too many")
        test += idx[:half]
        rated += idx[half:half + n]
    return rated, test


def entry(rec: dict) -> dict:
    return {"label": rec["label"], "metrics": rec["metrics"], "suffix": "T1w",
            "origin": "expert", "artifact": None, "split": "train"}


def interval(values: list[float], rng: np.random.Generator) -> tuple[float, float]:
    v = np.asarray(values)
    boots = [rng.choice(v, size=v.size).mean() for _ in range(2000)]
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def main() -> int:
    from mmrqa_bids.grading.classifier import model_paths
    from mmrqa_bids.train.metric_model.rated import (fit_rated_family, held_out_scores,
                                                     read_model_doc)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 3, 5, 8])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path(".cache"))
    ap.add_argument("--random-ns", type=int, nargs="*", default=[10, 20, 40],
                    help="also rate n runs at random and grade the rest")
    args = ap.parse_args()
    t0 = time.perf_counter()
    shipped = read_model_doc(model_paths(None)["anat"])
    data = pools(args.cache, args.jobs)
    print(f"pools: " + ", ".join(f"{s} {len(p)} runs ("
                                 + "/".join(str(sum(r['label'] == g for r in p))
                                            for g in ('Good', 'Medium', 'Bad')) + " G/M/B)"
                                 for s, p in data.items()))
    rng = np.random.default_rng(0)
    print(f"{'k per grade':>12} {'fitted acc':>20} {'shipped acc':>20} "
          f"{'fitted macro-F1':>20} {'shipped macro-F1':>20}")
    for k in args.ks:
        scores: dict[str, list[float]] = {"fa": [], "sa": [], "ff": [], "sf": []}
        for source, pool in data.items():
            for _ in range(args.draws):
                rated, rest = draw(pool, k, rng)  # rest: the test half
                doc, record = fit_rated_family("anat", [entry(pool[i]) for i in rated],
                                               shipped, seed=int(rng.integers(1 << 30)),
                                               minimum=min(k, 5))
                if doc is None:
                    raise SystemExit(f"k={k}: not fitted ({record['reason']})")
                test = [entry(pool[i]) for i in rest]
                fit, ship = held_out_scores(doc, test), held_out_scores(shipped, test)
                scores["fa"].append(fit["accuracy"])
                scores["sa"].append(ship["accuracy"])
                scores["ff"].append(fit["macro_f1"])
                scores["sf"].append(ship["macro_f1"])
        cells = []
        for key in ("fa", "sa", "ff", "sf"):
            lo, hi = interval(scores[key], rng)
            cells.append(f"{np.mean(scores[key]):.3f} ({lo:.3f}-{hi:.3f})")
        print(f"{k:>12} " + " ".join(f"{c:>20}" for c in cells), flush=True)
    print(f"{len(data)} sources x {args.draws} draws per k; {time.perf_counter() - t0:.0f} s")
    if args.random_ns:
        random_ratings(data, shipped, args.random_ns, args.draws, rng)
    print(f"{time.perf_counter() - t0:.0f} s in all")
    return 0


def random_ratings(data: dict[str, list[dict]], shipped: dict, ns: list[int], draws: int,
                   rng: np.random.Generator) -> None:
    """n runs of a study rated at random, the rest graded by what the train level leaves
    (the fitted model when every grade has MIN_PER_CLASS ratings, else the shipped one)."""
    from mmrqa_bids.train.metric_model.rated import (MIN_PER_CLASS, fit_rated_family,
                                                     held_out_scores)

    print(f"\nrandom ratings (a model is fitted when every grade has {MIN_PER_CLASS}):")
    print(f"{'n rated':>12} {'fitted':>8} {'train level acc':>20} {'shipped acc':>20} "
          f"{'train level m-F1':>20} {'shipped macro-F1':>20}")
    for n in ns:
        scores: dict[str, list[float]] = {"fa": [], "sa": [], "ff": [], "sf": []}
        fitted = 0
        for pool in data.values():
            for _ in range(draws):
                order = rng.permutation(len(pool)).tolist()
                rated, rest = order[:n], order[n:]
                doc, _ = fit_rated_family("anat", [entry(pool[i]) for i in rated], shipped,
                                          seed=int(rng.integers(1 << 30)))
                fitted += doc is not None
                test = [entry(pool[i]) for i in rest]
                level, ship = held_out_scores(doc or shipped, test), held_out_scores(shipped, test)
                for key, value in (("fa", level["accuracy"]), ("sa", ship["accuracy"]),
                                   ("ff", level["macro_f1"]), ("sf", ship["macro_f1"])):
                    scores[key].append(value)
        cells = []
        for key in ("fa", "sa", "ff", "sf"):
            lo, hi = interval(scores[key], rng)
            cells.append(f"{np.mean(scores[key]):.3f} ({lo:.3f}-{hi:.3f})")
        share = f"{fitted}/{len(data) * draws}"
        print(f"{n:>12} {share:>8} " + " ".join(f"{c:>20}" for c in cells), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
