"""The embedded default grader: grades from the volume-wise metrics, no image model.

Two models ship in ``mmrqa_bids/data`` (one for anatomical runs, one for bold, since their
metrics differ), each a gzipped JSON file holding

* the feature list (scale-free metric names, recorded at training time),
* a gradient-boosted tree ensemble for the grade (Good/Medium/Bad; multi-class, or two
  cumulative binary ensembles for the ordered grades) and one for the artifact type,
  exported from scikit-learn's ``HistGradientBoostingClassifier``,
* a softmax temperature fitted on held-out data (calibrated confidence; Guo et al., ICML 2017),
* the distribution of every feature over clean training runs (to name the metrics that drove
  a decision), and the training recipe and evaluation (recorded in the provenance).

Inference is plain numpy over the exported trees: loading takes milliseconds and needs
neither torch nor a pickle of a particular scikit-learn version. Models are trained by
:mod:`mmrqa_bids.train.metric_model` (``scripts/train_classifier.py``).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrqa_bids.grading.base import LABELS, Grade, GradeRequest, GraderError, confidence_from
from mmrqa_bids.grading.narrative import Driver, render_narrative
from mmrqa_bids.resources import data_dir
from mmrqa_bids.settings import Grading
from mmrqa_bids.vocabulary import family_of

FORMAT = "mmrqa-metric-classifier/1"
FAMILIES = ("anat", "bold")
MODEL_FILES = {family: f"classifier_{family}.json.gz" for family in FAMILIES}
#: An artifact is reported when its likelihood reaches this (at most MAX_ARTIFACTS of them).
ARTIFACT_REPORT_MIN = 0.15
MAX_ARTIFACTS = 3
N_DRIVERS = 3


@dataclass(frozen=True)
class TreeEnsemble:
    """A multi-class gradient-boosted tree ensemble (one tree per output per iteration).

    raw_k(x) = baseline_k + sum_i tree_{i,k}(x);  p = softmax(raw / T) (sigmoid for a single
    output). A node sends x left when x[feature] <= threshold (NaN follows ``missing_left``),
    as scikit-learn's ``HistGradientBoostingClassifier`` predictors do. All trees are stored
    flat (node arrays with global child indices; ``roots`` = first node of each tree, in
    iteration-major order), so loading is a handful of array conversions and prediction
    walks every tree at once.
    """

    classes: tuple[str, ...]
    baseline: np.ndarray  # (n_outputs,)
    roots: np.ndarray  # (n_trees,)
    feature: np.ndarray  # (n_nodes,), -1 at leaves
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    missing_left: np.ndarray
    temperature: float = 1.0
    #: Prior-shift weights w (one per class; None: none): p_k <- w_k p_k / sum_j w_j p_j, the
    #: posterior under class priors w_k times the training ones (Saerens et al., Neural
    #: Comput 2002).
    class_weights: np.ndarray | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TreeEnsemble":
        return cls(classes=tuple(d["classes"]), baseline=np.asarray(d["baseline"], dtype=float),
                   roots=np.asarray(d["roots"], dtype=np.int64),
                   feature=np.asarray(d["feature"], dtype=np.int64),
                   threshold=np.asarray(d["threshold"], dtype=float),
                   left=np.asarray(d["left"], dtype=np.int64),
                   right=np.asarray(d["right"], dtype=np.int64),
                   value=np.asarray(d["value"], dtype=float),
                   missing_left=np.asarray(d["missing_left"], dtype=bool),
                   temperature=float(d.get("temperature", 1.0)),
                   class_weights=(np.asarray(d["class_weights"], dtype=float)
                                  if d.get("class_weights") is not None else None))

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw scores, shape (n_samples, n_outputs)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        n, k = x.shape[0], self.baseline.size
        node = np.tile(self.roots, (n, 1))  # (n_samples, n_trees)
        rows = np.arange(n)[:, None]
        while True:
            f = self.feature[node]
            inner = f >= 0
            if not inner.any():
                break
            xv = x[rows, np.where(inner, f, 0)]
            go_left = np.where(np.isnan(xv), self.missing_left[node], xv <= self.threshold[node])
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        values = self.value[node].reshape(n, -1, k)  # (n_samples, n_iterations, n_outputs)
        return self.baseline[None, :] + values.sum(axis=1)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, shape (n_samples, n_classes)."""
        raw = self.raw(x) / self.temperature
        if raw.shape[1] == 1:  # binary: one tree per iteration, sigmoid link
            p1 = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            p = np.column_stack([1.0 - p1, p1])
        else:
            raw -= raw.max(axis=1, keepdims=True)
            e = np.exp(raw)
            p = e / e.sum(axis=1, keepdims=True)
        if self.class_weights is not None:
            p = p * self.class_weights
            p /= p.sum(axis=1, keepdims=True)
        return p


@dataclass(frozen=True)
class OrdinalEnsemble:
    """The grade as two cumulative binary ensembles (Frank & Hall, ECML 2001), for grades
    that are ordered: a = P(grade >= Medium), b = P(grade = Bad), each a calibrated
    :class:`TreeEnsemble` with a sigmoid link, and

        P(Good) = 1 - a,  P(Medium) = a - min(a, b),  P(Bad) = min(a, b).

    Each binary fit may be monotonic in a feature (``monotonic``: feature -> +1/-1, recorded
    from training), which a multi-class fit cannot be."""

    at_least_medium: TreeEnsemble
    bad: TreeEnsemble
    monotonic: dict[str, int] = field(default_factory=dict)
    classes: tuple[str, ...] = LABELS

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OrdinalEnsemble":
        return cls(at_least_medium=TreeEnsemble.from_dict(d["at_least_medium"]),
                   bad=TreeEnsemble.from_dict(d["bad"]), monotonic=dict(d.get("monotonic", {})),
                   classes=tuple(d["classes"]))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated Good/Medium/Bad probabilities, shape (n_samples, 3)."""
        a = self.at_least_medium.predict_proba(x)[:, 1]
        b = np.minimum(a, self.bad.predict_proba(x)[:, 1])
        return np.column_stack([1.0 - a, a - b, b])


def grade_ensemble(d: dict[str, Any]) -> TreeEnsemble | OrdinalEnsemble:
    """The grade model of a model file: multi-class trees, or ``"kind": "ordinal"``."""
    return OrdinalEnsemble.from_dict(d) if d.get("kind") == "ordinal" else TreeEnsemble.from_dict(d)


@dataclass(frozen=True)
class MetricModel:
    """One family's model file, loaded."""

    family: str
    model_id: str
    features: tuple[str, ...]
    grade: TreeEnsemble | OrdinalEnsemble
    artifact: TreeEnsemble
    reference: dict[str, dict[str, float]]  # feature -> {q05, q25, median, q75, q95} (clean runs)
    recipe: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    #: feature -> {low, high}: 0.5th-99.5th percentile over every training run (older files: {})
    support: dict[str, dict[str, float]] = field(default_factory=dict)
    path: str = ""
    sha256: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "", sha256: str = "") -> "MetricModel":
        if d.get("format") != FORMAT:
            raise GraderError(f"{path}: not an mmrqa metric classifier "
                              f"(format {d.get('format')!r}, expected {FORMAT!r})")
        grade = grade_ensemble(d["grade"])
        if grade.classes != LABELS:
            raise GraderError(f"{path}: grade classes {grade.classes} are not {LABELS}")
        return cls(family=d["family"], model_id=d["model_id"], features=tuple(d["features"]),
                   grade=grade, artifact=TreeEnsemble.from_dict(d["artifact"]),
                   reference=d["reference"], recipe=d.get("recipe", {}),
                   evaluation=d.get("evaluation", {}), support=d.get("support", {}),
                   path=path, sha256=sha256)

    def vector(self, metrics: dict[str, float], what: str = "run") -> np.ndarray:
        missing = [f for f in self.features if f not in metrics]
        if missing:
            raise GraderError(f"{what}: the {self.family} classifier {self.model_id} needs "
                              f"metrics that were not computed: {', '.join(missing)} "
                              "(retrain it with scripts/train_classifier.py after a metrics change)")
        x = np.array([[_as_float(metrics[f]) for f in self.features]])
        x[~np.isfinite(x)] = np.nan  # a metric that could not be computed: missing branch
        return x

    def drivers(self, metrics: dict[str, float], n: int = N_DRIVERS) -> list[Driver]:
        """The features furthest from clean acquisitions, in robust z units:
        z = (v - median) / IQR over clean training runs (log10 scale for positive features)."""
        scored = []
        for name, value, ref in self._measured(metrics, self.reference):
            z = _robust_z(value, ref)
            scored.append((abs(z), Driver(name=name, value=value, low=ref["q05"], high=ref["q95"],
                                          z=z)))
        return _furthest(scored, n)

    def outside_training(self, metrics: dict[str, float], n: int = N_DRIVERS,
                         margin: float = 0.1) -> list[Driver]:
        """The features beyond :attr:`support` (every training run's range, not only the
        clean ones') by more than ``margin`` of its width, furthest first: the trees then
        extrapolate, as on real scans whose air, bias field or texture no simulation had.
        (The margin keeps a 1 mm run's FWHM, just below the 3-4 mm training runs', quiet.)"""
        scored = []
        for name, value, span in self._measured(metrics, self.support):
            low, high = span["low"], span["high"]
            out = max(low - value, value - high) / max(high - low, 1e-12)
            if out > margin:
                scored.append((out, Driver(name=name, value=value, low=low, high=high, z=out)))
        return _furthest(scored, n)

    def _measured(self, metrics: dict[str, float], ranges: dict[str, dict[str, float]]):
        """(name, value, range) of every feature that has a range and a finite value."""
        for name in self.features:
            span = ranges.get(name)
            value = _as_float(metrics.get(name, math.nan))
            if span and math.isfinite(value):
                yield name, value, span


def _furthest(scored: list[tuple[float, Driver]], n: int) -> list[Driver]:
    """The ``n`` drivers of largest distance (stable for ties)."""
    scored.sort(key=lambda s: -s[0])
    return [d for _, d in scored[:n]]


def metric_matrix(rows: Sequence[dict[str, float]], features: Sequence[str]) -> np.ndarray:
    """(n_rows, n_features) matrix of metric rows (training, evaluation): a metric a row lacks,
    or one that is not finite (+-inf), is missing (NaN), the trees' missing branch."""
    x = np.array([[r.get(f, np.nan) for f in features] for r in rows], dtype=float)
    x[~np.isfinite(x)] = np.nan
    return x


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _robust_z(value: float, ref: dict[str, float]) -> float:
    if ref.get("log") and value > 0 and ref["median"] > 0:
        v, med = math.log10(value), math.log10(ref["median"])
        iqr = math.log10(max(ref["q75"], 1e-300)) - math.log10(max(ref["q25"], 1e-300))
    else:
        v, med, iqr = value, ref["median"], ref["q75"] - ref["q25"]
    return (v - med) / (iqr if iqr > 1e-12 else 1e-12)


def load_model_file(path: str | Path) -> MetricModel:
    """Read a (gzipped) JSON model file; a clear one-line error when it cannot be used."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        d = json.loads(text)
    except (OSError, ValueError, EOFError) as exc:
        raise GraderError(f"{path}: cannot read the metric classifier ({exc})") from exc
    try:
        return MetricModel.from_dict(d, path=str(path), sha256=hashlib.sha256(raw).hexdigest())
    except (KeyError, TypeError) as exc:
        raise GraderError(f"{path}: malformed metric classifier (missing {exc})") from exc


@lru_cache(maxsize=8)
def _cached_model(path: str) -> MetricModel:
    return load_model_file(path)


def model_paths(model: str | None) -> dict[str, Path]:
    """Model files per family: the shipped ones, or those in the folder ``--model`` names."""
    folder = Path(model) if model else data_dir()
    if model and not folder.is_dir():
        raise GraderError(f"{folder}: --model for the classifier must be a folder holding "
                          f"{' and '.join(MODEL_FILES.values())}")
    return {family: folder / name for family, name in MODEL_FILES.items()}


@dataclass
class ClassifierGrader:
    models: dict[str, MetricModel]
    backend: str = "classifier"

    @classmethod
    def from_settings(cls, settings: Grading) -> "ClassifierGrader":
        return cls.from_paths(model_paths(settings.model))

    @classmethod
    def from_paths(cls, paths: dict[str, Path]) -> "ClassifierGrader":
        models = {}
        for family, path in paths.items():
            if not path.is_file():
                raise GraderError(f"{path}: metric classifier file not found (train it with "
                                  "scripts/train_classifier.py)")
            models[family] = _cached_model(str(path.resolve()))
        return cls(models=models)

    def provenance(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model_id": ",".join(m.model_id for m in self.models.values()),
            "adapter": None,
            "adapter_checksum": None,
            "models": {family: {"model_id": m.model_id, "file": Path(m.path).name,
                                "sha256": m.sha256, "features": list(m.features),
                                "recipe": m.recipe}
                       for family, m in self.models.items()},
        }

    def grade(self, requests: Sequence[GradeRequest]) -> list[Grade]:
        return [self._grade_one(r) for r in requests]

    def _grade_one(self, req: GradeRequest) -> Grade:
        family = family_of(req.suffix)
        if family not in self.models:
            raise GraderError(f"{req.bids_name}: no {family} model loaded")
        model = self.models[family]
        x = model.vector(req.metrics, what=req.bids_name)
        p_grade = model.grade.predict_proba(x)[0]
        probs = {label: float(p) for label, p in zip(model.grade.classes, p_grade)}
        label = max(probs, key=probs.get)
        p_art = model.artifact.predict_proba(x)[0]
        art_probs = sorted(((c, float(p)) for c, p in zip(model.artifact.classes, p_art)
                            if c != "none"), key=lambda cp: -cp[1])
        artifacts = [{"type": c, "likelihood": p} for c, p in art_probs[:MAX_ARTIFACTS]
                     if p >= ARTIFACT_REPORT_MIN]
        if not artifacts and label != "Good":  # a degraded run always names its likeliest cause
            artifacts = [{"type": art_probs[0][0], "likelihood": art_probs[0][1]}]
        conf = confidence_from(probs)
        outside = model.outside_training(req.metrics)
        narrative = render_narrative(
            label=label, confidence=conf, drivers=model.drivers(req.metrics),
            artifacts=artifacts, model_id=model.model_id, suffix=req.suffix, outside=outside)
        return Grade(label=label, probabilities=probs, confidence=conf, artifacts=artifacts,
                     narrative=narrative, outside_training=[d.name for d in outside])
