"""Real rated cohorts as training cohorts of the dataset-relative grade model.

ABIDE's 17 sites (MRIQC's IQMs and expert ratings of 1,101 T1w images, shipped by PyPI
``mriqc-learn``, read by :mod:`mmrqa_bids.mriqc.train`) are real cohorts: one scanner and
protocol each, many subjects, rated by experts. :func:`site_table` turns them into rows of the
same table :func:`mmrqa_bids.cohorts.train.cohort_table` builds from simulated cohorts:

* each image's robust z and relative change against **its own site** (every image of the site
  is a member of the cohort, rated or not; :func:`~mmrqa_bids.cohorts.relative.cohort_z`,
  leave-one-out up to :data:`~mmrqa_bids.cohorts.relative.LOO_MAX_SIZE` images, exactly as the
  grader and ``benchmarks/cohort_mriqc_ratings.py`` compute it), over the model's metrics that
  MRIQC computes under the same name (the others are missing on these rows);
* a label from the ratings (:func:`rating_labels`): excluded (-1) is Bad; doubtful (0) and
  accepted (1) are Good. Doubtful is rater 1's most common rating (261 of 600), i.e. the
  typical image of a site, and the dataset grade's Good means "looks like the study's other
  runs"; labelling it Medium would teach the model that a run at its cohort's centre is
  Medium (model card, "Real rated cohorts in training");
* a **weight** (:func:`real_weights`): the real rows together weigh as much as the simulated
  rows (each real row ``n_sim / n_real``), so ~600 rated rows are not drowned by ~6,000
  simulated ones;
* cohort ids from :data:`SITE_COHORT_OFFSET` on (one calibration group per site), ``real``
  True (the support bounds and the naive cuts are read from the simulated rows only:
  :func:`mmrqa_bids.cohorts.train.fit_cohort_model`).

:func:`leave_site_out` drops one site's rows, for the leave-one-site-out figures of
``benchmarks/cohort_mriqc_ratings.py --loso-real``. DS030 is never a training cohort (it is
the held-out test).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

#: The rated datasets that can enter training (``scripts/train_cohort_model.py
#: --real-ratings``).
RATED_DATASETS = ("abide",)
#: How an image's label is read from its ratings (:func:`rating_labels`).
LABEL_RULES = ("rater_1", "consensus")
DEFAULT_LABEL_RULE = "rater_1"
#: How the real rows are weighted against the simulated ones (:func:`real_weights`).
WEIGHT_RULES = ("equal_total", "none")
DEFAULT_WEIGHT_RULE = "equal_total"
#: Cohort ids of the real sites in a training table (simulated cohorts count from 0).
SITE_COHORT_OFFSET = 1_000_000
#: The rating code of an excluded image (MRIQC's convention: -1 exclude, 0 doubtful, 1 accept).
EXCLUDED = -1


def rating_labels(ratings: Mapping[str, np.ndarray], rule: str = DEFAULT_LABEL_RULE
                  ) -> np.ndarray:
    """Grade labels (object array; None where the rule has no rating) from rater columns
    (codes -1/0/1, NaN where not rated).

    ``rater_1``: rater 1's rating; -1 -> Bad, 0 (doubtful) and 1 -> Good.
    ``consensus``: every rater who rated the image; Bad when at least half of them excluded
    it, else Good."""
    if rule not in LABEL_RULES:
        raise ValueError(f"unknown label rule {rule!r} ({', '.join(LABEL_RULES)})")
    if rule == "rater_1":
        r = np.asarray(ratings["rater_1"], float)
        out = np.full(r.shape, None, dtype=object)
        out[np.isfinite(r)] = "Good"
        out[r == EXCLUDED] = "Bad"
        return out
    cols = np.column_stack([np.asarray(v, float) for _, v in sorted(ratings.items())])
    rated = np.isfinite(cols).sum(1)
    excluded = (cols == EXCLUDED).sum(1)
    out = np.full(len(cols), None, dtype=object)
    out[rated > 0] = "Good"
    out[(rated > 0) & (2 * excluded >= rated)] = "Bad"
    return out


def site_table(X: np.ndarray, names: Sequence[str], sites: np.ndarray, labels: np.ndarray,
               features: Sequence[str], *, exclude_sites: Sequence[str] = (),
               dataset: str = "abide") -> dict[str, np.ndarray]:
    """Training rows of the labelled images of every site not in ``exclude_sites`` (each
    site a cohort of all its images, labelled or not): the keys of
    :func:`mmrqa_bids.cohorts.train.cohort_table` (``source`` is ``dataset:site``, ``artifact``
    ``"rated"``, ``clean`` False: a rating says nothing about an artifact, ``prevalence`` the
    site's share of Bad labels), plus ``real`` (True) and ``site``.

    ``X`` (n_images, len(names)) holds the IQMs, ``names`` their names; a feature MRIQC does
    not compute is missing (NaN) on every row."""
    from mmrqa_bids.cohorts.reference import metric_columns
    from mmrqa_bids.cohorts.relative import cohort_z, naive_score, relative_change

    X = np.asarray(X, float)
    sites = np.asarray(sites)
    labels = np.asarray(labels, dtype=object)
    excluded = set(exclude_sites)
    parts: dict[str, list] = {k: [] for k in ("z", "rel", "label", "site", "cohort", "size",
                                              "prevalence")}
    for k, site in enumerate(np.unique(sites)):
        if site in excluded:
            continue
        sel = np.flatnonzero(sites == site)
        rows = [{n: float(v) for n, v in zip(names, X[i])} for i in sel]
        z, centre, _ = cohort_z(rows, features)
        rel = relative_change(metric_columns(rows, features), centre)
        lab = labels[sel]
        keep = np.array([v is not None for v in lab], dtype=bool)
        if not keep.any():
            continue
        prevalence = float(np.mean(lab[keep] == "Bad"))
        parts["z"].append(z[keep])
        parts["rel"].append(rel[keep])
        parts["label"] += lab[keep].tolist()
        parts["site"] += [str(site)] * int(keep.sum())
        parts["cohort"] += [SITE_COHORT_OFFSET + k] * int(keep.sum())
        parts["size"] += [len(sel)] * int(keep.sum())
        parts["prevalence"] += [prevalence] * int(keep.sum())
    m = len(features)
    z = np.vstack(parts.pop("z")) if parts["label"] else np.empty((0, m))
    rel = np.vstack(parts.pop("rel")) if parts["label"] else np.empty((0, m))
    n = len(parts["label"])
    out = {"z": z, "rel": rel, "label": np.asarray(parts["label"], dtype=object).astype(str),
           "site": np.asarray(parts["site"], dtype=str),
           "cohort": np.asarray(parts["cohort"], dtype=int),
           "size": np.asarray(parts["size"], dtype=int),
           "prevalence": np.asarray(parts["prevalence"], dtype=float),
           "source": np.asarray([f"{dataset}:{s}" for s in parts["site"]], dtype=str),
           "artifact": np.full(n, "rated"), "clean": np.zeros(n, dtype=bool),
           "real": np.ones(n, dtype=bool)}
    out["naive"] = naive_score(z) if n else np.empty(0)
    return out


def abide_site_table(features: Sequence[str], rule: str = DEFAULT_LABEL_RULE, *,
                     exclude_sites: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """:func:`site_table` of ABIDE as ``mriqc-learn`` ships it (RuntimeError when it is not
    installed)."""
    from mmrqa_bids.mriqc.train import mriqc_learn_datasets, read_rated_table

    table = read_rated_table(mriqc_learn_datasets() / "abide.tsv")
    return site_table(table.X, table.names, table.sites, rating_labels(table.ratings, rule),
                      features, exclude_sites=exclude_sites)


def leave_site_out(real: Mapping[str, np.ndarray], site: str) -> dict[str, np.ndarray]:
    """``real`` without the rows of ``site``."""
    keep = np.asarray(real["site"]) != site
    return {k: np.asarray(v)[keep] for k, v in real.items()}


def real_weights(n_sim: int, n_real: int, rule: str = DEFAULT_WEIGHT_RULE) -> float:
    """The weight of each real row (simulated rows weigh 1): ``equal_total`` makes the real
    rows together weigh as much as the simulated ones (``n_sim / n_real``); ``none`` is 1."""
    if rule not in WEIGHT_RULES:
        raise ValueError(f"unknown weight rule {rule!r} ({', '.join(WEIGHT_RULES)})")
    if rule == "none" or n_real == 0:
        return 1.0
    if n_sim == 0:
        return 1.0
    return float(n_sim) / float(n_real)


def combine(sim: Mapping[str, np.ndarray], real: Mapping[str, np.ndarray],
            rule: str = DEFAULT_WEIGHT_RULE) -> dict[str, np.ndarray]:
    """One training table of the simulated rows (weight 1, ``real`` False) and the real rows
    (weight :func:`real_weights`), with the columns both have plus ``weight`` and ``real``."""
    n_sim, n_real = len(sim["label"]), len(real["label"])
    w = real_weights(n_sim, n_real, rule)
    out: dict[str, np.ndarray] = {}
    for k in ("z", "rel", "label", "clean", "source", "cohort", "size", "prevalence",
              "artifact", "naive"):
        a, b = np.asarray(sim[k]), np.asarray(real[k])
        if a.ndim == 2 or b.ndim == 2:
            width = a.shape[1] if a.ndim == 2 else b.shape[1]  # -1 cannot size 0 rows
            out[k] = np.vstack([a.reshape(n_sim, width), b.reshape(n_real, width)])
        else:
            dtype = object if a.dtype.kind in "OUS" or b.dtype.kind in "OUS" else None
            out[k] = np.concatenate([a.astype(dtype) if dtype else a,
                                     b.astype(dtype) if dtype else b])
            if dtype is object:
                out[k] = out[k].astype(str)
    out["real"] = np.concatenate([np.zeros(n_sim, bool), np.ones(n_real, bool)])
    out["weight"] = np.concatenate([np.ones(n_sim), np.full(n_real, w)])
    return out


def training_record(dataset: str, label_rule: str, weight_rule: str, n_sim: int,
                    real: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The model file's ``training.real_ratings``: the rated dataset, the label and weight
    rules, each real row's weight against ``n_sim`` simulated rows, and :func:`describe`."""
    return {"dataset": dataset, "label_rule": label_rule, "weight_rule": weight_rule,
            "row_weight": real_weights(n_sim, len(real["label"]), weight_rule),
            **describe(real)}


def describe(real: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """What the model file's ``training`` info records about the real rows."""
    labels = np.asarray(real["label"])
    return {"rows": int(len(labels)), "sites": sorted(set(np.asarray(real["site"]).tolist())),
            "labels": {k: int(np.sum(labels == k)) for k in ("Good", "Medium", "Bad")}}
