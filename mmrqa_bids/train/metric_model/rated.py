"""The metric classifier fitted on a study's own ratings (the ``train`` level without a base
model), one family (anat, bold) at a time and each on its own:

* the **grade model** is fitted on the family's training examples (rated runs and their
  simulated copies) when every grade has at least :data:`MIN_PER_CLASS` of them; otherwise
  the family keeps the shipped model and :func:`shortfall_line` says how many more ratings of
  which grade it needs;
* the **artifact model** is fitted only on examples whose artifact type is known (an
  ``artifact`` column, a simulated copy, or a run rated Good: "none") and only when every
  type has :data:`MIN_PER_CLASS` of them; otherwise the shipped artifact model is kept inside
  the new model file, and the file's recipe says so (``artifact_model``);
* both use the shipped model's features (the kept artifact trees index them; the grade
  model then sees what the default grader sees);
* the **dataset-relative grade model** (the group level's dataset grade, and
  ``participant --reference``'s) is the shipped one recalibrated on the ratings
  (:func:`fit_rated_cohort_family`): the rated runs' robust z against the other rated runs of
  their suffix (the rated dataset is the cohort, its reference), each ordinal head's logit
  refitted as a s + b with a prior towards the shipped model (:func:`fit_affine`), folded
  into an ordinary cohort model file (``cohort_<family>.json.gz``). Being relative, it
  carries to the next batch of the same study, graded against its own cohort or a stored
  reference. ``benchmarks/rated_learning_curve.py`` measures it.

Pure functions here; the level (:mod:`mmrqa_bids.train.level`) reads, writes and prints.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections import Counter
from typing import Any, Sequence

import numpy as np

from mmrqa_bids.grading.base import LABELS
from mmrqa_bids.vocabulary import family_of

#: Fewest training examples of each class (each grade for the grade model; "none" and each
#: artifact type for the artifact model) to fit a family's model on the ratings; below it the
#: shipped one is kept. Chosen from ``benchmarks/rated_classifier_minimum.py`` (README,
#: "Training on your own ratings").
MIN_PER_CLASS = 5
CALIBRATION_FRACTION = 0.2


def shortfall(labels: Sequence[str], classes: Sequence[str], minimum: int) -> dict[str, int]:
    """Per class short of ``minimum`` examples, how many more it needs:
    ``minimum - count(class)`` (classes in their given order, satisfied ones left out)."""
    counts = Counter(labels)
    return {c: minimum - counts[c] for c in classes if counts[c] < minimum}


def shortfall_line(family: str, counts: dict[str, int], short: dict[str, int],
                   holdout_fraction: float, minimum: int) -> str:
    """The one warning line of a family that keeps the shipped model. Ratings needed in all
    are scaled up for the held-out share: ceil(k / (1 - holdout_fraction))."""
    keep = max(1.0 - holdout_fraction, 1e-9)
    need = ", ".join(f"{k} more {c}" for c, k in short.items())
    total = ", ".join(f"{math.ceil(k / keep)} {c}" for c, k in short.items())
    have = ", ".join(f"{c} {counts.get(c, 0)}" for c in LABELS)
    return (f"WARNING {family}: too few training examples ({have}; at least {minimum} per "
            f"grade), the shipped {family} model is kept: it needs {need} in the training "
            f"split, that is about {total} more rated runs with --holdout-fraction "
            f"{holdout_fraction:g}")


def stratified_calibration(labels: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """Calibration rows drawn class by class: floor(fraction * n_c) of each class's n_c rows,
    at random, so that every class keeps most of its rows for the trees (a random 20% of
    fifteen rated runs can take all three of a class)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    calib = np.zeros(len(labels), dtype=bool)
    for c in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == c)
        calib[rng.choice(idx, size=int(fraction * len(idx)), replace=False)] = True
    return calib


def small_data_params(params: dict[str, Any], n_fit: int) -> dict[str, Any]:
    """The recipe's tree settings for ``n_fit`` fitted rows: leaves of at least
    max(2, min(recipe, n_fit // 10)) rows (the recipe's 8 were set for thousands of simulated
    runs; with fewer than 16 rows they forbid every split)."""
    leaf = max(2, min(int(params["min_samples_leaf"]), n_fit // 10))
    # Rated runs carry no source to leave out: their temperature is fitted on held-out ratings.
    return {**params, "min_samples_leaf": leaf, "calibration": "random"}


#: The rating widget's choice for an artifact outside the classifier's types: accepted, and
#: left out of the artifact model (its type is unknown to it), as a grade without artifact is.
OTHER_ARTIFACT = "other"


def known_artifact(entry: dict[str, Any]) -> str | None:
    """An example's artifact type when known: its label (given or simulated), "none" for a run
    rated Good without one, else None (a Medium/Bad rating says nothing of the cause, nor
    does the widget's "other")."""
    if entry.get("artifact") == OTHER_ARTIFACT:
        return None
    if entry.get("artifact"):
        return str(entry["artifact"])
    return "none" if entry["label"] == "Good" else None


def read_model_doc(path) -> dict[str, Any]:
    """A (gzipped) model file's JSON content."""
    raw = open(path, "rb").read()
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def split_by_family(entries: Sequence[dict[str, Any]]) -> dict[str, dict[str, list]]:
    """family -> {"train": [...], "test": [...]} examples."""
    out: dict[str, dict[str, list]] = {}
    for e in entries:
        out.setdefault(family_of(e["suffix"]), {"train": [], "test": []})[e["split"]].append(e)
    return out


def fit_rated_family(family: str, train: Sequence[dict[str, Any]], shipped: dict[str, Any],
                     seed: int, minimum: int = MIN_PER_CLASS) -> tuple[dict[str, Any] | None,
                                                                        dict[str, Any]]:
    """(model file content or None, record) for one family's training examples.

    None when a grade has fewer than ``minimum`` examples (the record's ``short`` says how
    many more). The artifact model is fitted when every type has ``minimum`` examples of known
    type (:func:`known_artifact`), else the ``shipped`` one is kept.

    The trees are fitted on one OpenMP thread: on tens of rows threads cost more than they
    save, and on a busy machine far more (a 15-run fit took 16 s with the default threads
    and 2 s with one, on a loaded 2-core host)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return _fit_rated_family(family, train, shipped, seed, minimum)


def _fit_rated_family(family: str, train: Sequence[dict[str, Any]], shipped: dict[str, Any],
                      seed: int, minimum: int) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    from mmrqa_bids.artifacts import ARTIFACTS
    from mmrqa_bids.grading.classifier import metric_matrix
    from mmrqa_bids.train.metric_model.fit import fit_model
    from mmrqa_bids.train.metric_model.recipe import DEFAULT_RECIPE
    from mmrqa_bids.train.metric_model.sources import TrainingError
    from mmrqa_bids.train.metric_model.trees import fit_ensemble

    labels = [e["label"] for e in train]
    counts = dict(Counter(labels))
    record: dict[str, Any] = {"trained": False, "n_train": len(train), "counts": counts,
                              "n_simulated": sum(e["origin"] == "simulated" for e in train)}
    short = shortfall(labels, LABELS, minimum)
    if short:
        record.update(short=short, reason=f"fewer than {minimum} training examples of "
                                          + ", ".join(short))
        return None, record
    features = list(shipped["features"])
    calib = stratified_calibration(labels, CALIBRATION_FRACTION, seed)
    params = small_data_params(DEFAULT_RECIPE["model"], int((~calib).sum()))
    typed = [(e, a) for e in train if (a := known_artifact(e)) is not None]
    art_classes = ("none",) + tuple(ARTIFACTS)
    art_short = shortfall([a for _, a in typed], art_classes, minimum)
    if art_short:
        artifact = shipped["artifact"]
        art_record = {"trained": False, "model_id": shipped["model_id"],
                      "reason": ("no artifact label among the ratings" if
                                 not any(a != "none" for _, a in typed) else
                                 f"fewer than {minimum} examples of " + ", ".join(art_short))
                      + "; the shipped artifact model is kept"}
    else:
        a_labels = [a for _, a in typed]
        a_calib = stratified_calibration(a_labels, CALIBRATION_FRACTION, seed)
        artifact = fit_ensemble(metric_matrix([e["metrics"] for e, _ in typed], features),
                                a_labels, art_classes,
                                small_data_params(DEFAULT_RECIPE["model"], int((~a_calib).sum())),
                                seed, a_calib)
        art_record = {"trained": True, "n_train": len(typed),
                      "counts": dict(Counter(a_labels))}
    try:
        doc = fit_model(family, [e["metrics"] for e in train], labels,
                        [known_artifact(e) or "none" for e in train],
                        [e["label"] == "Good" and not e.get("artifact") for e in train],
                        params=params, seed=seed, features=features, calib=calib,
                        artifact_model=artifact,
                        label_map="the ratings' grades (simulated copies: their severity's)")
    except TrainingError as exc:  # e.g. fewer than 5 clean runs for the reference ranges
        record.update(reason=str(exc))
        return None, record
    doc["model_id"] = doc["model_id"].replace("mmrqa-metric-hgb-", "mmrqa-metric-rated-", 1)
    doc["recipe"]["artifact_model"] = art_record
    doc["recipe"]["trainer"] = "mmrqa_bids.train.metric_model.rated (train level)"
    doc["recipe"]["min_per_class"] = minimum
    record.update(trained=True, model_id=doc["model_id"], artifact_model=art_record,
                  min_samples_leaf=params["min_samples_leaf"])
    return doc, record


def held_out_scores(doc: dict[str, Any], test: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """:func:`~mmrqa_bids.train.metric_model.fit.evaluate_model` on held-out examples, with the
    artifact accuracy only where every degraded example's artifact type is known."""
    from mmrqa_bids.train.metric_model.fit import evaluate_model

    degraded = [e for e in test if e["label"] != "Good"]
    typed = all(e.get("artifact") for e in degraded)
    return evaluate_model(doc, [e["metrics"] for e in test], [e["label"] for e in test],
                          [known_artifact(e) or "none" for e in test] if typed else None)


# --------------------------------------------------------------------------- relative model
#: Penalty weight of the recalibration's prior (:func:`recalibrate_cohort_model`), in units
#: of one rating's log-loss: with few ratings the model stays near the shipped one.
RECALIBRATION_PRIOR = 2.0
#: Fewest expert ratings of a family (in cohorts large enough for relative features) to
#: recalibrate the dataset-relative model; below it the shipped one is kept.
MIN_RELATIVE_RATINGS = 5
#: The two heads of the ordinal cohort model and the grades each calls positive.
ORDINAL_HEADS = (("at_least_medium", ("Medium", "Bad")), ("bad", ("Bad",)))


def model_inputs(doc: dict[str, Any], z: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """A cohort model file's input from the (n, m) robust z and relative changes of its
    features: the columns its trees index (``feature_kind``: |z| and |rel| per metric, or
    split by direction; aggregates of |z|), as the grader builds them."""
    from mmrqa_bids.cohorts import relative

    return relative.model_input(str(doc.get("feature_kind", "abs")), z, rel)


def head_logits(doc: dict[str, Any], z: np.ndarray, rel: np.ndarray) -> dict[str, np.ndarray]:
    """Each ordinal head's calibrated logit raw / T (clipped at +-30) of a cohort model file's
    content, for runs with robust z ``z`` and relative changes ``rel`` over its features."""
    from mmrqa_bids.grading.classifier import TreeEnsemble

    x = model_inputs(doc, np.atleast_2d(z), np.atleast_2d(rel))
    out = {}
    for key, _ in ORDINAL_HEADS:
        head = TreeEnsemble.from_dict(doc["grade"][key])
        out[key] = np.clip(head.raw(x)[:, 0] / head.temperature, -30.0, 30.0)
    return out


def fit_affine(s: np.ndarray, y: np.ndarray, prior_weight: float = RECALIBRATION_PRIOR
               ) -> tuple[float, float]:
    """(a, b) minimising sum_i logloss(sigmoid(a s_i + b), y_i) + w ((a - 1)^2 + b^2), with
    a in [0.05, 20]: Platt scaling of a logit, shrunk towards the identity (a = 1, b = 0) so
    that a handful of ratings moves the boundary a little and many move it as far as they
    show (a rater stricter than the shipped model's grades: b > 0)."""
    from scipy.optimize import minimize

    s, y = np.asarray(s, float), np.asarray(y, float)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        t = w[0] * s + w[1]
        g = 1.0 / (1.0 + np.exp(-t)) - y
        value = float(np.sum(np.logaddexp(0.0, t) - y * t)
                      + prior_weight * ((w[0] - 1.0) ** 2 + w[1] ** 2))
        return value, np.array([np.sum(g * s) + 2 * prior_weight * (w[0] - 1.0),
                                np.sum(g) + 2 * prior_weight * w[1]])

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                   bounds=[(0.05, 20.0), (-30.0, 30.0)])
    return float(res.x[0]), float(res.x[1])


def recalibrate_cohort_model(doc: dict[str, Any], z: np.ndarray, rel: np.ndarray,
                             labels: Sequence[str],
                             prior_weight: float = RECALIBRATION_PRIOR) -> dict[str, Any]:
    """The dataset-relative grade model (a cohort model file's content, :mod:`mmrqa_bids.
    cohorts.relative`) fitted to a rater's grades: each ordinal head's logit s becomes
    a s + b (:func:`fit_affine` on the rated runs, robust z ``z`` and relative changes
    ``rel`` against their cohort over the model's features), folded into the
    head's own parameters (temperature T / a, baseline + b T / a) so that the result is an
    ordinary cohort model file that the grader loads unchanged. The trees, and so the
    features and their monotonicity, are the shipped model's (and so are its support bounds,
    applied after the heads)."""
    labels = np.asarray(labels)
    logits = head_logits(doc, z, rel)
    new = json.loads(json.dumps(doc))
    heads = {}
    for key, positive in ORDINAL_HEADS:
        a, b = fit_affine(logits[key], np.isin(labels, positive).astype(float), prior_weight)
        head = new["grade"][key]
        t = float(head.get("temperature", 1.0))
        head["temperature"] = t / a
        head["baseline"] = [float(v) + b * t / a for v in head["baseline"]]
        heads[key] = {"slope": a, "offset": b}
    stamp = hashlib.sha256(json.dumps(heads, sort_keys=True).encode()).hexdigest()[:8]
    new["model_id"] = f"mmrqa-cohort-rated-{doc['family']}-{stamp}"
    new["recalibration"] = {"base_model_id": doc["model_id"], "heads": heads,
                            "prior_weight": prior_weight, "n": int(len(labels)),
                            "counts": dict(Counter(labels.tolist())),
                            "trainer": "mmrqa_bids.train.metric_model.rated "
                                       "(train level, relative features)"}
    return new


def relative_examples(entries: Sequence[dict[str, Any]], features: Sequence[str]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, rel, usable) of the rated runs: each run's robust z and relative change
    (:func:`~mmrqa_bids.cohorts.relative.cohort_z`, :func:`~mmrqa_bids.cohorts.relative.
    relative_change`) against the other rated runs of its suffix (the rated dataset is the
    cohort, leave-one-out as the group level compares a cohort's members); ``usable`` False
    for runs of a suffix with fewer than :data:`~mmrqa_bids.cohorts.relative.MIN_COHORT_SIZE`
    rated runs."""
    from mmrqa_bids.cohorts.reference import metric_columns
    from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE, cohort_z, relative_change

    z = np.full((len(entries), len(features)), np.nan)
    rel = np.full((len(entries), len(features)), np.nan)
    usable = np.zeros(len(entries), bool)
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        groups.setdefault(e["suffix"], []).append(i)
    for idx in groups.values():
        if len(idx) < MIN_COHORT_SIZE:
            continue
        rows = [entries[i]["metrics"] for i in idx]
        z[idx], centre, _ = cohort_z(rows, features)
        rel[idx] = relative_change(metric_columns(rows, features), centre)
        usable[idx] = True
    return z, rel, usable



def shipped_cohort_doc(family: str) -> dict[str, Any]:
    """The shipped dataset-relative model file's content of a family."""
    from mmrqa_bids.cohorts.relative import MODEL_FILES
    from mmrqa_bids.resources import data_dir

    return read_model_doc(data_dir() / MODEL_FILES[family])


def fit_rated_cohort_family(family: str, entries: Sequence[dict[str, Any]],
                            base: dict[str, Any], minimum: int = MIN_RELATIVE_RATINGS
                            ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(cohort model file content or None, record) of one family: ``base`` (the shipped
    dataset-relative model) recalibrated on the rated runs (``origin`` "expert") of the
    training split, their relative features computed against every rated run of their suffix
    (:func:`relative_examples`; simulated copies are not members of the study's cohort).
    The record scores the fitted and the base model on the held-out split."""
    from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE
    from mmrqa_bids.evaluation import evaluate

    expert = [e for e in entries if e.get("origin", "expert") != "simulated"]
    z, rel, usable = relative_examples(expert, base["features"])
    train = [i for i, e in enumerate(expert) if e["split"] == "train" and usable[i]]
    test = [i for i, e in enumerate(expert) if e["split"] == "test" and usable[i]]
    record: dict[str, Any] = {"trained": False, "n_train": len(train),
                              "base_model_id": base["model_id"]}
    if len(train) < minimum:
        record["reason"] = (f"{len(train)} rated run(s) in cohorts of at least "
                            f"{MIN_COHORT_SIZE} in the training split, fewer than {minimum}")
        return None, record
    labels = [expert[i]["label"] for i in train]
    doc = recalibrate_cohort_model(base, z[train], rel[train], labels)
    record.update(trained=True, model_id=doc["model_id"], counts=dict(Counter(labels)),
                  heads=doc["recalibration"]["heads"])
    if test:
        from mmrqa_bids.cohorts.relative import CohortModel

        truth = [expert[i]["label"] for i in test]
        for key, d in (("held_out", doc), ("held_out_shipped", base)):
            p = CohortModel.from_dict(d).predict_proba(z[test], rel[test])
            record[key] = evaluate(truth, [LABELS[k] for k in p.argmax(axis=1)],
                                   p.max(axis=1).tolist())
    return doc, record

