"""Training and model selection of the IQM model (used by ``scripts/train_mriqc_model.py`` and
``benchmarks/mriqc_ratings.py``; never imported at grading time).

Data: the MRIQC IQMs and expert ratings that PyPI's ``mriqc-learn`` ships
(``mriqc_learn/datasets/abide.tsv``: 1,101 ABIDE T1w images, 17 sites, ratings in
``rater_1``/``rater_2``; ``ds030.tsv``: 265 images, 2 sites, ``rater_1``), read in place from
the installed package. Ratings -1/0/1 = exclude/doubtful/accept = Bad/Medium/Good.

Protocol: fit on ABIDE only; select the model family and its regularisation by
leave-one-site-out cross-validation within ABIDE; DS030 is the held-out test, scored once.
Metrics are computed with ``sklearn.metrics`` (``mmrqa_bids.evaluation`` was not available on
this branch when this was written).
"""
from __future__ import annotations

import csv
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrqa_bids.mriqc.model import IqmModel, site_robust_scale

CLIP = 10.0
GRID = tuple((kind, c) for kind in ("ordinal", "multinomial")
             for c in (0.001, 0.003, 0.01, 0.03, 0.1))
CODES = np.array([-1, 0, 1])  # Bad, Medium, Good (column order of the probabilities)


@dataclass(frozen=True)
class RatedTable:
    names: tuple[str, ...]  # IQM names, as columns of X
    X: np.ndarray
    sites: np.ndarray
    ratings: dict[str, np.ndarray]  # rater column -> codes, NaN where not rated


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


def scaled(table: RatedTable, features: list[str]) -> np.ndarray:
    idx = [table.names.index(f) for f in features]
    return site_robust_scale(table.X[:, idx], table.sites, CLIP)


def fit(Z: np.ndarray, y: np.ndarray, kind: str, C: float, seed: int = 0):
    """(coef, intercept) of the ordinal pair or the multinomial model, balanced classes."""
    from sklearn.linear_model import LogisticRegression

    Z = np.nan_to_num(Z, nan=0.0)

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


def make_model(features, coef, intercept, kind, card=None) -> IqmModel:
    return IqmModel(model_id=f"mriqc-iqm-{kind}-abide-v1", kind=kind, suffix="T1w",
                    features=tuple(features), coef=coef, intercept=intercept, clip=CLIP,
                    card=card or {})


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Binary Bad-vs-rest (p_bad >= 0.5; equal priors) and 3-class (argmax) metrics."""
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score,
                                 roc_auc_score)
    bad = (y == -1).astype(int)
    pred_bad = (proba[:, 0] >= 0.5).astype(int)
    pred = CODES[proba.argmax(axis=1)]
    return {
        "bin_acc": accuracy_score(bad, pred_bad),
        "bin_bacc": balanced_accuracy_score(bad, pred_bad),
        "bin_auc": roc_auc_score(bad, proba[:, 0]),
        "acc3": accuracy_score(y, pred),
        "f1_3": f1_score(y, pred, average="macro"),
        "bacc3": balanced_accuracy_score(y, pred),
    }


def selection_score(s: dict[str, float]) -> float:
    """Mean of binary AUC, binary balanced accuracy, 3-class macro-F1 and balanced accuracy."""
    return float(np.mean([s["bin_auc"], s["bin_bacc"], s["f1_3"], s["bacc3"]]))


def loso_predictions(Z: np.ndarray, y: np.ndarray, sites: np.ndarray, kind: str,
                     C: float) -> np.ndarray:
    """Leave-one-site-out predicted probabilities (each site predicted by a model fitted on
    the other sites; the scaling is per site and label-free, so no fold leaks)."""
    proba = np.zeros((len(y), 3))
    for site in np.unique(sites):
        test = sites == site
        coef, intercept = fit(Z[~test], y[~test], kind, C)
        model = make_model(range(Z.shape[1]), coef, intercept, kind)
        proba[test] = model.proba_from_scaled(Z[test])
    return proba


def select_and_fit(seed: int, verbose: bool = False) -> tuple[IqmModel, list[dict[str, Any]]]:
    """Model selection by LOSO CV on ABIDE, then the chosen model refitted on all of ABIDE."""
    abide = read_rated_table(mriqc_learn_datasets() / "abide.tsv")
    features = model_features(abide.names)
    Z = scaled(abide, features)
    y = abide_labels(abide, seed)
    table = []
    for kind, C in GRID:
        s = scores(y, loso_predictions(Z, y, abide.sites, kind, C))
        table.append({"kind": kind, "C": C, **s, "selection": selection_score(s)})
        if verbose:
            print(f"  LOSO {kind:11s} C={C:<6g} " + " ".join(f"{k} {v:.3f}" for k, v in s.items())
                  + f"  -> {table[-1]['selection']:.3f}", flush=True)
    best = max(table, key=lambda r: r["selection"])
    coef, intercept = fit(Z, y, best["kind"], best["C"])
    counts = {lab: int((y == c).sum()) for lab, c in zip(("Bad", "Medium", "Good"), CODES)}
    card = {"training_data": "mriqc-learn abide.tsv (ABIDE I, 17 sites, T1w)",
            "n_train": int(len(y)), "class_counts": counts, "label_seed": seed,
            "selection": "leave-one-site-out CV on ABIDE, criterion: mean of binary AUC, "
                         "binary balanced accuracy, 3-class macro-F1 and balanced accuracy",
            "chosen": {"kind": best["kind"], "C": best["C"]},
            "loso_cv": {k: round(float(v), 4) for k, v in best.items()
                        if k not in ("kind", "C")}}
    return make_model(features, coef, intercept, best["kind"], card), table


def evaluate_ds030(model: IqmModel) -> dict[str, float]:
    """The held-out test: DS030 (2 sites unseen in training), ratings of rater_1."""
    ds030 = read_rated_table(mriqc_learn_datasets() / "ds030.tsv")
    y = ds030.ratings["rater_1"].astype(int)
    X = ds030.X[:, [ds030.names.index(f) for f in model.features]]
    return scores(y, model.predict_proba(X, ds030.sites))
