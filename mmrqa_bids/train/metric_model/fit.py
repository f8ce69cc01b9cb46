"""Fitting the metric classifier: scale-free feature selection, gradient-boosted grade and
artifact models with a calibration temperature, reference and support ranges, and the
evaluation on held-out examples; returns the model file's content."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Sequence

import numpy as np

from mmrqa_bids.grading.base import LABELS
from mmrqa_bids.train.metric_model.measuring import metrics_code_hash
from mmrqa_bids.train.metric_model.recipe import (DEFAULT_RECIPE, RECIPE_VERSION, Example,
                                                  family_params, measured_label_map)
from mmrqa_bids.train.metric_model.rendering import render_example
from mmrqa_bids.train.metric_model.sources import TrainingError
from mmrqa_bids.train.metric_model.trees import fit_ensemble, fit_grade_model


def candidate_features(family: str, available: Iterable[str]) -> list[str]:
    """``ANAT_FEATURES``/``FUNC_FEATURES`` of :mod:`mmrqa_bids.metrics` that the engine
    computes (its own choice of grading features), else every available metric."""
    import mmrqa_bids.metrics as metrics_pkg

    listed = getattr(metrics_pkg, "FUNC_FEATURES" if family == "bold" else "ANAT_FEATURES", None)
    available = list(available)
    chosen = [name for name in (listed or ()) if name in set(available)]
    return chosen or sorted(available)


def scale_free_metrics(family: str, factor: float = 37.3, rtol: float = 1e-2) -> set[str]:
    """Metrics that do not change when the image is multiplied by ``factor``:
    |m(c x) - m(x)| <= rtol * max(|m(x)|, 1e-9), on a clean example and a degraded one."""
    from mmrqa_bids.metrics import measure

    suffix = "bold" if family == "bold" else "T1w"
    keep: set[str] | None = None
    for artifact, severity in (("none", "none"), ("noise", "moderate")):
        ex = Example(family=family, split="probe", anatomy="tpm", contrast=suffix,
                     voxel_size=4.0, artifact=artifact, severity=severity, seed=7,
                     n_volumes=8 if family == "bold" else 0)
        data = render_example(ex)
        a = measure(data, suffix, (ex.voxel_size,) * 3).metrics
        b = measure(data * factor, suffix, (ex.voxel_size,) * 3).metrics
        ok = {k for k in a if k in b and np.isfinite(a[k]) and np.isfinite(b[k])
              and abs(b[k] - a[k]) <= rtol * max(abs(a[k]), 1e-9)}
        keep = ok if keep is None else keep & ok
    return keep or set()


#: A feature is kept when it is finite in at least this share of the training examples (the
#: trees route the others along the learned missing-value branch).
MIN_FINITE = 0.98


def select_features(family: str, rows: Sequence[dict[str, float]],
                    extra: Iterable[str] = ()) -> list[str]:
    """Scale-free candidates (:func:`candidate_features` plus the metrics ``extra``, e.g. a
    recipe family's ``extra_features``), finite in :data:`MIN_FINITE` of the examples, not
    constant."""
    free = scale_free_metrics(family)
    names = candidate_features(family, rows[0].keys())
    names += [n for n in extra if n in rows[0] and n not in names]
    names = [n for n in names if n in free]
    keep = []
    for n in names:
        v = np.array([r.get(n, np.nan) for r in rows], dtype=float)
        finite = np.isfinite(v)
        if finite.mean() >= MIN_FINITE and np.ptp(v[finite]) > 0:
            keep.append(n)
    if not keep:
        raise TrainingError(f"no usable scale-free {family} metric among {sorted(rows[0])}")
    return keep


def recipe_features(family: str, rows: Sequence[dict[str, float]],
                    recipe: dict[str, Any] | None = None) -> list[str]:
    """A recipe's features for a family (:data:`~.recipe.DEFAULT_RECIPE` by default, as the shipped
    models): :func:`select_features` with its ``extra_features``, less its
    ``exclude_features``."""
    cfg = (recipe or DEFAULT_RECIPE).get(family, {})
    excluded = set(cfg.get("exclude_features", ()))
    return [f for f in select_features(family, rows, cfg.get("extra_features", ()))
            if f not in excluded]


def reference_ranges(rows: Sequence[dict[str, float]], features: Sequence[str]) -> dict[str, Any]:
    """Quantiles of every feature over clean examples (the narrative's "clean runs" range)."""
    out = {}
    for name in features:
        v = np.array([r.get(name, np.nan) for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        q05, q25, med, q75, q95 = np.percentile(v, [5, 25, 50, 75, 95])
        out[name] = {"q05": float(q05), "q25": float(q25), "median": float(med),
                     "q75": float(q75), "q95": float(q95), "log": bool(np.all(v > 0))}
    return out


def support_ranges(x: np.ndarray, features: Sequence[str], q: float = 0.5
                   ) -> dict[str, dict[str, float]]:
    """The ``q``-th and (100 - ``q``)-th percentiles of every feature over all training rows
    (the grader flags a run outside them as an extrapolation)."""
    out = {}
    for j, name in enumerate(features):
        v = x[:, j][np.isfinite(x[:, j])]
        if v.size:
            low, high = np.percentile(v, [q, 100 - q])
            out[name] = {"low": float(low), "high": float(high)}
    return out


def fit_model(family: str, rows: Sequence[dict[str, float]], labels: Sequence[str],
              artifact_labels: Sequence[str], clean: Sequence[bool], *,
              params: dict[str, Any] | None = None, seed: int = 0,
              features: Sequence[str] | None = None,
              recipe: dict[str, Any] | None = None,
              label_map: str = "none/mild -> Good, moderate -> Medium, severe -> Bad",
              calib: np.ndarray | None = None,
              artifact_model: dict[str, Any] | None = None,
              sample_weight: Sequence[float] | None = None,
              groups: Sequence[str] | None = None) -> dict[str, Any]:
    """Fit and calibrate one family's model on metric rows; returns the model file's content.

    The generic entry point (the train level calls it with rated runs and their simulated copies):
    ``labels`` Good/Medium/Bad, ``artifact_labels`` "none" or one of
    :data:`~mmrqa_bids.artifacts.ARTIFACTS`, ``clean`` marks the runs whose metric ranges the
    narrative calls "clean runs". A random ``params["calibration_fraction"]`` of the rows fits the
    softmax temperature instead of the trees. The grade model's settings (``grade_model``,
    ``monotonic``, ``good_weight``) are read by
    :func:`~mmrqa_bids.train.metric_model.trees.fit_grade_model`. ``calib`` (a boolean mask)
    replaces the random calibration rows (the train level stratifies them by grade, so that a class
    of a few rated runs is never all in calibration); ``artifact_model`` (an exported ensemble over
    the same ``features``) is stored as the artifact model instead of fitting one (the train level
    keeps the shipped one when the ratings carry no artifact labels). ``sample_weight`` weighs
    the rows in the tree fits; ``params["calibration"] == "source_out"`` fits every row (no
    calibration rows) and calibrates on out-of-source logits, ``groups`` naming each row's
    source (:func:`~mmrqa_bids.train.metric_model.trees.source_out_temperature`).
    """
    import sklearn

    from mmrqa_bids import __version__
    from mmrqa_bids.artifacts import ARTIFACTS
    from mmrqa_bids.grading.classifier import FORMAT, metric_matrix

    # Source-out calibration only where the caller asks for it (a recipe's fit, with sources).
    params = {**DEFAULT_RECIPE["model"], "calibration": "random", **(params or {})}
    features = list(features) if features is not None else recipe_features(family, rows)
    x = metric_matrix(rows, features)
    source_out = params.get("calibration", "random") == "source_out"
    if params.get("calibration", "random") not in ("random", "source_out"):
        raise TrainingError(f"unknown calibration {params['calibration']!r} "
                            "(random or source_out)")
    if source_out and (groups is None or calib is not None):
        raise TrainingError("source-out calibration needs each row's source (groups) and no "
                            "calibration rows")
    if calib is None:
        calib = (np.zeros(len(rows), bool) if source_out else
                 np.random.default_rng(seed).random(len(rows)) < params["calibration_fraction"])
    calib = np.asarray(calib, dtype=bool)
    weight = None if sample_weight is None else np.asarray(sample_weight, float)
    by_source = list(groups) if source_out else None
    grade = fit_grade_model(x, labels, artifact_labels, features, params, seed, calib,
                            sample_weight=weight, groups=by_source)
    artifact = artifact_model if artifact_model is not None else fit_ensemble(
        x, artifact_labels, ("none",) + ARTIFACTS, params, seed, calib, sample_weight=weight,
        groups=by_source)
    clean_rows = [r for r, c in zip(rows, clean) if c]
    if len(clean_rows) < 5:
        raise TrainingError(f"{family}: need at least 5 clean runs for the reference ranges, "
                            f"got {len(clean_rows)}")
    stamp = hashlib.sha256(json.dumps([grade, artifact]).encode()).hexdigest()[:8]
    version = (recipe or {}).get("version", RECIPE_VERSION)
    return {
        "format": FORMAT,
        "family": family,
        "model_id": f"mmrqa-metric-hgb-{family}-r{version}-{stamp}",
        "features": features,
        "grade": grade,
        "artifact": artifact,
        "reference": reference_ranges(clean_rows, features),
        "support": support_ranges(x, features),
        "recipe": {"recipe": recipe or {"model": params, "seed": seed},
                   "label_map": label_map,
                   "trainer": "mmrqa_bids.train.metric_model (scripts/train_classifier.py)",
                   "mmrqa_version": __version__, "sklearn_version": sklearn.__version__,
                   "metrics_code": metrics_code_hash(),
                   "n_train": int((~calib).sum()),
                   "n_calibration": int(len(rows)) if source_out else int(calib.sum()),
                   "calibration": ("out-of-source logits of every training row"
                                   if source_out else "random held-out rows")},
    }


def evaluate_model(doc: dict[str, Any], rows: Sequence[dict[str, float]], labels: Sequence[str],
                   artifact_labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Grade metric rows with a model file's content and compare with the labels."""
    return _graded_evaluation(doc, rows, labels, artifact_labels)[0]


def _graded_evaluation(doc: dict[str, Any], rows: Sequence[dict[str, float]],
                       labels: Sequence[str], artifact_labels: Sequence[str] | None = None
                       ) -> tuple[dict[str, Any], list[str], list[float]]:
    """:func:`evaluate_model`'s result, and each row's grade and confidence."""
    from mmrqa_bids.evaluation import evaluate
    from mmrqa_bids.grading.classifier import MetricModel, metric_matrix

    model = MetricModel.from_dict(doc)
    x = metric_matrix(rows, model.features)
    p = model.grade.predict_proba(x)
    grades, confidence = [LABELS[k] for k in p.argmax(axis=1)], p.max(axis=1).tolist()
    res = evaluate(list(labels), grades, confidence)
    if artifact_labels is not None:
        pa = model.artifact.predict_proba(x)
        degraded = [j for j, lab in enumerate(labels) if lab != "Good"]
        res["artifact_accuracy_degraded"] = float(np.mean(
            [model.artifact.classes[pa[j].argmax()] == artifact_labels[j] for j in degraded])) \
            if degraded else None
    return res, grades, confidence


def fit_family(family: str, examples: Sequence[Example], records: Sequence[dict[str, Any]],
               recipe: dict[str, Any],
               real: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Fit on the recipe's "train" examples (and the ``real`` runs, when given), evaluate on
    "seen" and "unseen", and each real head held out of training ("real_held_out").

    ``records``: :func:`~.measuring.measure_example` of each example (``{"metrics", "label"}``); a
    record without a label falls back to the example's nominal one. ``real``: measured runs of
    real heads as acquired (:func:`~.real_heads.real_head_runs`), weighted so that together
    they carry the recipe family's ``real["share"]`` of the training weight."""
    from mmrqa_bids.train.metric_model.real_heads import as_training_rows

    rows = [r["metrics"] for r in records]
    labels = [r.get("label") or ex.label for r, ex in zip(records, examples)]
    train = [i for i, ex in enumerate(examples) if ex.split == "train"]
    fit_rows = [rows[i] for i in train]
    fit_labels = [labels[i] for i in train]
    fit_artifacts = [examples[i].artifact_label for i in train]
    fit_clean = [examples[i].severity == "none" for i in train]
    fit_sources = [f"rendered-{examples[i].anatomy}" for i in train]
    weight = None
    if real:
        extra = as_training_rows(real)
        share = float(recipe[family]["real"]["share"])
        if not 0.0 < share < 1.0:
            raise TrainingError(f"{family}: real share must lie in (0, 1), got {share}")
        w_real = share / (1.0 - share) * len(fit_rows) / len(extra["rows"])
        weight = [1.0] * len(fit_rows) + [w_real] * len(extra["rows"])
        fit_rows += extra["rows"]
        fit_labels += extra["labels"]
        fit_artifacts += extra["artifact_labels"]
        fit_clean += extra["clean"]
        fit_sources += extra["sources"]
    features = recipe_features(family, fit_rows, recipe)
    stored = {k: recipe[k] for k in ("version", "seed", family, "model", "randomize")
              if k in recipe}
    params = family_params(recipe, family)

    def fit(keep: Sequence[int]) -> dict[str, Any]:
        return fit_model(family, [fit_rows[i] for i in keep], [fit_labels[i] for i in keep],
                         [fit_artifacts[i] for i in keep], [fit_clean[i] for i in keep],
                         params=params, seed=recipe["seed"], recipe=stored, features=features,
                         label_map=measured_label_map(),
                         sample_weight=None if weight is None else [weight[i] for i in keep],
                         groups=[fit_sources[i] for i in keep])

    doc = fit(range(len(fit_rows)))
    evaluation = {}
    for split in ("seen", "unseen"):
        idx = [i for i, ex in enumerate(examples) if ex.split == split]
        if idx:
            evaluation[split] = evaluate_model(doc, [rows[i] for i in idx],
                                               [labels[i] for i in idx],
                                               [examples[i].artifact_label for i in idx])
            evaluation[split]["sources"] = sorted({examples[i].source for i in idx})
    if real:
        evaluation["real_held_out"] = real_held_out(fit, fit_sources, family, real)
        doc["recipe"]["n_real"] = len(real)
    doc["evaluation"] = evaluation
    return doc


def real_held_out(fit, fit_sources: Sequence[str], family: str,
                  real: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each real head's runs graded by a model fitted without that head's anatomy (its runs as
    acquired, and any rendering of the same anatomy: ROBEX's real T1w takes the rendered ROBEX
    head out with it, the MNI template the MNI renderings), then all of them pooled."""
    from mmrqa_bids.evaluation import evaluate
    from mmrqa_bids.train.metric_model.real_heads import anatomy_of, as_training_rows

    out: dict[str, Any] = {"by_source": {}}
    pooled: dict[str, list] = {"labels": [], "p": [], "confidence": []}
    for source in sorted({r["source"] for r in real}):
        anatomy = anatomy_of(source)
        keep = [i for i, s in enumerate(fit_sources) if anatomy_of(s) != anatomy]
        held = as_training_rows([r for r in real if r["source"] == source])
        res, grades, confidence = _graded_evaluation(fit(keep), held["rows"], held["labels"],
                                                     held["artifact_labels"])
        clean = [g for g, c in zip(grades, held["clean"]) if c]
        res["clean_graded"] = {lab: clean.count(lab) for lab in LABELS}
        out["by_source"][source] = res
        pooled["labels"] += held["labels"]
        pooled["p"] += grades
        pooled["confidence"] += confidence
    out["pooled"] = evaluate(pooled["labels"], pooled["p"], pooled["confidence"])
    out["pooled"]["clean_graded"] = {lab: sum(v["clean_graded"][lab]
                                              for v in out["by_source"].values())
                                     for lab in LABELS}
    return out

