"""Dataset-relative grades: each run against the other runs of its cohort.

A run's *relative* view is the robust z of each of its scale-free metrics against its cohort
(:mod:`mmrqa_bids.cohorts.reference`):

    z_j = clip((x_j - centre_j) / spread_j, -Z_CLIP, Z_CLIP)

For the members of a cohort the centre and spread are computed **without the run itself**
(leave-one-out) while the cohort has at most :data:`LOO_MAX_SIZE` runs; above that one run
moves a robust centre by at most ~1/n of a spread and the cohort's own reference is used.
A new run is graded against a stored reference (:func:`grade_against`).

The grade is read from :func:`model_input` (the shipped models: ``directional``, each metric's
departure above and below its cohort, in z and in relative change; models of format ``/1``
read :func:`relative_features`, the |z| and |relative change|) by the model shipped in
``mmrqa_bids/data/cohort_<family>.json.gz`` (trained on simulated cohorts by
:mod:`mmrqa_bids.cohorts.train`, see ``mmrqa_bids/data/cohort_model_card.md``), then bounded by
its training support (:func:`out_of_support`).
When no model file is installed, the *naive* score is used: the mean |z| over the family's
metrics, cut at :data:`NAIVE_CUTS` (chosen on simulated cohorts, see its comment), and the
grade's ``model_id`` says so.
"""
from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mmrqa_bids.cohorts.reference import (CohortReference, column_stats,
                                          leave_one_out_column_stats, metric_columns)
from mmrqa_bids.grading.base import LABELS
from mmrqa_bids.metrics.names import ANAT_FEATURES, FUNC_FEATURES

MODEL_FORMAT = "mmrqa-cohort-model/2"
#: Model files read: ``/1`` (|z| features, no support bounds) and ``/2`` (``feature_kind``,
#: ``support``).
READABLE_FORMATS = ("mmrqa-cohort-model/1", MODEL_FORMAT)
#: The model inputs (:func:`model_input`): ``abs`` (:func:`relative_features`), ``split``
#: (:func:`split_features`), ``directional`` (``split`` without the |z| aggregates).
FEATURE_KINDS = ("abs", "split", "directional")
MODEL_FILES = {"anat": "cohort_anat.json.gz", "bold": "cohort_bold.json.gz"}
FAMILIES = tuple(MODEL_FILES)
#: Below this many runs a cohort gives no dataset grade (the absolute model's grade is kept).
#: Chosen against that alternative on real heads as acquired, by a rule declared before the
#: run (docs/cohort_selection_history.md, round N6): the smallest n of 3-5 at which the
#: dataset grade, in cohorts of n runs of one real head (benchmarks/small_cohorts_real.py
#: --draws 200 over three real_head_study outputs), grades at most 1% of clean runs Bad and
#: no more than the absolute model on the same runs, is at least 0.05 more accurate against
#: the measured labels, and in simulation (cohort_grading.py --per-cell 10 --sizes 3 4 5 6
#: --seed 200) grades at most 1% of clean runs Bad. At 3 runs: clean runs Bad 28 of 5,000
#: (absolute model 580), accuracy 0.884 (absolute 0.350); simulation 0 of 360 clean runs Bad
#: in each family (at 4 runs anat 5 of 480, 1.04%). 3 is also the least a member needs: two
#: others to compare with. Before 2026-12-03 it was 6 (a rule comparing sizes with each other
#: in simulation only) and 8.
MIN_COHORT_SIZE = 3
#: Members of a cohort up to this size are compared with the others only (leave-one-out).
LOO_MAX_SIZE = 64
Z_CLIP = 10.0
REL_CLIP = 10.0
#: A metric is listed among a run's deviations from |z| >= this (at most MAX_DEVIATIONS).
DEVIATION_MIN_Z = 2.0
MAX_DEVIATIONS = 5
#: The cohort's "typical range" of a metric: centre -/+ this many robust spreads.
TYPICAL_RANGE_Z = 2.0
#: Aggregates of the |z| vector appended to the per-metric z and relative change
#: (:func:`relative_features`).
AGGREGATES = ("mean_abs_z", "rms_z", "max_abs_z", "second_abs_z", "share_above_3")
#: Naive score (mean |z|) cut points (Good | Medium, Medium | Bad) per family, used when no
#: trained model is installed and printed beside the model by the benchmarks. Chosen on the
#: simulated cohorts of mmrqa_bids.cohorts.simulate (every source of the family, 40 cohorts
#: per source, sizes 8-200, prevalence 5-50%) as the pair on a 0.1 grid that maximises
#: macro-F1 over their runs (scripts/train_cohort_model.py prints it and stores it in the
#: model file; benchmarks/cohort_grading.py refits it on the training sources of each fold).
NAIVE_CUTS = {"anat": (1.7, 2.8), "bold": (2.0, 2.7)}
NAIVE_ID = "mmrqa-cohort-naive-mean-abs-z"


class CohortGradeError(ValueError):
    """A cohort or run cannot be graded relatively (too few runs, no shared metric...)."""


#: The metrics a run is compared on, per family: the scale-free ones (unchanged when the image
#: is multiplied by a constant, as :func:`mmrqa_bids.train.metric_model.fit.scale_free_metrics`
#: measures; a scanner's gain differs between sessions), so MRQy's slice-wise set is out
#: (measured not scale-free on anatomical runs) and the edge, bias-field and background
#: metrics that measure scale-free are in.
COHORT_FEATURES: dict[str, tuple[str, ...]] = {
    "anat": tuple(f for f in ANAT_FEATURES if not f.startswith("mrqy_"))
    + ("fov_edge", "head_edge"),
    "bold": FUNC_FEATURES + ("inu_med", "inu_range", "qi_1", "fov_edge", "head_edge",
                             "summary_bg_k", "summary_fg_k"),
}


def family_features(family: str) -> tuple[str, ...]:
    """:data:`COHORT_FEATURES` of a family (the naive score's; a trained model stores its
    own list)."""
    if family not in FAMILIES:
        raise CohortGradeError(f"unknown family {family!r} (anat or bold)")
    return COHORT_FEATURES[family]


# --------------------------------------------------------------------------- relative view
def relative_z(x: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """clip((x - centre) / spread, -Z_CLIP, Z_CLIP); NaN where any term is missing."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip((x - centre) / spread, -Z_CLIP, Z_CLIP)


def leave_one_out_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row i, the robust centre and spread of every column over the other rows:
    two (n, m) arrays (:func:`~mmrqa_bids.cohorts.reference.leave_one_out_column_stats`, the
    loop over rows of ``column_stats`` in one vectorised pass)."""
    return leave_one_out_column_stats(x)


def cohort_z(rows: Sequence[Mapping[str, Any]], features: Sequence[str],
             ref: CohortReference | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, centre, spread) of a cohort's members, each (n, m): leave-one-out up to
    :data:`LOO_MAX_SIZE` runs, else against ``ref`` (or the statistics of all rows)."""
    x = metric_columns(rows, features)
    if len(rows) <= LOO_MAX_SIZE:
        centre, spread = leave_one_out_stats(x)
    elif ref is not None:
        c, s = ref.stats(features)
        centre, spread = np.tile(c, (len(rows), 1)), np.tile(s, (len(rows), 1))
    else:
        c, s = column_stats(x)
        centre, spread = np.tile(c, (len(rows), 1)), np.tile(s, (len(rows), 1))
    return relative_z(x, centre, spread), centre, spread


def relative_change(x: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """clip((x - centre) / |centre|, -REL_CLIP, REL_CLIP): how far a metric moved from the
    cohort's centre as a fraction of it (NaN where missing or the centre is 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip((x - centre) / np.abs(centre), -REL_CLIP, REL_CLIP)


def relative_features(z: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """The model's input from the (n, m) z and relative-change matrices: |z_j| and |rel_j|
    (:func:`relative_change`) for each metric, then :data:`AGGREGATES` over the finite |z|
    of the run: mean, root mean square, largest, second largest, share above 3. NaN stays
    NaN per metric (a missing metric: the trees' missing-value branch).

    Absolute values, so that the model can be monotonic in every feature (a run further from
    its cohort is never graded better, whatever the direction of its departure); the
    relative change beside z, because z is in units of the cohort's own spread, which
    differs between studies, while rel says how large the change is."""
    a = np.abs(np.atleast_2d(np.asarray(z, float)))
    r = np.abs(np.atleast_2d(np.asarray(rel, float)))
    return np.column_stack([a, r, abs_z_aggregates(a)])


def abs_z_aggregates(a: np.ndarray) -> np.ndarray:
    """:data:`AGGREGATES` of each row of the (n, m) |z| over its finite values: mean, root
    mean square, largest, second largest (the largest when alone), share above 3; NaN for a
    row without any."""
    agg = np.full((a.shape[0], len(AGGREGATES)), np.nan)
    for i in range(a.shape[0]):
        v = np.sort(a[i][np.isfinite(a[i])])[::-1]
        if v.size:
            agg[i] = [v.mean(), math.sqrt(float(np.mean(v * v))), v[0],
                      v[1] if v.size > 1 else v[0], float(np.mean(v > 3.0))]
    return agg


def split_features(z: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """The model's input split by direction: for each metric z+ = max(z, 0), then z- =
    max(-z, 0) for each, then rel+ and rel- likewise (:func:`relative_change`), then the
    :data:`AGGREGATES` of |z| (as :func:`relative_features`). NaN stays NaN.

    Every column is a distance from the cohort in one direction, so a model monotonic
    non-decreasing in each still never grades a run better when it moves further away in any
    direction (scaling a run's departures by a factor > 1 raises one of z+ / z- of every
    metric and leaves the other at 0), yet it may learn that only one direction of a metric
    signals degradation (SNR down, not up), which |z| cannot tell apart."""
    z = np.atleast_2d(np.asarray(z, float))
    return np.column_stack([directional_features(z, rel), abs_z_aggregates(np.abs(z))])


def directional_features(z: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """z+, z-, rel+, rel- of every metric (:func:`split_features` without the aggregates)."""
    z = np.atleast_2d(np.asarray(z, float))
    rel = np.atleast_2d(np.asarray(rel, float))
    with np.errstate(invalid="ignore"):
        parts = [np.where(np.isnan(v), np.nan, np.maximum(v, 0.0)) for v in (z, -z, rel, -rel)]
    return np.column_stack(parts)


def model_input(kind: str, z: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """The model's input of a feature ``kind`` (:data:`FEATURE_KINDS`). ``directional``
    leaves out the aggregates of |z|: they count a departure whatever its direction, as the
    naive score does, while the per-metric columns let the trees learn which direction of
    which metric signals degradation (model card, "How the input was chosen")."""
    if kind == "split":
        return split_features(z, rel)
    if kind == "directional":
        return directional_features(z, rel)
    if kind == "abs":
        return relative_features(z, rel)
    raise CohortGradeError(f"unknown cohort feature kind {kind!r} ({', '.join(FEATURE_KINDS)})")


def input_names(kind: str, metrics: Sequence[str]) -> list[str]:
    """Column names of :func:`model_input` (the model file's monotonic constraints)."""
    if kind in ("split", "directional"):
        cols = [f"{p}:{m}" for p in ("z_pos", "z_neg", "rel_pos", "rel_neg") for m in metrics]
        if kind == "directional":
            return cols
    elif kind == "abs":
        cols = [f"{p}:{m}" for p in ("abs_z", "abs_rel") for m in metrics]
    else:
        raise CohortGradeError(f"unknown cohort feature kind {kind!r} "
                               f"({', '.join(FEATURE_KINDS)})")
    return cols + list(AGGREGATES)


def out_of_support(p: np.ndarray, score: np.ndarray, support: Sequence[float]) -> np.ndarray:
    """Grade probabilities bounded by the training support ``(good_max, medium_max)``: the
    largest naive score (:func:`naive_score`, mean |z|) of a training run labelled Good, and
    of one labelled Good or Medium. Where ``score > good_max`` the run is never Good (a =
    P(>= Medium) := 1, so P(Good) moves to Medium); where ``score > medium_max`` it is Bad
    (b = P(Bad) := 1).

    Why: trees are flat beyond the last split, so a run further from its cohort than any
    training run gets the grade of the training runs at the edge, which may be Good when
    every metric moved in a direction the simulated artifacts never take (a run 10 robust SD
    off in every metric, random directions). Both bounds raise a and b only, so the grade
    stays non-decreasing in every distance."""
    p = np.array(p, dtype=float, copy=True)
    s = np.asarray(score, float)
    a = p[:, 1] + p[:, 2]
    b = p[:, 2]
    with np.errstate(invalid="ignore"):
        a = np.where(s > support[0], 1.0, a)
        b = np.where(s > support[1], 1.0, b)
    b = np.minimum(a, b)
    return np.column_stack([1.0 - a, a - b, b])


def ordinal_labels(p: np.ndarray) -> np.ndarray:
    """The grade index (0 Good, 1 Medium, 2 Bad) of each row of Good/Medium/Bad
    probabilities: the median class, Bad when P(Bad) >= 0.5, else Medium when P(>= Medium) >=
    0.5, else Good. The two cumulative models (:class:`~mmrqa_bids.grading.classifier.
    OrdinalEnsemble`) each say which side of one cut a run lies, and the median reads exactly
    that, so a temperature (which rescales each model's logit, never its sign) moves the
    confidence and not the grade; the argmax of (1 - a, a - b, b) would move with it."""
    p = np.atleast_2d(np.asarray(p, float))
    return np.where(p[:, 2] >= 0.5, 2, np.where(p[:, 1] + p[:, 2] >= 0.5, 1, 0))


def naive_score(z: np.ndarray) -> np.ndarray:
    """The unfitted score: mean over finite metrics of |z| (clipped at Z_CLIP)."""
    a = np.abs(np.atleast_2d(z))
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.where(np.isfinite(a), a, np.nan), axis=1)


def naive_probabilities(score: np.ndarray, cuts: Sequence[float], width: float = 0.25
                        ) -> np.ndarray:
    """Ordinal probabilities around the cut points (not calibrated: the naive score has
    nothing fitted beyond its cuts): a = sigmoid((s - c1) / (w c1)), b = sigmoid((s - c2) /
    (w c2)); P(Good) = 1 - a, P(Medium) = a - min(a, b), P(Bad) = min(a, b)."""
    s = np.asarray(score, float)
    a = 1.0 / (1.0 + np.exp(-(s - cuts[0]) / (width * cuts[0])))
    b = np.minimum(a, 1.0 / (1.0 + np.exp(-(s - cuts[1]) / (width * cuts[1]))))
    return np.column_stack([1.0 - a, a - b, b])


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class CohortModel:
    """A family's relative grade model: the shipped trained one, or the naive score."""

    family: str
    model_id: str
    features: tuple[str, ...]
    grade: Any = None  # TreeEnsemble | OrdinalEnsemble; None: the naive score
    naive_cuts: tuple[float, float] = NAIVE_CUTS["anat"]
    feature_kind: str = "abs"  # FEATURE_KINDS
    #: (good_max, medium_max) of :func:`out_of_support`; None: unbounded (format /1 files)
    support: tuple[float, float] | None = None
    #: the metrics code its training pool was measured with (None: unknown or mixed, /1)
    metrics_code: str | None = None

    def predict_proba(self, z: np.ndarray, rel: np.ndarray) -> np.ndarray:
        """Good/Medium/Bad probabilities, (n, 3), from the (n, m) z and relative changes over
        :attr:`features` (the naive score reads z only)."""
        if self.grade is None:
            return naive_probabilities(naive_score(z), self.naive_cuts)
        p = self.grade.predict_proba(model_input(self.feature_kind, z, rel))
        if self.support is not None:
            p = out_of_support(p, naive_score(z), self.support)
        return p

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CohortModel":
        from mmrqa_bids.grading.classifier import grade_ensemble

        fmt = d.get("format")
        if fmt not in READABLE_FORMATS:
            raise CohortGradeError(f"not a cohort model this version reads (format {fmt!r}, "
                                   f"expected one of {', '.join(READABLE_FORMATS)})")
        kind = str(d.get("feature_kind", "abs"))
        if kind not in FEATURE_KINDS:
            raise CohortGradeError(f"cohort model {d.get('model_id')!r}: unknown feature kind "
                                   f"{kind!r} ({', '.join(FEATURE_KINDS)})")
        support = d.get("support")
        code = d.get("training", {}).get("metrics_code")
        return cls(family=str(d["family"]), model_id=str(d["model_id"]),
                   features=tuple(d["features"]), grade=grade_ensemble(d["grade"]),
                   naive_cuts=tuple(d.get("naive_cuts", NAIVE_CUTS[d["family"]])),
                   feature_kind=kind,
                   support=None if support is None else (float(support["good_max"]),
                                                         float(support["medium_max"])),
                   metrics_code=code if isinstance(code, str) else None)


def naive_model(family: str, cuts: Sequence[float] | None = None) -> CohortModel:
    """The unfitted mean-|z| score over the family's scale-free metrics."""
    c = tuple(float(v) for v in (cuts or NAIVE_CUTS[family]))
    return CohortModel(family=family, model_id=f"{NAIVE_ID}-{family}",
                       features=family_features(family), naive_cuts=c)  # type: ignore[arg-type]


def read_model_file(path: str | Path) -> CohortModel:
    """A cohort model file (gzipped JSON); CohortGradeError naming the file if unreadable."""
    path = Path(path)
    try:
        doc = json.loads(gzip.decompress(path.read_bytes()).decode())
        return CohortModel.from_dict(doc)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CohortGradeError(f"{path}: not a readable cohort model ({exc})") from exc


@lru_cache(maxsize=4)
def load_cohort_model(family: str) -> CohortModel:
    """The shipped model of a family, or the naive score when none is installed."""
    from mmrqa_bids.resources import data_dir

    if family not in FAMILIES:
        raise CohortGradeError(f"unknown family {family!r} (anat or bold)")
    path = data_dir() / MODEL_FILES[family]
    return read_model_file(path) if path.is_file() else naive_model(family)


# --------------------------------------------------------------------------- grades
@dataclass(frozen=True)
class Deviation:
    """One metric that sets a run apart from its cohort; ``low``-``high`` is the cohort's
    typical range (centre -/+ :data:`TYPICAL_RANGE_Z` robust spreads)."""

    metric: str
    value: float
    z: float
    centre: float
    low: float
    high: float


@dataclass(frozen=True)
class RelativeGrade:
    label: str  # Good | Medium | Bad
    probabilities: dict[str, float]
    confidence: float
    deviations: tuple[Deviation, ...]  # |z| descending, at most MAX_DEVIATIONS
    model_id: str


def deviations(names: Sequence[str], x: np.ndarray, z: np.ndarray, centre: np.ndarray,
               spread: np.ndarray) -> tuple[Deviation, ...]:
    """The metrics with |z| >= :data:`DEVIATION_MIN_Z`, |z| descending, at most
    :data:`MAX_DEVIATIONS` (``z`` unclipped: the narrative quotes it)."""
    order = [j for j in np.argsort(-np.nan_to_num(np.abs(z), nan=-1.0))
             if np.isfinite(z[j]) and abs(z[j]) >= DEVIATION_MIN_Z][:MAX_DEVIATIONS]
    return tuple(Deviation(metric=names[j], value=float(x[j]), z=float(z[j]),
                           centre=float(centre[j]),
                           low=float(centre[j] - TYPICAL_RANGE_Z * spread[j]),
                           high=float(centre[j] + TYPICAL_RANGE_Z * spread[j])) for j in order)


def _grades(model: CohortModel, x: np.ndarray, z: np.ndarray, centre: np.ndarray,
            spread: np.ndarray) -> list[RelativeGrade]:
    if not np.isfinite(z).any(axis=1).all():
        raise CohortGradeError("a run shares no finite metric with its cohort's reference")
    p = model.predict_proba(z, relative_change(x, centre))
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = (x - centre) / spread  # unclipped, for the narrative
    out = []
    ks = ordinal_labels(p)
    for i in range(len(z)):
        probs = {lab: float(v) for lab, v in zip(LABELS, p[i])}
        k = int(ks[i])
        out.append(RelativeGrade(label=LABELS[k], probabilities=probs,
                                 confidence=float(p[i][k]),
                                 deviations=deviations(model.features, x[i], raw[i],
                                                       centre[i], spread[i]),
                                 model_id=model.model_id))
    return out


def grade_cohort(ref: CohortReference, rows: Sequence[Mapping[str, float]], family: str,
                 *, model: CohortModel | None = None) -> list[RelativeGrade]:
    """Grades of the members of a cohort, ``rows`` in the order of ``ref.members`` (each
    against the others while the cohort has at most :data:`LOO_MAX_SIZE` runs).
    CohortGradeError below :data:`MIN_COHORT_SIZE` runs or when the rows do not match."""
    model = model or load_cohort_model(family)
    if len(rows) != ref.n:
        raise CohortGradeError(f"cohort {ref.cohort_id!r}: {len(rows)} rows for a reference "
                               f"of {ref.n} runs (grade new runs with grade_against)")
    if len(rows) < MIN_COHORT_SIZE:
        raise CohortGradeError(f"cohort {ref.cohort_id!r} has {len(rows)} runs; a dataset "
                               f"grade needs at least {MIN_COHORT_SIZE}")
    return member_grades(model, rows, ref)


def member_grades(model: CohortModel, rows: Sequence[Mapping[str, float]],
                  ref: CohortReference | None = None) -> list[RelativeGrade]:
    """Each row's grade against the other rows (:func:`cohort_z`), without the size check of
    :func:`grade_cohort` (which calls it): benchmarks grade cohorts below the minimum with it
    to choose :data:`MIN_COHORT_SIZE`."""
    z, centre, spread = cohort_z(rows, model.features, ref)
    return _grades(model, metric_columns(rows, model.features), z, centre, spread)


def grade_against(ref: CohortReference, metrics: Mapping[str, float], family: str,
                  *, model: CohortModel | None = None) -> RelativeGrade:
    """The grade of a new run against a stored reference (no leave-one-out: the run is not
    a member). CohortGradeError when the reference is smaller than :data:`MIN_COHORT_SIZE`."""
    model = model or load_cohort_model(family)
    if ref.n < MIN_COHORT_SIZE:
        raise CohortGradeError(f"cohort {ref.cohort_id!r} has {ref.n} runs; a dataset grade "
                               f"needs at least {MIN_COHORT_SIZE}")
    x = metric_columns([metrics], model.features)
    c, s = ref.stats(model.features)
    z = relative_z(x, c[None], s[None])
    return _grades(model, x, z, c[None], s[None])[0]


# --------------------------------------------------------------------------- guard rails
#: A cohort whose runs are graded down (Medium or Bad) by both models in more than this share
#: gets a warning: its reference may itself be degraded.
DEGRADED_REFERENCE_SHARE = 0.5
#: Bimodality of a metric over a cohort's runs (:func:`bimodality`): the two-group split of
#: its sorted values (each group at least BIMODAL_MIN_SHARE of the runs) with the largest
#: Ashman's D = sqrt(2) |m1 - m2| / sqrt(s1^2 + s2^2) has D > BIMODAL_MIN_D and an empty gap
#: between the groups wider than BIMODAL_MIN_GAP pooled within-group SDs; checked from
#: BIMODAL_MIN_RUNS runs, and a cohort is flagged when BIMODAL_MIN_METRICS metrics are
#: bimodal. (Ashman et al. 1994 read D > 2 on a fitted mixture; the best split of one
#: normal sample already reaches D 4.4 and a gap of 1.5 SD at their 99th percentiles with 24
#: runs, while two normal modes 8 SD apart give D ~6.6 and a gap ~3: measured by simulation,
#: 2,000 draws.)
BIMODAL_MIN_D = 5.0
BIMODAL_MIN_GAP = 1.5
BIMODAL_MIN_SHARE = 0.25
BIMODAL_MIN_RUNS = 20
BIMODAL_MIN_METRICS = 3


def bimodality(values: Sequence[float], min_share: float = BIMODAL_MIN_SHARE
               ) -> tuple[float, float]:
    """(Ashman's D, gap in pooled SDs) of the two-group split of the sorted finite values
    (each group >= ``min_share`` of them) that maximises D; (0, 0) when none qualifies."""
    v = np.asarray(values, float)
    v = np.sort(v[np.isfinite(v)])
    n = v.size
    k_min = max(2, int(math.ceil(min_share * n)))
    if n - k_min < k_min:
        return 0.0, 0.0
    k = np.arange(k_min, n - k_min + 1)  # size of the lower group
    c1, c2 = np.cumsum(v), np.cumsum(v * v)
    m_a, m_b = c1[k - 1] / k, (c1[-1] - c1[k - 1]) / (n - k)
    var_a = np.maximum(c2[k - 1] / k - m_a ** 2, 0.0)
    var_b = np.maximum((c2[-1] - c2[k - 1]) / (n - k) - m_b ** 2, 0.0)
    pooled = np.maximum(np.sqrt(var_a + var_b), 1e-12)
    d = math.sqrt(2.0) * np.abs(m_b - m_a) / pooled
    best = int(np.argmax(d))
    gap = (v[k[best]] - v[k[best] - 1]) / (pooled[best] / math.sqrt(2.0))
    return float(d[best]), float(gap)


def bimodal_metrics(ref: CohortReference, rows: Sequence[Mapping[str, float]],
                    names: Sequence[str]) -> list[str]:
    """The metrics among ``names`` whose values over ``rows`` are bimodal (see
    :data:`BIMODAL_MIN_D`); none below :data:`BIMODAL_MIN_RUNS` runs."""
    x = metric_columns(rows, names)
    out = []
    for j, n in enumerate(names):
        if np.isfinite(x[:, j]).sum() >= BIMODAL_MIN_RUNS:
            d, gap = bimodality(x[:, j])
            if d > BIMODAL_MIN_D and gap > BIMODAL_MIN_GAP:
                out.append(n)
    return out


def cohort_warnings(ref: CohortReference, grades: Sequence[RelativeGrade],
                    absolute_labels: Sequence[str | None], *,
                    rows: Sequence[Mapping[str, float]] | None = None,
                    family: str | None = None) -> list[str]:
    """Plain-English warnings about a cohort as a reference: most of its runs graded down by
    both the dataset grade and the absolute model (the reference may itself be degraded),
    and, when ``rows`` (the members' metrics) are given, a bimodal cohort (two kinds of run:
    two protocols mixed, or a large degraded group)."""
    if len(grades) != len(absolute_labels):
        raise CohortGradeError(f"cohort {ref.cohort_id!r}: {len(grades)} grades for "
                               f"{len(absolute_labels)} absolute labels")
    out = []
    both = sum(1 for g, a in zip(grades, absolute_labels)
               if g.label != "Good" and a is not None and a != "Good")
    if grades and both / len(grades) > DEGRADED_REFERENCE_SHARE:
        out.append(f"Cohort {ref.cohort_id}: {both} of {len(grades)} runs are graded Medium or "
                   "Bad both against the cohort and by the absolute model; the cohort itself "
                   "may be degraded, so its dataset grades may be too lenient.")
    if rows is not None:
        names = (load_cohort_model(family).features if family else ref.metrics)
        names = [n for n in names if n in set(ref.metrics)]
        bimodal = bimodal_metrics(ref, rows, names)
        if len(bimodal) >= min(BIMODAL_MIN_METRICS, max(1, len(names))):
            out.append(f"Cohort {ref.cohort_id}: the runs fall into two distinct groups in "
                       f"{len(bimodal)} metrics ({', '.join(bimodal[:4])}); the cohort may mix "
                       "two protocols or hold a large group of degraded runs, so check the "
                       "grouping before trusting its dataset grades.")
    return out
