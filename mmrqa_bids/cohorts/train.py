"""Training the dataset-relative grade model on simulated cohorts.

``python scripts/train_cohort_model.py`` rebuilds the shipped models
(``mmrqa_bids/data/cohort_<family>.json.gz``):

1. **Pools** (:mod:`mmrqa_bids.cohorts.simulate`): per source, clean subjects and subjects
   degraded by every artifact at mild/moderate/severe, simulated and measured once (cached).
2. **Cohorts** (:func:`plan_cohorts`): per source, cohorts of a size drawn log-uniformly in
   [8, 200] with a prevalence of degraded runs drawn uniformly in [5%, 50%], drawn from the
   source's pool (:func:`~mmrqa_bids.cohorts.simulate.draw_cohort`).
3. **Relative features** (:func:`cohort_table`): each member's robust z against the others
   (leave-one-out up to :data:`~mmrqa_bids.cohorts.relative.LOO_MAX_SIZE` runs), as the
   grader computes them (:func:`~mmrqa_bids.cohorts.relative.cohort_z`), and its relative
   change. A cohort contributes at most :data:`ROWS_PER_COHORT` of its runs, so large
   cohorts do not outweigh small ones. Labels: the measured degradation's grade (as the
   absolute classifier's).
4. **Fit** (:func:`fit_cohort_model`): an ordinal pair of gradient-boosted tree ensembles,
   P(>= Medium) and P(Bad), on the model input of :data:`FEATURE_KIND`
   (:func:`~mmrqa_bids.cohorts.relative.model_input`: each metric's departure above and
   below the cohort, in z and in relative change), each ensemble
   monotonic non-decreasing in every column (a run further from its cohort, in any
   direction, is never graded better), with a softmax temperature fitted on 20% of the
   cohorts (calibration), exported as JSON trees (numpy inference). The model file also
   stores its training support (:func:`support_bounds`, applied by
   :func:`~mmrqa_bids.cohorts.relative.out_of_support`). How the input was chosen: model
   card.

The naive score's cut points (:func:`choose_naive_cuts`) are chosen on the same cohorts.

**Floor levels** (an option, off by default; ``floor_levels`` of :func:`load_pools`,
:func:`read_pools`, :func:`single_code_pools` and :func:`plan_cohorts`): each source has one
pool per noise-floor level (:data:`~mmrqa_bids.cohorts.simulate.FLOOR_LEVELS`, subjects'
floors within a factor ~1.5 of the level), named by
:func:`~mmrqa_bids.cohorts.simulate.pool_name`, and every cohort is drawn from the pool of
one level (the source's cohorts go round its levels in turn), as one protocol on one scanner
gives its subjects about the same floor. Off, the pools, draws and tables are those of
before the option.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mmrqa_bids.cohorts.reference import metric_columns
from mmrqa_bids.cohorts.relative import (AGGREGATES, FEATURE_KINDS, MODEL_FILES, MODEL_FORMAT,
                                         family_features, input_names, model_input,
                                         naive_score, relative_change)
from mmrqa_bids.grading.base import LABELS

#: Cohort sizes (log-uniform) and prevalence of degraded runs (uniform) of training cohorts.
SIZE_RANGE = (8, 200)
PREVALENCE_RANGE = (0.05, 0.5)
ROWS_PER_COHORT = 32
#: Subjects per artifact x severity in each source's pool (``per_artifact_severity`` of
#: :func:`~mmrqa_bids.cohorts.simulate.plan_pool`): 1 gives 21 degraded runs per source.
DEGRADED_REPLICATES = 1
#: The shipped model's input (:data:`~mmrqa_bids.cohorts.relative.FEATURE_KINDS`):
#: ``directional`` (each metric's departures above and below the cohort apart, no |z|
#: aggregates; model card, "How the input was chosen").
FEATURE_KIND = "directional"
DEFAULT_PARAMS: dict[str, Any] = {"max_iter": 120, "learning_rate": 0.08, "max_leaf_nodes": 8,
                                  "min_samples_leaf": 20, "l2_regularization": 1.0,
                                  "calibration_fraction": 0.2}


@dataclass(frozen=True)
class CohortDraw:
    source: str
    size: int
    prevalence: float
    seed: int
    floor_level: float | None = None  # None: the source's one pool (the option off)

    @property
    def pool(self) -> str:
        """The name of the pool the cohort is drawn from."""
        from mmrqa_bids.cohorts.simulate import pool_name
        return pool_name(self.source, self.floor_level)


def declared_floor_levels(sources: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Each source's declared floor levels (:data:`~mmrqa_bids.cohorts.simulate.FLOOR_LEVELS`
    of its kind)."""
    from mmrqa_bids.cohorts.simulate import FLOOR_LEVELS, source_by_name
    return {s: tuple(FLOOR_LEVELS[source_by_name(s).kind]) for s in sources}


def plan_cohorts(sources: Sequence[str], per_source: int, seed: int = 0,
                 sizes: Sequence[int] | None = None,
                 prevalences: Sequence[float] | None = None,
                 floor_levels: Mapping[str, Sequence[float]] | None = None
                 ) -> list[CohortDraw]:
    """``per_source`` cohorts per source: sizes log-uniform in :data:`SIZE_RANGE` and
    prevalence uniform in :data:`PREVALENCE_RANGE`, or every (size, prevalence) pair of
    ``sizes`` x ``prevalences`` ``per_source`` times when those are given. With
    ``floor_levels`` (source -> its levels), the source's cohorts take its levels in turn
    (the k-th cohort the level k mod n), each drawn from that level's pool; sizes,
    prevalences and seeds are the same as without."""
    out = []
    for s in sources:
        h = int(hashlib.sha256(f"{seed}:{s}".encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(h)
        levels = None if floor_levels is None else [float(v) for v in floor_levels[s]]
        if levels is not None and not levels:
            raise ValueError(f"no floor level for source {s!r}")
        plan: list[CohortDraw] = []
        if sizes is not None and prevalences is not None:
            for size in sizes:
                for prev in prevalences:
                    for _ in range(per_source):
                        plan.append(CohortDraw(s, int(size), float(prev),
                                               int(rng.integers(2 ** 31))))
        else:
            for _ in range(per_source):
                size = int(round(np.exp(rng.uniform(np.log(SIZE_RANGE[0]),
                                                    np.log(SIZE_RANGE[1])))))
                plan.append(CohortDraw(s, size, float(rng.uniform(*PREVALENCE_RANGE)),
                                       int(rng.integers(2 ** 31))))
        if levels is not None:
            plan = [CohortDraw(d.source, d.size, d.prevalence, d.seed, levels[k % len(levels)])
                    for k, d in enumerate(plan)]
        out += plan
    return out


def cohort_table(pools: Mapping[str, Sequence[dict[str, Any]]], draws: Sequence[CohortDraw],
                 features: Sequence[str], rows_per_cohort: int | None = ROWS_PER_COHORT
                 ) -> dict[str, np.ndarray]:
    """One row per kept member of every drawn cohort: ``z`` and ``rel`` (robust z and relative
    change per feature), ``label``, ``clean`` (no artifact), ``artifact``, ``source``,
    ``cohort`` (draw index), ``size``, ``prevalence``, ``naive`` (the naive score). The model
    input is built from ``z`` and ``rel`` by the fit (:func:`fit_cohort_model`)."""
    from mmrqa_bids.cohorts.relative import cohort_z
    from mmrqa_bids.cohorts.simulate import draw_cohort

    parts: dict[str, list] = {k: [] for k in ("z", "rel", "label", "clean", "source", "cohort",
                                              "size", "prevalence", "artifact")}
    for c, draw in enumerate(draws):
        pool = pools[draw.pool]
        rng = np.random.default_rng(draw.seed)
        members = draw_cohort(pool, draw.size, draw.prevalence, rng)
        rows = [pool[i]["metrics"] for i in members]
        z, centre, _ = cohort_z(rows, features)
        rel = relative_change(metric_columns(rows, features), centre)
        keep = np.arange(len(members))
        if rows_per_cohort is not None and len(members) > rows_per_cohort:
            keep = rng.choice(len(members), rows_per_cohort, replace=False)
        for k in keep:
            rec = pool[members[k]]
            parts["z"].append(z[k])
            parts["rel"].append(rel[k])
            parts["artifact"].append(rec["artifact"])
            parts["label"].append(rec["label"])
            parts["clean"].append(rec["severity"] == "none")
            parts["source"].append(draw.source)
            parts["cohort"].append(c)
            parts["size"].append(draw.size)
            parts["prevalence"].append(draw.prevalence)
    z = np.array(parts["z"], dtype=float).reshape(-1, len(features))
    rel = np.array(parts["rel"], dtype=float).reshape(-1, len(features))
    out = {k: np.asarray(v) for k, v in parts.items() if k not in ("z", "rel")}
    out["z"], out["rel"] = z, rel
    out["naive"] = naive_score(z)
    return out


def subset(table: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in table.items()}


def choose_naive_cuts(score: np.ndarray, labels: Sequence[str],
                      grid: Sequence[float] | None = None) -> tuple[float, float]:
    """The (Good | Medium, Medium | Bad) cut points of the naive score that maximise macro-F1
    over the given runs (a grid of 0.1 steps from 0.5 to 10)."""
    from mmrqa_bids.evaluation import confusion, macro_f1

    grid = np.round(np.arange(0.5, 10.01, 0.1), 2) if grid is None else np.asarray(grid)
    labels = list(labels)
    s = np.asarray(score, float)
    best, best_f1 = (float(grid[0]), float(grid[-1])), -1.0
    for i, c1 in enumerate(grid):
        for c2 in grid[i + 1:]:
            pred = np.where(s < c1, "Good", np.where(s < c2, "Medium", "Bad"))
            f1 = macro_f1(confusion(labels, pred.tolist()))
            if f1 > best_f1:
                best, best_f1 = (float(c1), float(c2)), f1
    return best


def support_bounds(naive: np.ndarray, labels: Sequence[str]) -> tuple[float, float]:
    """(good_max, medium_max): the largest naive score (mean |z|) of a training run labelled
    Good, and of one labelled Good or Medium
    (:func:`~mmrqa_bids.cohorts.relative.out_of_support`). The maxima, not a quantile: the
    bound says where the training data end, not where most Good runs lie."""
    s = np.asarray(naive, float)
    labels = np.asarray(labels)
    good = np.isfinite(s) & (labels == "Good")
    fair = np.isfinite(s) & np.isin(labels, ("Good", "Medium"))
    if not good.any() or not fair.any():
        raise ValueError("support_bounds needs training runs labelled Good and Medium")
    return float(s[good].max()), float(s[fair].max())


#: How the grade model's temperatures are fitted (``params["calibration"]``, :func:`fit_grade`).
CALIBRATIONS = ("random", "source_out", "real_source_out")


def fit_grade(x: np.ndarray, labels: Sequence[str], groups: np.ndarray,
              params: Mapping[str, Any] | None = None, seed: int = 0,
              sample_weight: np.ndarray | None = None,
              sources: np.ndarray | None = None) -> dict[str, Any]:
    """The ordinal grade model (:class:`~mmrqa_bids.grading.classifier.OrdinalEnsemble`):
    P(>= Medium) and P(Bad), each gradient-boosted trees monotonic non-decreasing in every
    feature (all are distances from the cohort), calibrated by a temperature on the rows of
    a random ``calibration_fraction`` of the ``groups`` (cohorts); with ``params["calibration"]
    == "source_out"`` every row trains the trees and the temperature is fitted on each row's
    logits from a fit that left its source out (``sources``, one name per row;
    :func:`~mmrqa_bids.train.metric_model.trees.source_out_temperature`), so that the
    confidence is calibrated for a scanner the model has not seen; ``"real_source_out"`` fits
    it on the out-of-source logits of the real-head sources' rows only (kind ``real`` in
    :mod:`~mmrqa_bids.cohorts.simulate`; the rendered sources still train every fit), the
    domain the grades are for. ``sample_weight`` (one per
    row; None: all 1, the simulated-only recipe, unchanged) weighs the rows of the fit (real
    rated rows, :mod:`mmrqa_bids.cohorts.rated_sites`); the temperature is fitted
    unweighted."""
    from mmrqa_bids.train.metric_model.trees import fit_ensemble

    params = {**DEFAULT_PARAMS, **(params or {})}
    calibration = params.get("calibration", "random")
    if calibration not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {calibration!r} ({', '.join(CALIBRATIONS)})")
    source_out = calibration in ("source_out", "real_source_out")
    if source_out and sources is None:
        raise ValueError("source-out calibration needs each row's source")
    scored = real_head_sources(sources) if calibration == "real_source_out" else None
    if source_out:
        calib = np.zeros(len(labels), bool)
    else:
        rng = np.random.default_rng(seed)
        uniq = np.unique(groups)
        calib = np.isin(groups, uniq[rng.random(uniq.size) < params["calibration_fraction"]])
    labels = np.asarray(labels)
    out: dict[str, Any] = {"kind": "ordinal", "classes": list(LABELS), "monotonic": {}}
    for key, positive in (("at_least_medium", ("Medium", "Bad")), ("bad", ("Bad",))):
        y = np.where(np.isin(labels, positive), "yes", "no")
        out[key] = fit_ensemble(x, y, ("no", "yes"), params, seed, calib, [1] * x.shape[1],
                                sample_weight=sample_weight,
                                groups=list(sources) if source_out else None,
                                scored_groups=scored)
    return out


def real_head_sources(sources: Sequence[str]) -> list[str]:
    """The names among ``sources`` of real heads as acquired (kind ``real``); names that
    are not simulation sources (rated sites' rows) are not among them."""
    from mmrqa_bids.cohorts.simulate import CohortSimulationError, source_by_name

    out = []
    for name in dict.fromkeys(str(s) for s in sources):
        try:
            if source_by_name(name).kind == "real":
                out.append(name)
        except CohortSimulationError:
            continue
    return out


def model_document(family: str, grade: dict[str, Any], features: Sequence[str],
                   naive_cuts: Sequence[float], info: Mapping[str, Any],
                   kind: str = FEATURE_KIND,
                   support: Sequence[float] | None = None) -> dict[str, Any]:
    """The model file's content."""
    from mmrqa_bids import __version__

    stamp = hashlib.sha256(json.dumps(grade).encode()).hexdigest()[:8]
    doc: dict[str, Any] = {
        "format": MODEL_FORMAT, "family": family,
        "model_id": f"mmrqa-cohort-hgb-{family}-{stamp}", "features": list(features),
        "feature_kind": kind, "grade": grade,
        "naive_cuts": [float(c) for c in naive_cuts],
        "training": {**dict(info), "mmrqa_version": __version__,
                     "trainer": "mmrqa_bids.cohorts.train (scripts/train_cohort_model.py)"}}
    if kind != "directional":  # the |z| aggregates are among its input columns
        doc["aggregates"] = list(AGGREGATES)
    if support is not None:
        doc["support"] = {"statistic": "mean_abs_z", "good_max": float(support[0]),
                          "medium_max": float(support[1])}
    return doc


def fit_cohort_model(family: str, table: Mapping[str, np.ndarray],
                     params: Mapping[str, Any] | None = None, seed: int = 0,
                     info: Mapping[str, Any] | None = None,
                     kind: str = FEATURE_KIND,
                     features: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit the grade model on ``kind``'s input, its support bounds and the naive cuts on a
    :func:`cohort_table`; the model file's content.

    A table with a ``weight`` column (simulated and real rated rows,
    :func:`mmrqa_bids.cohorts.rated_sites.combine`) is fitted with those row weights; its
    support bounds and naive cuts are read from the simulated rows only (``real`` False).
    ``features``: the metrics the table's ``z`` / ``rel`` columns are over (default the
    family's :data:`~mmrqa_bids.cohorts.relative.COHORT_FEATURES`)."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"unknown cohort feature kind {kind!r} ({', '.join(FEATURE_KINDS)})")
    features = tuple(features) if features is not None else family_features(family)
    if np.asarray(table["z"]).shape[1] != len(features):
        raise ValueError(f"the table has {np.asarray(table['z']).shape[1]} metric columns for "
                         f"{len(features)} features")
    x = model_input(kind, table["z"], table["rel"])
    weight = table.get("weight")
    grade = fit_grade(x, table["label"], table["cohort"], params, seed,
                      sample_weight=None if weight is None else np.asarray(weight, float),
                      sources=np.asarray(table["source"]))
    grade["monotonic"] = {c: 1 for c in input_names(kind, features)}
    sim = (~np.asarray(table["real"], bool) if "real" in table
           else np.ones(len(table["label"]), bool))
    naive, labels = np.asarray(table["naive"])[sim], np.asarray(table["label"])[sim]
    cuts = choose_naive_cuts(naive, labels)
    extra: dict[str, Any] = {}
    if weight is not None:
        extra["n_real_rows"] = int(np.sum(~sim))
    return model_document(family, grade, features, cuts,
                          {**(info or {}), "params": {**DEFAULT_PARAMS, **(params or {})},
                           "n_rows": int(len(table["label"])), **extra}, kind=kind,
                          support=support_bounds(naive, labels))


def save_model(doc: Mapping[str, Any], out_dir: Path) -> Path:
    """``cohort_<family>.json.gz``, deterministic bytes (no gzip timestamp), atomic."""
    from mmrqa_bids.io import atomic_write_bytes

    text = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return atomic_write_bytes(Path(out_dir) / MODEL_FILES[doc["family"]],
                              gzip.compress(text, compresslevel=9, mtime=0))


def _planned(sources: Sequence[str], floor_levels: Mapping[str, Sequence[float]] | None,
             replicates: int = DEGRADED_REPLICATES) -> dict[str, list]:
    """Pool name -> its runs (:func:`~mmrqa_bids.cohorts.simulate.plan_pool`, ``replicates``
    subjects per artifact x severity): one pool per source, or one per source and floor
    level."""
    from mmrqa_bids.cohorts.simulate import plan_pool, pool_name

    if floor_levels is None:
        return {s: plan_pool(s, per_artifact_severity=replicates) for s in sources}
    return {pool_name(s, v): plan_pool(s, per_artifact_severity=replicates,
                                       floor_level=float(v))
            for s in sources for v in floor_levels[s]}


def limit_replicates(pools: Mapping[str, Sequence[dict[str, Any]]], replicates: int
                     ) -> dict[str, list[dict[str, Any]]]:
    """The pools with every clean run and the degraded runs of the first ``replicates``
    subjects per artifact x severity: the smaller pool :func:`load_pools` would give with
    ``replicates`` (a larger pool keeps every run of a smaller one)."""
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    return {name: [r for r in runs if r["severity"] == "none" or r["replicate"] < replicates]
            for name, runs in pools.items()}


def load_pools(sources: Sequence[str], cache_dir: Path | None, n_jobs: int = 1,
               verbose: bool = True,
               floor_levels: Mapping[str, Sequence[float]] | None = None,
               replicates: int = DEGRADED_REPLICATES) -> dict[str, list[dict[str, Any]]]:
    """Each source's measured pool (:func:`~mmrqa_bids.cohorts.simulate.measure_pool`), or
    with ``floor_levels`` (source -> levels) each (source, level)'s pool, named by
    :func:`~mmrqa_bids.cohorts.simulate.pool_name`; ``replicates`` subjects per artifact x
    severity."""
    from mmrqa_bids.cohorts.simulate import measure_pool

    planned = _planned(sources, floor_levels, replicates)
    runs = [r for rs in planned.values() for r in rs]
    records = measure_pool(runs, cache_dir, n_jobs=n_jobs, verbose=verbose)
    pools: dict[str, list[dict[str, Any]]] = {}
    k = 0
    for name, rs in planned.items():
        pools[name] = records[k:k + len(rs)]
        k += len(rs)
    return pools


def read_pools(sources: Sequence[str], folder: Path,
               floor_levels: Mapping[str, Sequence[float]] | None = None,
               replicates: int = DEGRADED_REPLICATES) -> dict[str, list[dict[str, Any]]]:
    """Each source's pool read from measured records in ``folder`` (one
    ``<run key>.json`` per run of :func:`~mmrqa_bids.cohorts.simulate.plan_pool`, as
    :func:`~mmrqa_bids.cohorts.simulate.measure_run` caches them), in the order
    :func:`load_pools` returns them, **without measuring anything**: a frozen copy of a pool
    trains and benchmarks the same models whatever the current metrics code. FileNotFoundError
    naming the first missing run; the caller checks the metrics codes
    (:func:`~mmrqa_bids.cohorts.simulate.pool_metrics_codes`). ``floor_levels``: as
    :func:`load_pools`, and ``replicates``."""
    from mmrqa_bids.cohorts.simulate import read_record

    folder = Path(folder)
    pools: dict[str, list[dict[str, Any]]] = {}
    for s, runs in _planned(sources, floor_levels, replicates).items():
        recs = []
        for run in runs:
            path = folder / f"{run.key()}.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no measured record of {run} in {folder}")
            recs.append(read_record(path))
        pools[s] = recs
    return pools


def single_code_pools(sources: Sequence[str], cache_dir: Path | None,
                      pool_dir: Path | None = None, n_jobs: int = 1, verbose: bool = True,
                      floor_levels: Mapping[str, Sequence[float]] | None = None,
                      replicates: int = DEGRADED_REPLICATES
                      ) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The sources' pools (:func:`read_pools` from ``pool_dir`` when given, else
    :func:`load_pools`; ``floor_levels`` and ``replicates`` as there) and the one metrics
    code they were measured with; ValueError when they mix codes (a model is trained on
    one)."""
    from mmrqa_bids.cohorts.simulate import pool_metrics_codes

    pools = (read_pools(sources, pool_dir, floor_levels, replicates) if pool_dir is not None
             else load_pools(sources, cache_dir, n_jobs=n_jobs, verbose=verbose,
                             floor_levels=floor_levels, replicates=replicates))
    codes = pool_metrics_codes([r for p in pools.values() for r in p])
    if len(codes) != 1:
        raise ValueError(f"the pool mixes metrics codes {codes}; measure it again with one code")
    return pools, next(iter(codes))
