"""Gradient-boosted tree models of the metric classifier: fit, calibrate, export.

The grade and artifact models are scikit-learn ``HistGradientBoostingClassifier`` fits
exported as flat JSON node arrays (:func:`export_hgb`), read back without scikit-learn by
:class:`mmrqa_bids.grading.classifier.TreeEnsemble`. A softmax temperature fitted on held-out
runs calibrates each (:func:`fit_temperature`). The grade model is multi-class, optionally
with a prior shift of Good, or ordinal (:func:`fit_ordinal`), optionally monotonic
(:func:`monotonic_signs`); :func:`fit_grade_model` chooses by the model settings.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmrqa_bids.grading.base import LABELS
from mmrqa_bids.train.metric_model.sources import TrainingError


def export_hgb(model, classes: Sequence[str]) -> dict[str, Any]:
    """A fitted ``HistGradientBoostingClassifier`` as flat JSON-able node arrays (see
    :class:`mmrqa_bids.grading.classifier.TreeEnsemble`); thresholds keep float64 precision."""
    fields: dict[str, list] = {k: [] for k in ("feature", "threshold", "left", "right", "value",
                                               "missing_left")}
    roots = []
    for iteration in model._predictors:  # noqa: SLF001 (no public accessor exists)
        for predictor in iteration:
            nodes = predictor.nodes
            if np.any(nodes["is_categorical"]):
                raise TrainingError("categorical splits are not supported by the exporter")
            start = len(fields["feature"])
            roots.append(start)
            leaf = nodes["is_leaf"].astype(bool)
            fields["feature"] += np.where(leaf, -1, nodes["feature_idx"]).astype(int).tolist()
            fields["threshold"] += [0.0 if lf else float(t)
                                    for lf, t in zip(leaf, nodes["num_threshold"])]
            fields["left"] += np.where(leaf, 0, nodes["left"].astype(int) + start).tolist()
            fields["right"] += np.where(leaf, 0, nodes["right"].astype(int) + start).tolist()
            fields["value"] += [float(v) if lf else 0.0 for lf, v in zip(leaf, nodes["value"])]
            fields["missing_left"] += nodes["missing_go_to_left"].astype(int).tolist()
    baseline = np.asarray(model._baseline_prediction, dtype=float).ravel()  # noqa: SLF001
    return {"classes": [str(c) for c in classes], "baseline": baseline.tolist(),
            "roots": roots, **fields}


def fit_temperature(raw: np.ndarray, y: np.ndarray) -> float:
    """T minimising the negative log-likelihood of softmax(raw / T) (temperature scaling)."""
    from scipy.optimize import minimize_scalar

    if raw.shape[1] == 1:  # a binary ensemble's logit: softmax([0, r / T]) = sigmoid(r / T)
        raw = np.column_stack([np.zeros(len(raw)), raw[:, 0]])

    def nll(log_t: float) -> float:
        z = raw / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-np.mean(logp[np.arange(len(y)), y]))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def _fit_hgb(x: np.ndarray, y: np.ndarray, params: dict[str, Any], seed: int,
             monotonic_cst: Sequence[int] | None, weight: np.ndarray | None):
    from sklearn.ensemble import HistGradientBoostingClassifier

    hgb = HistGradientBoostingClassifier(
        max_iter=params["max_iter"], learning_rate=params["learning_rate"],
        max_leaf_nodes=params["max_leaf_nodes"], min_samples_leaf=params["min_samples_leaf"],
        l2_regularization=params["l2_regularization"], early_stopping=False, random_state=seed,
        monotonic_cst=None if monotonic_cst is None else list(monotonic_cst))
    return hgb.fit(x, y, sample_weight=weight)


def _checked_weight(sample_weight: np.ndarray | None, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weight = np.asarray(sample_weight, float)
    if weight.shape != (n,) or not np.all(np.isfinite(weight)) or np.any(weight < 0):
        raise ValueError("sample_weight needs one finite, non-negative weight per row")
    return weight


def fit_ensemble(x: np.ndarray, y_names: Sequence[str], classes: Sequence[str],
                 params: dict[str, Any], seed: int, calib: np.ndarray,
                 monotonic_cst: Sequence[int] | None = None,
                 sample_weight: np.ndarray | None = None,
                 groups: Sequence[str] | None = None,
                 scored_groups: Sequence[str] | None = None) -> dict[str, Any]:
    """One gradient-boosted classifier of ``classes`` fitted on the rows outside ``calib``
    (weighted by ``sample_weight``, one finite non-negative weight per row, when given),
    exported (:func:`export_hgb`) with a softmax temperature: fitted, unweighted, on the
    ``calib`` rows; or, with ``groups`` (one source name per row), on every row's logits from
    a fit that left its source out (:func:`source_out_temperature`; only the rows of
    ``scored_groups`` when given), so that the confidence is calibrated for a source the
    model has never seen."""
    from mmrqa_bids.grading.classifier import TreeEnsemble

    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in y_names])
    weight = _checked_weight(sample_weight, len(y))
    hgb = _fit_hgb(x[~calib], y[~calib], params, seed, monotonic_cst,
                   None if weight is None else weight[~calib])
    if list(hgb.classes_) != list(range(len(classes))):
        raise TrainingError(f"every class needs training examples; got {sorted(set(y_names))}")
    exported = export_hgb(hgb, classes)
    if groups is not None:
        if np.any(calib):
            raise TrainingError("calibration rows and source-out calibration are exclusive")
        exported["temperature"] = source_out_temperature(x, y, len(classes), params, seed,
                                                         groups, weight, monotonic_cst,
                                                         scored_groups)
    else:
        raw = TreeEnsemble.from_dict(exported).raw(x[calib])
        exported["temperature"] = fit_temperature(raw, y[calib])
    return exported


def source_out_temperature(x: np.ndarray, y: np.ndarray, n_classes: int,
                           params: dict[str, Any], seed: int, groups: Sequence[str],
                           weight: np.ndarray | None = None,
                           monotonic_cst: Sequence[int] | None = None,
                           scored_groups: Sequence[str] | None = None) -> float:
    """Temperature scaling on out-of-source logits: for every source g of ``groups`` (of
    ``scored_groups`` when given: the others only train), the rows of g are scored by a fit on
    the other sources (same settings and weights), and T minimises the negative
    log-likelihood of all those scores (:func:`fit_temperature`). A source whose absence
    leaves a class without examples is scored by nobody (it still trains the others);
    TrainingError when fewer than two sources can be scored (than one, with
    ``scored_groups``: they are chosen as the target domain, however few)."""
    from mmrqa_bids.grading.classifier import TreeEnsemble

    groups = np.asarray(groups)
    names = sorted(set(groups.tolist()))
    if scored_groups is not None:
        names = [g for g in names if g in set(scored_groups)]
    raws, ys = [], []
    for g in names:
        held = groups == g
        if len(set(y[~held].tolist())) < n_classes:
            continue
        hgb = _fit_hgb(x[~held], y[~held], params, seed, monotonic_cst,
                       None if weight is None else weight[~held])
        classes = [str(c) for c in range(n_classes)]
        raws.append(TreeEnsemble.from_dict(export_hgb(hgb, classes)).raw(x[held]))
        ys.append(y[held])
    if len(raws) < (1 if scored_groups is not None else 2):
        raise TrainingError(f"source-out calibration needs "
                            f"{'a scored source' if scored_groups is not None else 'two sources'}"
                            f" that can be left out; got {names}")
    return fit_temperature(np.concatenate(raws), np.concatenate(ys))


#: |Spearman rho| from which an artifact is said to move a metric (:func:`monotonic_signs`).
MONOTONIC_MIN_RHO = 0.3


def monotonic_signs(x: np.ndarray, labels: Sequence[str], artifact_labels: Sequence[str],
                    features: Sequence[str], min_rho: float = MONOTONIC_MIN_RHO
                    ) -> dict[str, int]:
    """The direction in which every artifact degrades each feature, from training runs.

    For artifact a, rho_a(f) = Spearman correlation of f with the grade rank (Good 0,
    Medium 1, Bad 2) over a's runs and the clean runs; s_a = sign(rho_a) where |rho_a| >=
    ``min_rho``, else 0 (a does not move f). f is constrained to s (+1: higher is worse,
    -1: lower is worse) when every non-zero s_a is s; a feature that one artifact raises and
    another lowers (an SNR that blur raises and noise lowers) stays free."""
    from scipy.stats import spearmanr

    rank = np.array([LABELS.index(v) for v in labels], dtype=float)
    art = np.asarray(artifact_labels)
    clean = art == "none"
    out = {}
    for j, name in enumerate(features):
        signs = set()
        for a in sorted(set(art) - {"none"}):
            sel = (clean | (art == a)) & np.isfinite(x[:, j])
            if sel.sum() < 10 or np.ptp(rank[sel]) == 0 or np.ptp(x[sel, j]) == 0:
                continue
            rho = spearmanr(x[sel, j], rank[sel]).statistic
            if abs(rho) >= min_rho:
                signs.add(int(np.sign(rho)))
        if len(signs) == 1:
            out[name] = signs.pop()
    return out


def fit_ordinal(x: np.ndarray, labels: Sequence[str], artifact_labels: Sequence[str],
                features: Sequence[str], params: dict[str, Any], seed: int,
                calib: np.ndarray) -> dict[str, Any]:
    """The grade as two calibrated binary fits, P(>= Medium) and P(Bad) (see
    :class:`~mmrqa_bids.grading.classifier.OrdinalEnsemble`); with ``params["monotonic"]``
    "training", each monotonic in the features :func:`monotonic_signs` finds on the fitted
    runs (the calibration runs take no part)."""
    labels = np.asarray(labels)
    signs: dict[str, int] = {}
    if params.get("monotonic", "none") == "training":
        signs = monotonic_signs(x[~calib], labels[~calib],
                                np.asarray(artifact_labels)[~calib], features)
    elif params.get("monotonic", "none") != "none":
        raise TrainingError(f"unknown monotonic option {params['monotonic']!r} "
                            "(none or training)")
    cst = [signs.get(f, 0) for f in features]
    out: dict[str, Any] = {"kind": "ordinal", "classes": list(LABELS), "monotonic": signs}
    for key, positive in (("at_least_medium", ("Medium", "Bad")), ("bad", ("Bad",))):
        y = np.where(np.isin(labels, positive), "yes", "no")
        out[key] = fit_ensemble(x, y, ("no", "yes"), params, seed, calib, cst)
    return out


def fit_grade_model(x: np.ndarray, labels: Sequence[str], artifact_labels: Sequence[str],
                    features: Sequence[str], params: dict[str, Any], seed: int,
                    calib: np.ndarray, sample_weight: np.ndarray | None = None,
                    groups: Sequence[str] | None = None) -> dict[str, Any]:
    """The grade model by ``params["grade_model"]``: "multiclass" (the default; with
    ``params["good_weight"]`` w != 1 its prior of Good shifted by w, stored as
    ``class_weights``) or "ordinal" (:func:`fit_ordinal`, which takes neither
    ``sample_weight`` nor ``groups``: see :func:`fit_ensemble` for those)."""
    kind = params.get("grade_model", "multiclass")
    good_weight = float(params.get("good_weight", 1.0))
    if kind not in ("multiclass", "ordinal"):
        raise TrainingError(f"unknown grade_model {kind!r} (multiclass or ordinal)")
    if kind == "ordinal":
        if sample_weight is not None or groups is not None:
            raise TrainingError("the ordinal grade model takes no sample weights and no "
                                "source-out calibration")
        if good_weight != 1.0:
            raise TrainingError("good_weight applies to the multi-class grade model only")
        return fit_ordinal(x, labels, artifact_labels, features, params, seed, calib)
    grade = fit_ensemble(x, labels, LABELS, params, seed, calib, sample_weight=sample_weight,
                         groups=groups)
    if good_weight != 1.0:
        grade["class_weights"] = [good_weight if c == "Good" else 1.0 for c in LABELS]
    return grade
