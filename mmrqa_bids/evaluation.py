"""Grading accuracy against expert (or simulated) labels (``mmrqa-evaluate``:
:mod:`mmrqa_bids.cli.evaluate`).

PREDICTIONS is an mmrqa OUTPUT_DIR (the per-run JSON documents) or a group TSV
(``group_<suffix>.tsv``); LABELS is a ratings TSV (:mod:`mmrqa_bids.ratings`). Prints a table
and writes the figures as JSON. Also used by the train level and the classifier training.

Definitions (K classes, n runs, C the confusion matrix with rows = truth, columns = prediction):

* accuracy = trace(C) / n
* precision_k = C_kk / sum_i C_ik;  recall_k = C_kk / sum_j C_kj;
  F1_k = 2 P_k R_k / (P_k + R_k) (0 when undefined), macro-F1 = mean_k F1_k over the classes
  present in the truth or the predictions (scikit-learn's ``f1_score(average="macro")``)
* balanced accuracy = mean_k recall_k over the classes present in the truth
* ECE (expected calibration error; Naeini et al., AAAI 2015; Guo et al., ICML 2017):
  sum_b |B_b|/n * |acc(B_b) - conf(B_b)| over M equal-width bins of the top-class confidence.
* 95% intervals of accuracy and macro-F1: percentile bootstrap over runs (B resamples of
  the n (truth, prediction) pairs with replacement; Efron & Tibshirani 1993), seeded; of the
  difference between two graders on the same runs: the paired bootstrap (each resample
  scores both on the same draw of runs).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrqa_bids.derivatives import DerivativesLayout, read_derivative
from mmrqa_bids.vocabulary import LABELS


class EvaluationError(ValueError):
    """Unusable predictions or labels; the message names the file and the problem."""


def confusion(truth: Sequence[str], pred: Sequence[str],
              labels: Sequence[str] = LABELS) -> np.ndarray:
    """C[i, j] = number of runs of true class i predicted as class j."""
    index = {label: i for i, label in enumerate(labels)}
    c = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(truth, pred, strict=True):
        c[index[t], index[p]] += 1
    return c


def accuracy(truth: Sequence[str], pred: Sequence[str]) -> float:
    """Share of runs whose predicted class equals the true class."""
    if not truth:
        return math.nan
    return float(np.mean([t == p for t, p in zip(truth, pred, strict=True)]))


def per_class(c: np.ndarray, labels: Sequence[str] = LABELS) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class (0 where a denominator is 0)."""
    out = {}
    for k, label in enumerate(labels):
        tp = c[k, k]
        predicted, actual = c[:, k].sum(), c[k, :].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[label] = {"precision": float(p), "recall": float(r), "f1": float(f),
                      "support": int(actual)}
    return out


def macro_f1(c: np.ndarray, labels: Sequence[str] = LABELS,
             over: Sequence[str] | None = None) -> float:
    """Unweighted mean of F1 over the classes present in the truth or the predictions, or
    over the classes named in ``over`` (an absent one counts 0: scikit-learn's
    ``f1_score(labels=over, average="macro")``)."""
    stats = per_class(c, labels)
    if over is None:
        over = [label for k, label in enumerate(labels) if c[k, :].sum() or c[:, k].sum()]
    return float(np.mean([stats[label]["f1"] for label in over])) if over else math.nan


def balanced_accuracy(c: np.ndarray) -> float:
    """Mean recall over the classes present in the truth."""
    rows = c.sum(axis=1)
    present = rows > 0
    return float(np.mean(np.diag(c)[present] / rows[present])) if present.any() else math.nan


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool],
                               n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width bins of (0, 1]; a confidence of 0 goes to the first."""
    conf = np.asarray(confidence, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return math.nan
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
    return float(ece)


def bootstrap_intervals(c: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> dict[str, list[float]]:
    """Percentile-bootstrap intervals of accuracy and macro-F1 from a confusion matrix.

    Runs are resampled as independent. Runs that share a subject or a simulated source are
    not, so on such sets the intervals are a lower bound on the uncertainty."""
    k = c.shape[0]
    codes = np.repeat(np.arange(k * k), c.ravel())  # one code t * K + p per run
    n = codes.size
    if n == 0:
        return {"accuracy": [math.nan, math.nan], "macro_f1": [math.nan, math.nan]}
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    acc, macro = _resampled_scores(codes, draws, k)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {"accuracy": np.percentile(acc, q).tolist(), "macro_f1": np.percentile(macro, q).tolist()}


def paired_bootstrap_difference(truth: Sequence[str], pred_a: Sequence[str],
                                pred_b: Sequence[str], n_boot: int = 2000,
                                level: float = 0.95, seed: int = 0,
                                labels: Sequence[str] = LABELS) -> dict[str, list[float]]:
    """Percentile-bootstrap intervals of B's accuracy and macro-F1 minus A's, both graded on
    the same runs: each resample draws runs (with replacement) and scores both predictions
    on it, so the run-to-run variation the two share cancels. ``{"accuracy": [d, lo, hi],
    "macro_f1": [d, lo, hi]}`` (d on all runs). Runs are resampled as independent, as in
    :func:`bootstrap_intervals`."""
    if not len(truth) == len(pred_a) == len(pred_b):
        raise EvaluationError(f"{len(truth)} labels, {len(pred_a)} and {len(pred_b)} "
                              "predictions: paired predictions need the same runs")
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    try:
        t = np.array([index[x] for x in truth], dtype=np.int64)
        a = t * k + np.array([index[x] for x in pred_a], dtype=np.int64)
        b = t * k + np.array([index[x] for x in pred_b], dtype=np.int64)
    except KeyError as exc:
        raise EvaluationError(f"unknown grade {exc.args[0]!r} (expected one of "
                              f"{', '.join(labels)})") from None
    n = t.size
    if n == 0:
        return {"accuracy": [math.nan] * 3, "macro_f1": [math.nan] * 3}
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    whole = np.arange(n)[None, :]
    acc_a, f1_a = _resampled_scores(a, draws, k)
    acc_b, f1_b = _resampled_scores(b, draws, k)
    (acc0_a,), (f10_a,) = _resampled_scores(a, whole, k)
    (acc0_b,), (f10_b,) = _resampled_scores(b, whole, k)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    return {"accuracy": [float(acc0_b - acc0_a), *np.percentile(acc_b - acc_a, q).tolist()],
            "macro_f1": [float(f10_b - f10_a), *np.percentile(f1_b - f1_a, q).tolist()]}


def _resampled_scores(codes: np.ndarray, draws: np.ndarray, k: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 of each row of ``draws`` (indices into ``codes``, one
    truth * K + prediction code per run), from one bincount of all the rows' confusions."""
    n_boot, n = draws.shape
    offsets = (np.arange(n_boot) * k * k)[:, None]
    boot = np.bincount((codes[draws] + offsets).ravel(), minlength=n_boot * k * k)
    boot = boot.reshape(n_boot, k, k).astype(float)
    tp = np.einsum("bkk->bk", boot)
    counted = boot.sum(axis=1) + boot.sum(axis=2)  # predicted + actual, per class
    present = counted > 0
    f1 = 2 * tp / np.where(present, counted, 1.0)  # 2PR/(P+R) = 2TP/(predicted + actual)
    return tp.sum(axis=1) / n, f1.sum(axis=1) / present.sum(axis=1)


@dataclass(frozen=True)
class Prediction:
    bids_name: str
    label: str | None
    confidence: float | None


def evaluate(truth: Sequence[str], pred: Sequence[str],
             confidence: Sequence[float] | None = None,
             labels: Sequence[str] = LABELS) -> dict[str, Any]:
    """Every figure at once (JSON-serialisable)."""
    c = confusion(truth, pred, labels)
    out: dict[str, Any] = {
        "n": int(c.sum()),
        "accuracy": accuracy(truth, pred),
        "macro_f1": macro_f1(c, labels),
        "balanced_accuracy": balanced_accuracy(c),
        "labels": list(labels),
        "confusion": c.tolist(),
        "per_class": per_class(c, labels),
        "ci95": bootstrap_intervals(c),
    }
    if confidence is not None:
        out["ece"] = expected_calibration_error(confidence, [t == p for t, p in zip(truth, pred)])
    return out


def read_predictions(path: str | Path) -> list[Prediction]:
    """Predictions from an mmrqa OUTPUT_DIR (per-run JSON) or a group TSV."""
    path = Path(path)
    if path.is_dir():
        preds = []
        for doc_path in DerivativesLayout(path).run_jsons():
            try:
                doc = read_derivative(doc_path)
            except (OSError, ValueError) as exc:
                raise EvaluationError(f"{doc_path}: unreadable derivative ({exc})") from exc
            if doc is None:
                continue
            grade = doc["grade"]
            preds.append(Prediction(doc["bids_meta"]["bids_name"], grade.get("label"),
                                    grade.get("confidence")))
        if not preds:
            raise EvaluationError(f"{path}: no mmrqa per-run JSON documents under sub-*/")
        return preds
    try:
        rows = list(csv.DictReader(path.read_text().splitlines(), delimiter="\t"))
    except OSError as exc:
        raise EvaluationError(f"{path}: cannot read predictions ({exc.strerror or exc})") from exc
    if not rows or not {"bids_name", "grade"} <= rows[0].keys():
        raise EvaluationError(f"{path}: a group TSV needs 'bids_name' and 'grade' columns")
    preds = []
    for row in rows:
        label = row["grade"] if row["grade"] in LABELS else None
        try:
            conf = float(row.get("confidence", "nan"))
        except ValueError:
            conf = math.nan
        preds.append(Prediction(row["bids_name"], label, conf if math.isfinite(conf) else None))
    return preds


def evaluate_files(predictions: str | Path, labels: str | Path) -> dict[str, Any]:
    """Match predictions with ratings by BIDS name and evaluate the matched runs.

    Runs without a rating are ignored; rated runs without a usable prediction (failed or
    unparsed) are counted in ``n_unpredicted`` and left out of the figures.
    """
    from mmrqa_bids.ratings import match_ratings, read_ratings

    preds = read_predictions(predictions)
    truth_by_name = match_ratings(read_ratings(labels), [p.bids_name for p in preds])
    if not truth_by_name:
        raise EvaluationError(f"{labels}: no rating matches any run in {predictions}")
    usable = [p for p in preds if p.bids_name in truth_by_name and p.label in LABELS]
    truth = [truth_by_name[p.bids_name] for p in usable]
    pred = [p.label for p in usable]
    conf = [p.confidence for p in usable]
    result = evaluate(truth, pred, conf if all(c is not None for c in conf) else None)
    result["n_unpredicted"] = len(truth_by_name) - len(usable)
    result["predictions"] = str(predictions)
    result["labels_file"] = str(labels)
    return result


def _interval(result: dict[str, Any], key: str) -> str:
    lo, hi = result.get("ci95", {}).get(key, (math.nan, math.nan))
    return f"  (95% CI {lo:.3f}-{hi:.3f})" if math.isfinite(lo) and math.isfinite(hi) else ""


def format_table(result: dict[str, Any]) -> str:
    """A plain-text summary: headline figures, confusion matrix, per-class P/R/F1."""
    labels = result["labels"]
    lines = [f"runs evaluated: {result['n']}" + (f" ({result['n_unpredicted']} rated runs "
                                                 "without a prediction)"
                                                 if result.get("n_unpredicted") else ""),
             f"accuracy          {result['accuracy']:.3f}{_interval(result, 'accuracy')}",
             f"macro-F1          {result['macro_f1']:.3f}{_interval(result, 'macro_f1')}",
             f"balanced accuracy {result['balanced_accuracy']:.3f}"]
    if "ece" in result:
        lines.append(f"ECE               {result['ece']:.3f}")
    width = max(len(label) for label in labels) + 2
    lines += ["", "confusion (rows = truth, columns = prediction)",
              " " * width + "".join(f"{label:>{width}}" for label in labels)]
    for label, row in zip(labels, result["confusion"]):
        lines.append(f"{label:<{width}}" + "".join(f"{v:>{width}d}" for v in row))
    lines += ["", f"{'class':<{width}}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}"]
    for label in labels:
        s = result["per_class"][label]
        lines.append(f"{label:<{width}}{s['precision']:>10.3f}{s['recall']:>10.3f}"
                     f"{s['f1']:>10.3f}{s['support']:>10d}")
    return "\n".join(lines)
