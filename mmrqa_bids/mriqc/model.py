"""The IQM model: grades runs Good / Medium / Bad from MRIQC's IQMs alone.

numpy (and scipy for the rank block) at prediction time; the coefficients ship as JSON
(``data/mriqc_t1w_model.json``, written by ``scripts/train_mriqc_model.py``, described in
``data/mriqc_t1w_model_card.md``).

Steps, for a table of runs:

1. the design matrix, made of one or two blocks of the model's IQMs (``blocks``):

   * ``site``: per-site robust scaling, ``z = (x - median_site(x)) / IQR_site(x)`` clipped to
     ``[-clip, clip]`` (statistics of the graded table itself, one site: no labels needed);
   * ``rank``: per-site rank-based inverse normal transform, ``z = Phi^-1((r - 1/2) / n)``
     with ``r`` the rank of the run's IQM within its site (ties: mean rank) and ``n`` the
     site's runs with that IQM (also label-free and transductive);
   * ``global``: ``z = (slog(x) - m) / s`` clipped, with ``slog(x) = sign(x) log(1 + |x|)``
     and ``m``, ``s`` the median and IQR of ``slog`` over the training images (shipped with
     the model): the IQM's level relative to the training population;

2. a missing IQM is imputed with ``z = 0`` (the median: no evidence either way);
3. linear scores ``s_k = w_k . z + b_k`` and then either

   * ``ordinal`` (Frank & Hall 2001, cumulative binary models, Bad < Medium < Good):
     ``P(y > Bad) = sigma(s_0)``, ``P(y > Medium) = min(sigma(s_1), P(y > Bad))``, so
     ``p_bad = 1 - P(y > Bad)``, ``p_good = P(y > Medium)``, ``p_medium`` the rest;
   * ``multinomial``: ``p = softmax(s)`` over (Bad, Medium, Good);

4. optionally (``prior = "em"``), the class priors of the graded site are re-estimated from
   its own unlabelled probabilities by EM (Saerens, Latinne & Decaestecker 2002, Neural
   Comput. 14:21-41): ``p'(k|x) ∝ (pi'_k / pi_k) p(k|x)``, ``pi'_k = mean_x p'(k|x)``,
   iterated to a fixed point, with ``pi`` the training priors (``train_prior``);
5. the grade: with ``thresholds = (t_bad, t_good)``, Bad if ``p_bad >= t_bad``, else Good if
   ``p_good >= t_good``, else Medium (an ordinal cut rule); without thresholds, the argmax.

With balanced class weights the probabilities are those of a population with equal class
priors (``train_prior`` = 1/3 each); without, those of the training class mix.
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
BLOCKS = ("site", "rank", "global")
SITE_BLOCKS = ("site", "rank")  # blocks computed from the graded site's own statistics
PRIORS = ("none", "em")
DEFAULT_MODEL = "mriqc_t1w_model.json"


class ModelInputError(MriqcError):
    """An IQM table the model cannot grade (too few runs or too few of its features)."""


@dataclass(frozen=True)
class IqmModel:
    model_id: str
    kind: str  # "ordinal" or "multinomial"
    suffix: str
    features: tuple[str, ...]
    coef: np.ndarray  # (n_scores, len(blocks) * n_features), block-major columns
    intercept: np.ndarray  # (n_scores,)
    blocks: tuple[str, ...] = ("site",)
    center: np.ndarray | None = None  # "global" block: training median of slog(x)
    spread: np.ndarray | None = None  # "global" block: training IQR of slog(x)
    thresholds: tuple[float, float] | None = None  # (t_bad, t_good); None: argmax
    prior: str = "none"  # "em": re-estimate the graded site's class priors (step 4)
    train_prior: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # Bad, Medium, Good
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
            ref = doc.get("global_reference") or {}
            model = cls(model_id=doc["model_id"], kind=doc["kind"], suffix=doc["suffix"],
                        features=tuple(doc["features"]),
                        coef=np.asarray(doc["coef"], dtype=float),
                        intercept=np.asarray(doc["intercept"], dtype=float),
                        blocks=tuple(doc.get("blocks", ["site"])),
                        center=np.asarray(ref["center"], dtype=float) if ref else None,
                        spread=np.asarray(ref["spread"], dtype=float) if ref else None,
                        thresholds=(tuple(float(t) for t in doc["thresholds"])
                                    if doc.get("thresholds") is not None else None),
                        prior=doc.get("prior", "none"),
                        train_prior=tuple(float(v) for v in
                                          doc.get("train_prior", [1 / 3, 1 / 3, 1 / 3])),
                        clip=float(doc["clip"]), min_site_runs=int(doc["min_site_runs"]),
                        max_missing_weight=float(doc["max_missing_weight"]),
                        card=dict(doc.get("card", {})),
                        checksum="sha256:" + hashlib.sha256(raw).hexdigest())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MriqcError(f"{path}: cannot load the IQM model ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())})") from exc
        problem = model.problem()
        if problem:
            raise MriqcError(f"{path}: {problem}")
        return model

    def problem(self) -> str | None:
        """What makes this model unusable, or None."""
        if self.kind not in ("ordinal", "multinomial"):
            return f"unknown model kind {self.kind!r}"
        if not self.blocks or any(b not in BLOCKS for b in self.blocks):
            return f"unknown feature blocks {list(self.blocks)} (known: {', '.join(BLOCKS)})"
        want = 2 if self.kind == "ordinal" else 3
        n = len(self.blocks) * len(self.features)
        if self.coef.shape != (want, n) or self.intercept.shape != (want,):
            return "coefficient shapes do not match the feature list"
        if "global" in self.blocks and (
                self.center is None or self.spread is None
                or self.center.shape != (len(self.features),)
                or self.spread.shape != (len(self.features),)):
            return "the global block needs a reference center and spread per feature"
        if self.thresholds is not None and (
                len(self.thresholds) != 2 or not all(0 < t < 1 for t in self.thresholds)):
            return f"thresholds must be two probabilities, got {list(self.thresholds)}"
        if self.prior not in PRIORS:
            return f"unknown prior step {self.prior!r} (known: {', '.join(PRIORS)})"
        if len(self.train_prior) != 3 or not np.isclose(sum(self.train_prior), 1.0) \
                or min(self.train_prior) <= 0:
            return f"train_prior must be 3 positive probabilities, got {list(self.train_prior)}"
        return None

    @property
    def needs_site(self) -> bool:
        """Whether grading uses statistics of the graded site (then >= min_site_runs runs)."""
        return self.prior == "em" or any(b in SITE_BLOCKS for b in self.blocks)

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "model_id": self.model_id, "kind": self.kind, "suffix": self.suffix,
            "blocks": list(self.blocks), "features": list(self.features),
            "coef": np.round(self.coef, 8).tolist(),
            "intercept": np.round(self.intercept, 8).tolist(),
            "global_reference": ({"center": np.round(self.center, 8).tolist(),
                                  "spread": np.round(self.spread, 8).tolist()}
                                 if "global" in self.blocks else None),
            "thresholds": list(self.thresholds) if self.thresholds is not None else None,
            "prior": self.prior, "train_prior": [round(float(v), 8) for v in self.train_prior],
            "clip": self.clip, "min_site_runs": self.min_site_runs,
            "max_missing_weight": self.max_missing_weight, "card": self.card}
        return json.dumps(doc, indent=1, allow_nan=False) + "\n"  # a NaN weight: ValueError

    # -- checks ---------------------------------------------------------------------------
    def feature_weights(self) -> np.ndarray:
        """Share of the model's absolute weight carried by each IQM, summed over the blocks
        (sums to 1)."""
        weight = np.abs(self.coef).sum(axis=0).reshape(len(self.blocks), -1).sum(axis=0)
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
        return self.proba_from_scaled(self.scale(X, sites), sites)

    def predict(self, X: np.ndarray, sites: Sequence[str] | None = None) -> list[str]:
        """Grades (:data:`LABELS`) of raw IQM rows, with the model's decision rule."""
        return decide(self.predict_proba(X, sites), self.thresholds)

    def scale(self, X: np.ndarray, sites: Sequence[str] | None = None) -> np.ndarray:
        """The design matrix (blocks side by side; NaN = missing). The ``site`` and ``rank``
        blocks (and the ``em`` prior step) refuse a site with fewer than ``min_site_runs``
        runs; a model of the ``global`` block alone needs no site."""
        X = np.asarray(X, dtype=float)
        sites = self._sites(sites, len(X))
        parts = []
        for block in self.blocks:
            if block == "site":
                parts.append(site_robust_scale(X, sites, self.clip))
            elif block == "rank":
                parts.append(site_rank_scale(X, sites))
            else:
                parts.append(reference_scale(X, self.center, self.spread, self.clip))
        return np.hstack(parts)

    def _sites(self, sites: Sequence[str] | None, n_runs: int) -> np.ndarray:
        sites = np.asarray(sites if sites is not None else ["site"] * n_runs)
        if self.needs_site:
            for site in np.unique(sites):
                n = int((sites == site).sum())
                if n < self.min_site_runs:
                    raise ModelInputError(
                        f"site {site!r} has {n} run(s); scaling IQMs to a site (or estimating "
                        f"its class mix) needs at least {self.min_site_runs} runs of the same "
                        "scanner and protocol")
        return sites

    def scores(self, Z: np.ndarray) -> np.ndarray:
        return np.nan_to_num(Z, nan=0.0) @ self.coef.T + self.intercept

    def proba_from_scaled(self, Z: np.ndarray, sites: Sequence[str] | None = None) -> np.ndarray:
        """Probabilities of design rows; with ``prior = "em"``, adapted to each site's
        re-estimated class priors (``sites`` None: all rows are one site)."""
        proba = probabilities(self.scores(Z), self.kind)
        if self.prior == "em":
            sites = self._sites(sites, len(proba))
            for site in np.unique(sites):
                rows = sites == site
                proba[rows] = em_priors(proba[rows], np.asarray(self.train_prior))[0]
        return proba

    def drivers(self, z: np.ndarray, label: str, top: int = 3) -> list[tuple[str, float]]:
        """The IQMs that pushed one run (design row ``z``) most towards ``label``.

        Contribution of IQM j: ``sum_blocks d_j z_j`` where ``d`` is the weight direction of
        the label (ordinal: towards Bad ``-w_0``, towards Good ``+w_1``, Medium: away from both;
        multinomial: ``w_label - mean_k w_k``). Returns ``(name, contribution)`` pairs, largest
        first, contributions > 0 only.
        """
        z = np.nan_to_num(z, nan=0.0)
        if self.kind == "ordinal":
            direction = {"Bad": -self.coef[0], "Good": self.coef[1],
                         "Medium": self.coef[0] - self.coef[1]}[label]
        else:
            direction = self.coef[LABELS.index(label)] - self.coef.mean(axis=0)
        contrib = (direction * z).reshape(len(self.blocks), -1).sum(axis=0)
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


def site_rank_scale(X: np.ndarray, sites: Sequence[str]) -> np.ndarray:
    """Per-site rank-based inverse normal transform ``Phi^-1((r - 1/2) / n)``: ``r`` the rank
    of the value within its site and column (ties: mean rank), ``n`` the number of non-NaN
    values there; NaN stays NaN. Invariant to any increasing transform of an IQM at a site
    (a scanner's gain or offset), bounded by ``|Phi^-1(1/(2n))|``."""
    from scipy.special import ndtri
    from scipy.stats import rankdata
    X = np.asarray(X, dtype=float)
    Z = np.full_like(X, np.nan)
    sites = np.asarray(sites)
    for site in np.unique(sites):
        rows = np.flatnonzero(sites == site)
        for j in range(X.shape[1]):
            col = X[rows, j]
            ok = np.isfinite(col)
            if ok.any():
                Z[rows[ok], j] = ndtri((rankdata(col[ok]) - 0.5) / ok.sum())
    return Z


def em_priors(proba: np.ndarray, train_prior: np.ndarray, tol: float = 1e-6,
              max_iter: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """EM re-estimation of the class priors of an unlabelled sample (Saerens, Latinne &
    Decaestecker 2002, eq. 2.9-2.10): starting from ``pi' = pi`` (training priors), repeat
    ``p'(k|x) = (pi'_k/pi_k) p(k|x) / sum_j (pi'_j/pi_j) p(j|x)`` and ``pi'_k = mean_x p'(k|x)``
    until the priors change by less than ``tol``. Returns (adapted probabilities, priors)."""
    proba = np.asarray(proba, dtype=float)
    train_prior = np.asarray(train_prior, dtype=float)
    prior = train_prior.copy()
    for _ in range(max_iter):
        weighted = proba * (prior / train_prior)
        adapted = weighted / weighted.sum(axis=1, keepdims=True)
        new = adapted.mean(axis=0)
        done = np.abs(new - prior).max() < tol
        prior = new
        if done:
            break
    weighted = proba * (prior / train_prior)
    return weighted / weighted.sum(axis=1, keepdims=True), prior


def signed_log(X: np.ndarray) -> np.ndarray:
    """``sign(x) log(1 + |x|)``: compresses the heavy right tails of IQMs such as ``fber``
    and ``snr_*`` while keeping zero and the sign."""
    X = np.asarray(X, dtype=float)
    return np.sign(X) * np.log1p(np.abs(X))


def reference_stats(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and IQR (1 where zero) of ``signed_log(X)`` per column, ignoring NaN."""
    L = signed_log(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nanmedian(L, axis=0)
        spread = np.nanpercentile(L, 75, axis=0) - np.nanpercentile(L, 25, axis=0)
    return center, np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)


def reference_scale(X: np.ndarray, center: np.ndarray, spread: np.ndarray,
                    clip: float) -> np.ndarray:
    """``(signed_log(x) - center) / spread`` clipped to ``[-clip, clip]``; NaN stays NaN."""
    return np.clip((signed_log(X) - center) / spread, -clip, clip)


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


def decide_index(proba: np.ndarray, thresholds: tuple[float, float] | None) -> np.ndarray:
    """Grade indices into :data:`LABELS` (0 Bad, 1 Medium, 2 Good) of (n, 3) probabilities:
    the argmax, or with ``(t_bad, t_good)`` the cut rule Bad if ``p_bad >= t_bad``, else Good
    if ``p_good >= t_good``, else Medium."""
    proba = np.atleast_2d(proba)
    if thresholds is None:
        return proba.argmax(axis=1)
    t_bad, t_good = thresholds
    return np.where(proba[:, 0] >= t_bad, 0, np.where(proba[:, 2] >= t_good, 2, 1))


def decide(proba: np.ndarray, thresholds: tuple[float, float] | None) -> list[str]:
    """Grades (:data:`LABELS`) of (n, 3) probabilities; see :func:`decide_index`."""
    return [LABELS[i] for i in decide_index(proba, thresholds)]
