"""The IQM model: grades runs Good / Medium / Bad from MRIQC's IQMs alone.

Pure numpy at prediction time; the coefficients ship as JSON (``data/mriqc_t1w_model.json``,
written by ``scripts/train_mriqc_model.py``, described in ``data/mriqc_t1w_model_card.md``).

Steps, for a table of runs from one site (one scanner/protocol):

1. per-site robust scaling, ``z = (x - median_site(x)) / IQR_site(x)`` clipped to
   ``[-clip, clip]`` (the statistics of the new site itself; no labels needed);
2. a missing IQM is imputed with ``z = 0`` (the site's median: no evidence either way);
3. linear scores ``s_k = w_k . z + b_k`` and then either

   * ``ordinal`` (Frank & Hall 2001, cumulative binary models, Bad < Medium < Good):
     ``P(y > Bad) = sigma(s_0)``, ``P(y > Medium) = min(sigma(s_1), P(y > Bad))``, so
     ``p_bad = 1 - P(y > Bad)``, ``p_good = P(y > Medium)``, ``p_medium`` the rest;
   * ``multinomial``: ``p = softmax(s)`` over (Bad, Medium, Good).

The models are fitted with balanced class weights, so the probabilities are those of a
population with equal class priors: the argmax maximises balanced accuracy, whatever the
class mix of the new site (no prior re-estimation is applied).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrqa_bids.mriqc.iqms import MriqcError
from mmrqa_bids.resources import data_dir

LABELS = ("Bad", "Medium", "Good")  # ordinal order
DEFAULT_MODEL = "mriqc_t1w_model.json"


class ModelInputError(MriqcError):
    """An IQM table the model cannot grade (too few runs or too few of its features)."""


@dataclass(frozen=True)
class IqmModel:
    model_id: str
    kind: str  # "ordinal" or "multinomial"
    suffix: str
    features: tuple[str, ...]
    coef: np.ndarray  # (n_scores, n_features)
    intercept: np.ndarray  # (n_scores,)
    clip: float = 10.0
    min_site_runs: int = 10
    max_missing_weight: float = 0.35
    card: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""

    @classmethod
    def load(cls, path: str | Path | None = None) -> "IqmModel":
        path = Path(path) if path else data_dir() / DEFAULT_MODEL
        try:
            raw = path.read_bytes()
            doc = json.loads(raw)
            model = cls(model_id=doc["model_id"], kind=doc["kind"], suffix=doc["suffix"],
                        features=tuple(doc["features"]),
                        coef=np.asarray(doc["coef"], dtype=float),
                        intercept=np.asarray(doc["intercept"], dtype=float),
                        clip=float(doc["clip"]), min_site_runs=int(doc["min_site_runs"]),
                        max_missing_weight=float(doc["max_missing_weight"]),
                        card=dict(doc.get("card", {})),
                        checksum="sha256:" + hashlib.sha256(raw).hexdigest())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MriqcError(f"{path}: cannot load the IQM model ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())})") from exc
        if model.kind not in ("ordinal", "multinomial"):
            raise MriqcError(f"{path}: unknown model kind {model.kind!r}")
        want = 2 if model.kind == "ordinal" else 3
        if model.coef.shape != (want, len(model.features)) or model.intercept.shape != (want,):
            raise MriqcError(f"{path}: coefficient shapes do not match the feature list")
        return model

    def to_json(self) -> str:
        return json.dumps({
            "model_id": self.model_id, "kind": self.kind, "suffix": self.suffix,
            "features": list(self.features), "coef": np.round(self.coef, 8).tolist(),
            "intercept": np.round(self.intercept, 8).tolist(), "clip": self.clip,
            "min_site_runs": self.min_site_runs, "max_missing_weight": self.max_missing_weight,
            "card": self.card}, indent=1) + "\n"

    # -- checks ---------------------------------------------------------------------------
    def feature_weights(self) -> np.ndarray:
        """Share of the model's absolute weight carried by each feature (sums to 1)."""
        weight = np.abs(self.coef).sum(axis=0)
        return weight / weight.sum()

    def missing_features(self, present: Sequence[str]) -> list[str]:
        have = set(present)
        return [f for f in self.features if f not in have]

    def check_features(self, present: Sequence[str], source: str) -> list[str]:
        """The model features absent from ``present``; raise when they matter too much."""
        missing = self.missing_features(present)
        share = float(self.feature_weights()[[self.features.index(f) for f in missing]].sum()) \
            if missing else 0.0
        if share > self.max_missing_weight:
            raise ModelInputError(
                f"{source}: too few of the IQMs the model needs: {len(missing)} of "
                f"{len(self.features)} missing, carrying {share:.0%} of its weight (limit "
                f"{self.max_missing_weight:.0%}); missing: {', '.join(missing)}")
        return missing

    # -- prediction -----------------------------------------------------------------------
    def design(self, iqms: Sequence[dict[str, float]]) -> np.ndarray:
        """Rows of IQM dicts -> (n_runs, n_features) with NaN where an IQM is missing."""
        return np.array([[row.get(f, np.nan) for f in self.features] for row in iqms],
                        dtype=float).reshape(len(iqms), len(self.features))

    def predict_proba(self, X: np.ndarray, sites: Sequence[str] | None = None) -> np.ndarray:
        """(n_runs, 3) probabilities in :data:`LABELS` order from raw IQMs (NaN = missing)."""
        return self.proba_from_scaled(self.scale(X, sites))

    def scale(self, X: np.ndarray, sites: Sequence[str] | None = None) -> np.ndarray:
        """Per-site robust scaling; refuses a site with fewer than ``min_site_runs`` runs."""
        sites = np.asarray(sites if sites is not None else ["site"] * len(X))
        for site in np.unique(sites):
            n = int((sites == site).sum())
            if n < self.min_site_runs:
                raise ModelInputError(
                    f"site {site!r} has {n} run(s); scaling IQMs to a site needs at least "
                    f"{self.min_site_runs} runs of the same scanner and protocol")
        return site_robust_scale(X, sites, self.clip)

    def scores(self, Z: np.ndarray) -> np.ndarray:
        return np.nan_to_num(Z, nan=0.0) @ self.coef.T + self.intercept

    def proba_from_scaled(self, Z: np.ndarray) -> np.ndarray:
        return probabilities(self.scores(Z), self.kind)

    def drivers(self, z: np.ndarray, label: str, top: int = 3) -> list[tuple[str, float]]:
        """The IQMs that pushed one run (scaled row ``z``) most towards ``label``.

        Contribution of IQM j: ``d_j z_j`` where ``d`` is the weight direction of the label
        (ordinal: towards Bad ``-w_0``, towards Good ``+w_1``, Medium: away from both;
        multinomial: ``w_label - mean_k w_k``). Returns ``(name, contribution)`` pairs,
        largest first, contributions > 0 only.
        """
        z = np.nan_to_num(z, nan=0.0)
        if self.kind == "ordinal":
            direction = {"Bad": -self.coef[0], "Good": self.coef[1],
                         "Medium": self.coef[0] - self.coef[1]}[label]
        else:
            direction = self.coef[LABELS.index(label)] - self.coef.mean(axis=0)
        contrib = direction * z
        order = np.argsort(-contrib)[:top]
        return [(self.features[i], float(contrib[i])) for i in order if contrib[i] > 0]


def site_robust_scale(X: np.ndarray, sites: Sequence[str], clip: float) -> np.ndarray:
    """Per-site robust scaling ``(x - median) / IQR`` (IQR = P75 - P25; 1 when zero),
    clipped to ``[-clip, clip]``; NaN (missing) stays NaN. As MRIQC's ``SiteRobustScaler``
    (Esteban et al. 2017, PLoS ONE 12:e0184661) without the unit-variance factor."""
    X = np.asarray(X, dtype=float)
    Z = np.full_like(X, np.nan)
    sites = np.asarray(sites)
    for site in np.unique(sites):
        rows = sites == site
        block = X[rows]
        with warnings.catch_warnings():  # all-NaN column (IQM missing for the whole site)
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(block, axis=0)
            iqr = np.nanpercentile(block, 75, axis=0) - np.nanpercentile(block, 25, axis=0)
        iqr = np.where(np.isfinite(iqr) & (iqr > 0), iqr, 1.0)
        Z[rows] = np.clip((block - med) / iqr, -clip, clip)
    return Z


def probabilities(scores: np.ndarray, kind: str) -> np.ndarray:
    """Linear scores -> (n, 3) probabilities in (Bad, Medium, Good) order (see module doc)."""
    scores = np.atleast_2d(scores)
    if kind == "ordinal":
        above_bad = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        above_medium = np.minimum(1.0 / (1.0 + np.exp(-scores[:, 1])), above_bad)
        return np.stack([1.0 - above_bad, above_bad - above_medium, above_medium], axis=1)
    shifted = scores - scores.max(axis=1, keepdims=True)
    expo = np.exp(shifted)
    return expo / expo.sum(axis=1, keepdims=True)
