"""Training and model selection of the IQM model (used by ``scripts/train_mriqc_model.py`` and
``benchmarks/mriqc_ratings.py``; never imported at grading time).

Data: the MRIQC IQMs and expert ratings that PyPI's ``mriqc-learn`` ships
(``mriqc_learn/datasets/abide.tsv``: 1,101 ABIDE T1w images, 17 sites, ratings in
``rater_1``/``rater_2``; ``ds030.tsv``: 265 images, 2 sites, ``rater_1``), read in place from
the installed package. Ratings -1/0/1 = exclude/doubtful/accept = Bad/Medium/Good.

Protocol: fit on ABIDE only. Every choice (feature blocks, model family, regularisation,
decision rule) is made by leave-one-site-out (LOSO) cross-validation within ABIDE, with the
pre-declared criterion :func:`selection_score`; DS030 is the held-out test, scored once, after.
Metrics are computed with ``sklearn.metrics``.
"""
from __future__ import annotations

import csv
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mmrqa_bids.mriqc.model import (IqmModel, decide_index, reference_scale, reference_stats,
                                    site_robust_scale)

CLIP = 10.0
CODES = np.array([-1, 0, 1])  # Bad, Medium, Good (column order of the probabilities)
BLOCK_SETS = (("site",), ("global",), ("site", "global"))
KINDS = ("ordinal", "multinomial")
CS = (0.003, 0.01, 0.03, 0.1)
RULES = ("argmax", "median", "tuned")
THRESHOLD_GRID = np.round(np.arange(0.20, 0.801, 0.05), 2)


@dataclass(frozen=True)
class RatedTable:
    names: tuple[str, ...]  # IQM names, as columns of X
    X: np.ndarray
    sites: np.ndarray
    ratings: dict[str, np.ndarray]  # rater column -> codes, NaN where not rated


@dataclass(frozen=True)
class Candidate:
    blocks: tuple[str, ...]
    kind: str
    C: float

    @property
    def name(self) -> str:
        return f"{'+'.join(self.blocks)} {self.kind} C={self.C:g}"


def chosen_candidate(model: IqmModel) -> tuple[Candidate, str]:
    """The candidate and decision rule recorded in a trained model's card."""
    chosen = model.card["chosen"]
    return Candidate(tuple(chosen["blocks"]), chosen["kind"], float(chosen["C"])), chosen["rule"]


def candidates() -> list[Candidate]:
    """The grid compared by LOSO CV, simplest first (ties keep the earlier one)."""
    return [Candidate(b, k, c) for b in BLOCK_SETS for k in KINDS for c in CS]


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


def model_features(names: tuple[str, ...]) -> list[str]:
    """Every IQM except image geometry (``size_*``, ``spacing_*``) and voxel counts
    (``summary_*_n``), which describe the protocol rather than the quality."""
    return [n for n in names if not n.startswith(("size_", "spacing_")) and not n.endswith("_n")]


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
    parts = [site_robust_scale(X, sites, CLIP) if b == "site"
             else reference_scale(X, reference[0], reference[1], CLIP) for b in blocks]
    return np.nan_to_num(np.hstack(parts), nan=0.0)


def fit(Z: np.ndarray, y: np.ndarray, kind: str, C: float, seed: int = 0):
    """(coef, intercept) of the ordinal pair or the multinomial model, L2, balanced classes."""
    from sklearn.linear_model import LogisticRegression

    def logreg(target):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LogisticRegression(C=C, class_weight="balanced", max_iter=5000,
                                      random_state=seed).fit(Z, target)
    if kind == "ordinal":
        models = [logreg((y > -1).astype(int)), logreg((y > 0).astype(int))]
        return (np.vstack([m.coef_[0] for m in models]),
                np.array([m.intercept_[0] for m in models]))
    model = logreg(y)
    assert list(model.classes_) == [-1, 0, 1]
    return model.coef_.copy(), model.intercept_.copy()


def make_model(features, cand: Candidate, coef, intercept, reference=None, thresholds=None,
               card=None) -> IqmModel:
    center, spread = reference if reference is not None else (None, None)
    return IqmModel(model_id=f"mriqc-iqm-{'-'.join(cand.blocks)}-{cand.kind}-abide-v2",
                    kind=cand.kind, suffix="T1w", features=tuple(features), coef=coef,
                    intercept=intercept, blocks=cand.blocks, center=center, spread=spread,
                    thresholds=thresholds, clip=CLIP, card=card or {})


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


def tune_thresholds(y: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """(t_bad, t_good) of :data:`THRESHOLD_GRID` maximising macro-F1 (first maximum)."""
    y_idx = np.searchsorted(CODES, y)
    best, arg = -1.0, (0.5, 0.5)
    for tb in THRESHOLD_GRID:
        for tg in THRESHOLD_GRID:
            f1 = macro_f1(y_idx, decide_index(proba, (float(tb), float(tg))))
            if f1 > best + 1e-12:
                best, arg = f1, (float(tb), float(tg))
    return arg


def scores(y: np.ndarray, proba: np.ndarray,
           thresholds: tuple[float, float] | None = None) -> dict[str, float]:
    """Binary Bad-vs-rest (Bad when ``p_bad >= t_bad``, 0.5 without thresholds; AUC from
    ``p_bad``) and 3-class metrics (grade by :func:`decide_index`)."""
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score,
                                 roc_auc_score)
    bad = (y == -1).astype(int)
    pred_bad = (proba[:, 0] >= (thresholds[0] if thresholds else 0.5)).astype(int)
    pred = CODES[decide_index(proba, thresholds)]
    return {
        "bin_acc": accuracy_score(bad, pred_bad),
        "bin_bacc": balanced_accuracy_score(bad, pred_bad),
        "bin_auc": roc_auc_score(bad, proba[:, 0]),
        "acc3": accuracy_score(y, pred),
        "f1_3": f1_score(y, pred, average="macro"),
        "bacc3": balanced_accuracy_score(y, pred),
    }


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


# -- leave-one-site-out ------------------------------------------------------------------
def loso_predictions(X: np.ndarray, y: np.ndarray, sites: np.ndarray,
                     cand: Candidate) -> np.ndarray:
    """Leave-one-site-out probabilities: each site predicted by a model fitted on the other
    sites. The ``global`` reference (median/IQR) comes from the training sites only; the
    ``site`` scaling of each site uses its own (unlabelled) IQMs, as at grading time."""
    proba = np.zeros((len(y), 3))
    for site in np.unique(sites):
        test = sites == site
        reference = reference_stats(X[~test])
        Z_train = design(X[~test], sites[~test], cand.blocks, reference)
        coef, intercept = fit(Z_train, y[~test], cand.kind, cand.C)
        model = make_model(range(X.shape[1]), cand, coef, intercept, reference)
        proba[test] = model.proba_from_scaled(design(X[test], sites[test], cand.blocks,
                                                     reference))
    return proba


def loso_rules(y: np.ndarray, sites: np.ndarray,
               proba: np.ndarray) -> dict[str, tuple[dict[str, float], Any]]:
    """LOSO metrics of the three decision rules on the same LOSO probabilities:
    ``argmax``; ``median`` (t_bad = t_good = 0.5); ``tuned``: for each held-out site, the
    thresholds that maximise macro-F1 on the LOSO predictions of the *other* sites (those
    predictions came from models that saw the held-out site's labels, so this figure is
    slightly optimistic); the final thresholds are tuned on all LOSO predictions."""
    out: dict[str, tuple[dict[str, float], Any]] = {
        "argmax": (scores(y, proba, None), None),
        "median": (scores(y, proba, (0.5, 0.5)), (0.5, 0.5))}
    pred = np.zeros(len(y), dtype=int)
    pred_bad = np.zeros(len(y), dtype=int)
    for site in np.unique(sites):
        test = sites == site
        th = tune_thresholds(y[~test], proba[~test])
        pred[test] = CODES[decide_index(proba[test], th)]
        pred_bad[test] = proba[test, 0] >= th[0]
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score,
                                 roc_auc_score)
    bad = (y == -1).astype(int)
    tuned = {"bin_acc": accuracy_score(bad, pred_bad),
             "bin_bacc": balanced_accuracy_score(bad, pred_bad),
             "bin_auc": roc_auc_score(bad, proba[:, 0]), "acc3": accuracy_score(y, pred),
             "f1_3": f1_score(y, pred, average="macro"),
             "bacc3": balanced_accuracy_score(y, pred)}
    out["tuned"] = (tuned, tune_thresholds(y, proba))
    return out


def select_and_fit(seed: int, verbose: bool = False,
                   grid: Iterable[Candidate] | None = None, rules: Iterable[str] = RULES,
                   n_jobs: int = 1) -> tuple[IqmModel, list[dict[str, Any]]]:
    """Model selection by LOSO CV on ABIDE, then the chosen model refitted on all of ABIDE.
    ``grid``/``rules`` restrict the search (default: :func:`candidates` x :data:`RULES`)."""
    rules = tuple(rules)
    abide = read_rated_table(mriqc_learn_datasets() / "abide.tsv")
    features = model_features(abide.names)
    X = columns(abide, features)
    y = abide_labels(abide, seed)
    grid = list(candidates() if grid is None else grid)
    if n_jobs > 1 and len(grid) > 1:  # candidates in parallel processes; same results
        from joblib import Parallel, delayed
        probas = Parallel(n_jobs=n_jobs)(delayed(loso_predictions)(X, y, abide.sites, cand)
                                         for cand in grid)
    else:
        probas = [loso_predictions(X, y, abide.sites, cand) for cand in grid]
    table = []
    for cand, proba in zip(grid, probas):
        for rule, (s, th) in loso_rules(y, abide.sites, proba).items():
            if rule not in rules:
                continue
            row = {"candidate": cand, "rule": rule, "thresholds": th, **s,
                   "selection": selection_score(s)}
            table.append(row)
            if verbose:
                print(f"  LOSO {cand.name:32s} {rule:6s} "
                      + " ".join(f"{k} {s[k]:.3f}" for k in
                                 ("bin_auc", "bin_bacc", "f1_3", "bacc3", "acc3"))
                      + f"  -> {row['selection']:.3f}"
                      + (f"  (thresholds {th[0]:.2f}/{th[1]:.2f})" if th else ""), flush=True)
    best = max(table, key=lambda r: r["selection"])  # first maximum: the simpler one
    cand = best["candidate"]
    reference = reference_stats(X)
    coef, intercept = fit(design(X, abide.sites, cand.blocks, reference), y, cand.kind, cand.C)
    counts = {lab: int((y == c).sum()) for lab, c in zip(("Bad", "Medium", "Good"), CODES)}
    card = {"training_data": "mriqc-learn abide.tsv (ABIDE I, 17 sites, T1w)",
            "n_train": int(len(y)), "class_counts": counts, "label_seed": seed,
            "selection": "leave-one-site-out CV on ABIDE, criterion: mean of Bad-vs-rest "
                         "ROC-AUC and 3-class macro-F1",
            "n_candidates": len(table),
            "chosen": {"blocks": list(cand.blocks), "kind": cand.kind, "C": cand.C,
                       "rule": best["rule"], "thresholds": best["thresholds"]},
            "loso_cv": {k: round(float(best[k]), 4) for k in
                        ("bin_acc", "bin_bacc", "bin_auc", "acc3", "f1_3", "bacc3",
                         "selection")}}
    model = make_model(features, cand, coef, intercept,
                       reference if "global" in cand.blocks else None,
                       tuple(best["thresholds"]) if best["thresholds"] else None, card)
    return model, table


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
