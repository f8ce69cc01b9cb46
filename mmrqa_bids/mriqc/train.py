"""Training and model selection of the IQM model (used by ``scripts/train_mriqc_model.py`` and
``benchmarks/mriqc_ratings.py``; never imported at grading time).

Data: the MRIQC IQMs and expert ratings that PyPI's ``mriqc-learn`` ships
(``mriqc_learn/datasets/abide.tsv``: 1,101 ABIDE T1w images, 17 sites, ratings in
``rater_1``/``rater_2``; ``ds030.tsv``: 265 images, 2 sites, ``rater_1``), read in place from
the installed package. Ratings -1/0/1 = exclude/doubtful/accept = Bad/Medium/Good.

Protocol: fit on ABIDE only. Every choice (IQM set, feature blocks, model family,
regularisation, class weights, prior step, decision rule) is made by leave-one-site-out (LOSO)
cross-validation within ABIDE, with the criterion :func:`site_criterion` (per held-out site,
then averaged over sites), declared before the v3 candidates were scored. DS030 is the
held-out test, scored by ``benchmarks/mriqc_ratings.py`` after the selection.
Metrics are computed with ``sklearn.metrics`` (numpy equivalents where thresholds are tuned).
"""
from __future__ import annotations

import csv
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mmrqa_bids.mriqc.model import (IqmModel, decide_index, em_priors, probabilities,
                                    reference_scale, reference_stats, site_rank_scale,
                                    site_robust_scale)

CLIP = 10.0
CODES = np.array([-1, 0, 1])  # Bad, Medium, Good (column order of the probabilities)
FEATURE_SETS = ("all", "nosummary")
BLOCK_SETS = (("site",), ("rank",), ("global",), ("site", "global"), ("rank", "global"))
LINEAR_KINDS = ("ordinal", "multinomial")
WEIGHTS = ("balanced", "none")
CS = (0.01, 0.03, 0.1)
FOREST_BLOCKS = (("site",), ("rank",), ("global",))
PRIORS = ("none", "em")
RULES = ("argmax", "median", "tuned")
THRESHOLD_GRID = np.round(np.arange(0.20, 0.801, 0.05), 2)
FOREST = {"n_estimators": 300, "min_samples_leaf": 5, "max_features": "sqrt",
          "class_weight": "balanced_subsample"}


@dataclass(frozen=True)
class RatedTable:
    names: tuple[str, ...]  # IQM names, as columns of X
    X: np.ndarray
    sites: np.ndarray
    ratings: dict[str, np.ndarray]  # rater column -> codes, NaN where not rated


@dataclass(frozen=True)
class Candidate:
    blocks: tuple[str, ...]
    kind: str  # "ordinal", "multinomial" (logistic) or "forest"
    C: float = 0.0  # inverse L2 strength of the logistic models (unused by forests)
    features: str = "all"  # one of FEATURE_SETS
    weight: str = "balanced"  # class weights: "balanced" (equal priors) or "none"

    @property
    def name(self) -> str:
        model = f"{self.kind} C={self.C:g} {self.weight}" if self.kind != "forest" else "forest"
        return f"{self.features} {'+'.join(self.blocks)} {model}"


def chosen_candidate(model: IqmModel) -> tuple[Candidate, str, str]:
    """The candidate, decision rule and prior step recorded in a trained model's card."""
    c = model.card["chosen"]
    return (Candidate(tuple(c["blocks"]), c["kind"], float(c["C"]), c.get("features", "all"),
                      c.get("weight", "balanced")), c["rule"], c.get("prior", "none"))


def candidates() -> list[Candidate]:
    """The v3 grid compared by LOSO CV, simplest first (ties keep the earlier one)."""
    linear = [Candidate(b, k, c, f, w) for f in FEATURE_SETS for b in BLOCK_SETS
              for k in LINEAR_KINDS for w in WEIGHTS for c in CS]
    return linear + [Candidate(b, "forest", 0.0, f) for f in FEATURE_SETS for b in FOREST_BLOCKS]


def mriqc_learn_datasets() -> Path:
    """Folder of the TSVs shipped by the installed ``mriqc-learn`` (not imported)."""
    spec = importlib.util.find_spec("mriqc_learn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("mriqc-learn is not installed: `pip install mriqc-learn` provides the "
                           "ABIDE and DS030 IQM tables the IQM model is trained and tested on")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets"


def read_rated_table(path: Path) -> RatedTable:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    columns = list(rows[0].keys())
    raters = [c for c in columns if c.startswith("rater_")]
    first = columns.index("cjv")  # IQMs start at cjv, as in mriqc-learn's loader
    names = tuple(columns[first:])

    def num(v: str) -> float:
        return float(v) if v not in ("", "n/a", "nan") else np.nan

    X = np.array([[num(r[c]) for c in names] for r in rows], dtype=float)
    ratings = {c: np.array([num(r[c]) for r in rows]) for c in raters}
    return RatedTable(names, X, np.array([r["site"] for r in rows]), ratings)


def model_features(names: tuple[str, ...], feature_set: str = "all") -> list[str]:
    """Every IQM except image geometry (``size_*``, ``spacing_*``) and voxel counts
    (``summary_*_n``), which describe the protocol rather than the quality; ``nosummary``
    also drops the ``summary_*`` tissue-intensity statistics, whose levels follow the
    scanner's intensity scale."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown IQM set {feature_set!r} (known: {', '.join(FEATURE_SETS)})")
    keep = [n for n in names if not n.startswith(("size_", "spacing_")) and not n.endswith("_n")]
    return keep if feature_set == "all" else [n for n in keep if not n.startswith("summary_")]


def abide_labels(table: RatedTable, seed: int) -> np.ndarray:
    """rater_1 or rater_2, whichever rated the image; one of the two at random (seeded)
    where both did. Images rated by neither are an error (there are none in ABIDE)."""
    r1, r2 = table.ratings["rater_1"], table.ratings["rater_2"]
    pick_first = np.random.default_rng(seed).random(len(r1)) < 0.5
    y = np.where(np.isnan(r1), r2, np.where(np.isnan(r2), r1, np.where(pick_first, r1, r2)))
    if np.isnan(y).any():
        raise ValueError("ABIDE images without rater_1 or rater_2")
    return y.astype(int)


def columns(table: RatedTable, features: list[str]) -> np.ndarray:
    return table.X[:, [table.names.index(f) for f in features]]


def design(X: np.ndarray, sites: np.ndarray, blocks: tuple[str, ...],
           reference: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Blocks side by side, as :meth:`IqmModel.scale` builds them (NaN -> 0)."""
    def block(b):
        if b == "site":
            return site_robust_scale(X, sites, CLIP)
        if b == "rank":
            return site_rank_scale(X, sites)
        return reference_scale(X, reference[0], reference[1], CLIP)
    return np.nan_to_num(np.hstack([block(b) for b in blocks]), nan=0.0)


def train_prior(y: np.ndarray, weight: str) -> np.ndarray:
    """Class priors (Bad, Medium, Good) the fitted probabilities refer to: equal with balanced
    class weights, else the training class frequencies."""
    if weight == "balanced":
        return np.full(3, 1 / 3)
    return np.array([(y == c).mean() for c in CODES])


def fit(Z: np.ndarray, y: np.ndarray, kind: str, C: float, weight: str = "balanced",
        seed: int = 0):
    """(coef, intercept) of the ordinal pair or the multinomial model, L2 logistic."""
    from sklearn.linear_model import LogisticRegression

    def logreg(target):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LogisticRegression(C=C, class_weight="balanced" if weight == "balanced"
                                      else None, max_iter=5000, random_state=seed).fit(Z, target)
    if kind == "ordinal":
        models = [logreg((y > -1).astype(int)), logreg((y > 0).astype(int))]
        return (np.vstack([m.coef_[0] for m in models]),
                np.array([m.intercept_[0] for m in models]))
    model = logreg(y)
    assert list(model.classes_) == [-1, 0, 1]
    return model.coef_.copy(), model.intercept_.copy()


def fit_forest(Z: np.ndarray, y: np.ndarray, seed: int = 0):
    """Random forest of :data:`FOREST` settings (classes -1, 0, 1)."""
    from sklearn.ensemble import RandomForestClassifier
    return RandomForestClassifier(random_state=seed, n_jobs=1, **FOREST).fit(Z, y)


def make_model(features, cand: Candidate, coef, intercept, reference=None, thresholds=None,
               card=None, prior: str = "none", prior_train=(1 / 3, 1 / 3, 1 / 3)) -> IqmModel:
    center, spread = reference if reference is not None else (None, None)
    return IqmModel(model_id=f"mriqc-iqm-{'-'.join(cand.blocks)}-{cand.kind}"
                             f"{'-em' if prior == 'em' else ''}-abide-v3",
                    kind=cand.kind, suffix="T1w", features=tuple(features), coef=coef,
                    intercept=intercept, blocks=cand.blocks, center=center, spread=spread,
                    thresholds=thresholds, clip=CLIP, card=card or {}, prior=prior,
                    train_prior=tuple(float(v) for v in prior_train))


# -- metrics and decision rules ----------------------------------------------------------
def macro_f1(y_idx: np.ndarray, pred_idx: np.ndarray) -> float:
    """Macro-averaged F1 over the 3 classes (indices 0..2); numpy, for the threshold search
    (equal to ``sklearn.metrics.f1_score(average='macro')`` when all classes occur)."""
    f1 = []
    for k in range(3):
        tp = np.sum((pred_idx == k) & (y_idx == k))
        denom = np.sum(pred_idx == k) + np.sum(y_idx == k)
        f1.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1))


def scores(y: np.ndarray, proba: np.ndarray,
           thresholds: tuple[float, float] | None = None) -> dict[str, float]:
    """Pooled metrics: binary Bad-vs-rest (predicted Bad = graded Bad; AUC from ``p_bad``)
    and 3-class (grade by :func:`decide_index`)."""
    return pooled_scores(y, proba, CODES[decide_index(proba, thresholds)])


def selection_score(s: dict[str, float]) -> float:
    """The v2 selection criterion (superseded, kept to print it next to the v3 one): mean of
    the LOSO Bad-vs-rest ROC-AUC and 3-class macro-F1, POOLED over the held-out sites. Pooled
    metrics reward IQM levels that track each site's class mix (site confounding)."""
    return float(np.mean([s["bin_auc"], s["f1_3"]]))


# -- v3 selection criterion: per held-out site, then averaged over sites ------------------
# Declared (committed) before any v3 candidate was scored; see site_criterion.
MIN_SITE_CLASS = 3  # a site enters the binary means with >= 3 Bad and >= 3 non-Bad images


def site_metrics(y: np.ndarray, proba: np.ndarray, grade: np.ndarray) -> dict[str, float]:
    """Metrics of ONE held-out site (its LOSO probabilities and grades, codes -1/0/1).

    * ``auc``: ROC-AUC of ``p_bad`` for Bad vs rest, and ``bacc``: binary balanced accuracy of
      "graded Bad" vs "rated Bad"; both NaN unless the site has at least
      :data:`MIN_SITE_CLASS` Bad and :data:`MIN_SITE_CLASS` non-Bad images;
    * ``f1``: 3-class macro-F1 over the ratings present at the site
      (``sklearn.metrics.f1_score(labels=present, average='macro')``).
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
    bad = y == -1
    binary_ok = bad.sum() >= MIN_SITE_CLASS and (~bad).sum() >= MIN_SITE_CLASS
    present = [c for c in CODES if (y == c).any()]
    return {"auc": float(roc_auc_score(bad, proba[:, 0])) if binary_ok else np.nan,
            "bacc": float(balanced_accuracy_score(bad, grade == -1)) if binary_ok else np.nan,
            "f1": float(f1_score(y, grade, labels=present, average="macro", zero_division=0))}


def site_criterion(y: np.ndarray, sites: np.ndarray, proba: np.ndarray,
                   grade: np.ndarray) -> dict[str, float]:
    """The v3 selection criterion, computed on ABIDE leave-one-site-out predictions only.

    For every held-out site s, :func:`site_metrics` gives AUC_s, BAcc_s (sites with >= 3 Bad
    and >= 3 non-Bad images) and F1_s (every site). Each is averaged over sites, unweighted
    (a site counts once, whatever its size), and the criterion is

        criterion = (mean_s AUC_s + mean_s BAcc_s + mean_s F1_s) / 3

    Every term is computed inside one site, so a score that only tracks a site's class mix
    (a site-level offset of p_bad) cannot raise it: within-site AUC ignores offsets, and
    within-site balanced accuracy and macro-F1 punish them. The three terms are the three
    DS030 targets (AUC, balanced accuracy, macro-F1), measured per unseen site. The best
    row wins; on an exact tie, the earlier row in grid order (simpler first).
    """
    per_site = [site_metrics(y[sites == s], proba[sites == s], grade[sites == s])
                for s in np.unique(sites)]
    out = {f"site_{k}": float(np.nanmean([m[k] for m in per_site]))
           for k in ("auc", "bacc", "f1")}
    out["n_binary_sites"] = int(sum(np.isfinite(m["auc"]) for m in per_site))
    out["criterion"] = float(np.mean([out["site_auc"], out["site_bacc"], out["site_f1"]]))
    return out


def site_objective(y_idx: np.ndarray, pred_idx: np.ndarray, site_idx: np.ndarray,
                   n_sites: int, binary_ok: np.ndarray) -> float:
    """(mean_s BAcc_s + mean_s F1_s) / 2, the threshold-dependent terms of
    :func:`site_criterion` (same definitions), in numpy from per-site confusion matrices;
    ``binary_ok`` marks the sites that enter the balanced-accuracy mean."""
    cm = np.bincount(site_idx * 9 + y_idx * 3 + pred_idx,
                     minlength=n_sites * 9).reshape(n_sites, 3, 3).astype(float)
    rows, cols, diag = cm.sum(axis=2), cm.sum(axis=1), np.diagonal(cm, axis1=1, axis2=2)
    present = rows > 0
    f1 = np.divide(2 * diag, rows + cols, out=np.zeros_like(diag), where=rows + cols > 0)
    f1_site = (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    used = present.any(axis=1)
    tpr = np.divide(cm[:, 0, 0], rows[:, 0], out=np.zeros(n_sites), where=rows[:, 0] > 0)
    rest = rows[:, 1:].sum(axis=1)
    tnr = np.divide(cm[:, 1:, 1:].sum(axis=(1, 2)), rest, out=np.zeros(n_sites), where=rest > 0)
    ok = binary_ok & used
    bacc = ((tpr + tnr) / 2)[ok].mean() if ok.any() else 0.0
    return float((bacc + f1_site[used].mean()) / 2)


def tune_site_thresholds(y: np.ndarray, sites: np.ndarray,
                         proba: np.ndarray) -> tuple[float, float]:
    """(t_bad, t_good) of :data:`THRESHOLD_GRID` maximising :func:`site_objective` over the
    sites given (first maximum)."""
    y_idx = np.searchsorted(CODES, y)
    names, site_idx = np.unique(sites, return_inverse=True)
    counts = np.array([[(y_idx[site_idx == i] == 0).sum(), (y_idx[site_idx == i] > 0).sum()]
                       for i in range(len(names))])
    binary_ok = (counts >= MIN_SITE_CLASS).all(axis=1)
    best, arg = -1.0, (0.5, 0.5)
    for tb in THRESHOLD_GRID:
        for tg in THRESHOLD_GRID:
            th = (float(tb), float(tg))
            v = site_objective(y_idx, decide_index(proba, th), site_idx, len(names), binary_ok)
            if v > best + 1e-12:
                best, arg = v, th
    return arg


# -- leave-one-site-out ------------------------------------------------------------------
def loso_predictions(X: np.ndarray, y: np.ndarray, sites: np.ndarray,
                     cand: Candidate) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-site-out probabilities: each site predicted by a model fitted on the other
    sites. The ``global`` reference (median/IQR) comes from the training sites only; the
    ``site``/``rank`` blocks of each site use its own (unlabelled) IQMs, as at grading time.
    Returns (probabilities, training priors of the fold that predicted each row)."""
    proba = np.zeros((len(y), 3))
    priors = np.zeros((len(y), 3))
    for site in np.unique(sites):
        test = sites == site
        reference = reference_stats(X[~test])
        Z_train = design(X[~test], sites[~test], cand.blocks, reference)
        Z_test = design(X[test], sites[test], cand.blocks, reference)
        if cand.kind == "forest":
            forest = fit_forest(Z_train, y[~test])
            proba[test] = forest.predict_proba(Z_test)[:, [list(forest.classes_).index(c)
                                                           for c in CODES]]
            priors[test] = 1 / 3
        else:
            coef, intercept = fit(Z_train, y[~test], cand.kind, cand.C, cand.weight)
            proba[test] = probabilities(Z_test @ coef.T + intercept, cand.kind)
            priors[test] = train_prior(y[~test], cand.weight)
    return proba, priors


def adapt_priors(proba: np.ndarray, priors: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """LOSO probabilities after the ``em`` prior step, run on each held-out site alone."""
    out = proba.copy()
    for site in np.unique(sites):
        rows = sites == site
        out[rows] = em_priors(proba[rows], priors[rows][0])[0]
    return out


def loso_rules(y: np.ndarray, sites: np.ndarray,
               proba: np.ndarray) -> dict[str, tuple[dict[str, float], Any]]:
    """LOSO metrics (:func:`site_criterion` and pooled :func:`scores`) of the three decision
    rules on the same LOSO probabilities: ``argmax``; ``median`` (t_bad = t_good = 0.5);
    ``tuned``: for each held-out site, the thresholds of :func:`tune_site_thresholds` on the
    LOSO predictions of the *other* sites (those came from models that saw the held-out
    site's labels, so this figure is slightly optimistic); the final thresholds are tuned on
    all LOSO predictions. Returns rule -> (metrics, thresholds)."""
    grades = {"argmax": (CODES[decide_index(proba, None)], None),
              "median": (CODES[decide_index(proba, (0.5, 0.5))], (0.5, 0.5))}
    tuned = np.zeros(len(y), dtype=int)
    for site in np.unique(sites):
        test = sites == site
        th = tune_site_thresholds(y[~test], sites[~test], proba[~test])
        tuned[test] = CODES[decide_index(proba[test], th)]
    grades["tuned"] = (tuned, tune_site_thresholds(y, sites, proba))
    out = {}
    for rule, (grade, th) in grades.items():
        pooled = pooled_scores(y, proba, grade)
        out[rule] = ({**pooled, **site_criterion(y, sites, proba, grade)}, th)
    return out


def pooled_scores(y: np.ndarray, proba: np.ndarray, grade: np.ndarray) -> dict[str, float]:
    """The metrics of :func:`scores` for given grades (codes -1/0/1), pooled over all rows."""
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score,
                                 roc_auc_score)
    bad = (y == -1).astype(int)
    return {"bin_acc": accuracy_score(bad, grade == -1),
            "bin_bacc": balanced_accuracy_score(bad, grade == -1),
            "bin_auc": roc_auc_score(bad, proba[:, 0]), "acc3": accuracy_score(y, grade),
            "f1_3": f1_score(y, grade, average="macro"),
            "bacc3": balanced_accuracy_score(y, grade)}


def load_abide(seed: int, feature_set: str = "all"):
    """(features, X, y, sites) of ABIDE with the labels of ``seed``."""
    abide = read_rated_table(mriqc_learn_datasets() / "abide.tsv")
    features = model_features(abide.names, feature_set)
    return features, columns(abide, features), abide_labels(abide, seed), abide.sites


def loso_table(seed: int, grid: Iterable[Candidate], priors: Iterable[str] = PRIORS,
               rules: Iterable[str] = RULES, n_jobs: int = 1,
               verbose: bool = False) -> list[dict[str, Any]]:
    """One row per candidate x prior step x rule, with its LOSO metrics and thresholds."""
    grid, priors, rules = list(grid), tuple(priors), tuple(rules)
    data = {f: load_abide(seed, f) for f in {c.features for c in grid}}

    def run(cand):
        _, X, y, sites = data[cand.features]
        return loso_predictions(X, y, sites, cand)
    if n_jobs > 1 and len(grid) > 1:  # candidates in parallel processes; same results
        from joblib import Parallel, delayed
        results = Parallel(n_jobs=n_jobs)(
            delayed(loso_predictions)(*data[c.features][1:], c) for c in grid)
    else:
        results = [run(c) for c in grid]
    table = []
    for cand, (proba, prior_train) in zip(grid, results):
        _, _, y, sites = data[cand.features]
        for prior in priors:
            p = adapt_priors(proba, prior_train, sites) if prior == "em" else proba
            for rule, (s, th) in loso_rules(y, sites, p).items():
                if rule not in rules:
                    continue
                row = {"candidate": cand, "prior": prior, "rule": rule, "thresholds": th, **s,
                       "pooled_v2": selection_score(s)}
                table.append(row)
                if verbose:
                    print(f"  LOSO {cand.name:42s} {prior:4s} {rule:6s} "
                          + " ".join(f"{k} {s[k]:.3f}" for k in
                                     ("site_auc", "site_bacc", "site_f1", "bin_auc",
                                      "f1_3"))
                          + f"  -> {s['criterion']:.4f}"
                          + (f"  (thresholds {th[0]:.2f}/{th[1]:.2f})" if th else ""),
                          flush=True)
    return table


def select_and_fit(seed: int, verbose: bool = False,
                   grid: Iterable[Candidate] | None = None, rules: Iterable[str] = RULES,
                   priors: Iterable[str] = PRIORS, n_jobs: int = 1
                   ) -> tuple[IqmModel, list[dict[str, Any]]]:
    """Model selection by LOSO CV on ABIDE (:func:`site_criterion`), then the chosen model
    refitted on all of ABIDE. ``grid``/``rules``/``priors`` restrict the search (default:
    :func:`candidates` x :data:`PRIORS` x :data:`RULES`)."""
    grid = list(candidates() if grid is None else grid)
    table = loso_table(seed, grid, priors, rules, n_jobs, verbose)
    best = max(table, key=lambda r: r["criterion"])  # first maximum: the simpler one
    return fit_final(seed, best, len(table)), table


def fit_final(seed: int, best: dict[str, Any], n_rows: int) -> IqmModel:
    """The row ``best`` of a LOSO table refitted on all of ABIDE, with its card."""
    cand = best["candidate"]
    if cand.kind == "forest":
        raise NotImplementedError("shipping a random forest is not supported by IqmModel "
                                  "(linear models only); restrict the grid to linear models")
    features, X, y, sites = load_abide(seed, cand.features)
    reference = reference_stats(X)
    coef, intercept = fit(design(X, sites, cand.blocks, reference), y, cand.kind, cand.C,
                          cand.weight)
    counts = {lab: int((y == c).sum()) for lab, c in zip(("Bad", "Medium", "Good"), CODES)}
    card = {"training_data": "mriqc-learn abide.tsv (ABIDE I, 17 sites, T1w)",
            "n_train": int(len(y)), "class_counts": counts, "label_seed": seed,
            "selection": "leave-one-site-out CV on ABIDE, criterion (declared before the v3 "
                         "results): mean over held-out sites of Bad-vs-rest ROC-AUC, binary "
                         "balanced accuracy and 3-class macro-F1, each averaged over sites, "
                         "then averaged",
            "n_candidates": n_rows,
            "chosen": {"features": cand.features, "blocks": list(cand.blocks),
                       "kind": cand.kind, "C": cand.C, "weight": cand.weight,
                       "prior": best["prior"], "rule": best["rule"],
                       "thresholds": best["thresholds"]},
            "loso_cv": {k: round(float(best[k]), 4) for k in
                        ("site_auc", "site_bacc", "site_f1", "criterion", "bin_acc",
                         "bin_bacc", "bin_auc", "acc3", "f1_3", "bacc3", "pooled_v2")}}
    return make_model(features, cand, coef, intercept,
                      reference if "global" in cand.blocks else None,
                      tuple(best["thresholds"]) if best["thresholds"] else None, card,
                      best["prior"], train_prior(y, cand.weight))


def evaluate_ds030(model: IqmModel) -> dict[str, float]:
    """The held-out test: DS030 (2 sites unseen in training), ratings of rater_1."""
    ds030 = read_rated_table(mriqc_learn_datasets() / "ds030.tsv")
    y = ds030.ratings["rater_1"].astype(int)
    X = columns(ds030, list(model.features))
    return scores(y, model.predict_proba(X, ds030.sites), model.thresholds)


def confusion_ds030(model: IqmModel) -> np.ndarray:
    """DS030 confusion matrix, rows = truth (Bad, Medium, Good), columns = grade."""
    from sklearn.metrics import confusion_matrix
    ds030 = read_rated_table(mriqc_learn_datasets() / "ds030.tsv")
    y = ds030.ratings["rater_1"].astype(int)
    proba = model.predict_proba(columns(ds030, list(model.features)), ds030.sites)
    return confusion_matrix(y, CODES[decide_index(proba, model.thresholds)], labels=CODES)
