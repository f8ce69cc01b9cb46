"""Model selection helpers of the IQM model, on small synthetic multi-site data (no
mriqc-learn tables needed)."""
import numpy as np
import pytest
from sklearn.metrics import f1_score

from mmrqa_bids.mriqc.model import decide_index
from mmrqa_bids.mriqc.train import (CODES, THRESHOLD_GRID, Candidate, candidates,
                                    loso_predictions, loso_rules, macro_f1, selection_score,
                                    tune_thresholds)


def synthetic_sites(n_sites=4, n=30, seed=0, scanner=True):
    """Ratings driven by the first IQM, each site with its own scale (a scanner effect) if
    ``scanner``, plus two noise IQMs."""
    rng = np.random.default_rng(seed)
    X, y, sites = [], [], []
    for s in range(n_sites):
        quality = rng.normal(size=n)
        grade = np.digitize(quality, [-0.5, 0.5]) - 1  # -1, 0, 1
        x = np.c_[np.exp(0.3 * quality) * (1 + s * scanner), rng.normal(size=(n, 2)) + 5]
        X.append(x)
        y.append(grade)
        sites += [f"s{s}"] * n
    return np.vstack(X), np.concatenate(y), np.array(sites)


def test_macro_f1_matches_sklearn():
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro"))


def test_candidate_grid_and_criterion():
    grid = candidates()
    assert len(grid) == len({c.name for c in grid}) == 24
    assert grid[0] == Candidate(("site",), "ordinal", 0.003)
    assert selection_score({"bin_auc": 0.8, "f1_3": 0.4, "bacc3": 0.0}) == pytest.approx(0.6)


@pytest.mark.parametrize("blocks,scanner", [(("site",), True), (("global",), False),
                                            (("site", "global"), True)])
def test_loso_is_deterministic_and_learns_the_signal(blocks, scanner):
    """Per-site scaling removes a scanner's scale; the global block alone needs no such
    effect (with one, it fails: see test_global_block_alone_suffers_from_scanner_effects)."""
    X, y, sites = synthetic_sites(scanner=scanner)
    cand = Candidate(blocks, "ordinal", 1.0)
    a = loso_predictions(X, y, sites, cand)
    assert np.array_equal(a, loso_predictions(X, y, sites, cand))
    assert np.allclose(a.sum(axis=1), 1.0)
    rules = loso_rules(y, sites, a)
    assert set(rules) == {"argmax", "median", "tuned"}
    for metrics, thresholds in rules.values():
        assert metrics["bin_auc"] > 0.8  # the first IQM orders the grades at every site
    t_bad, t_good = rules["tuned"][1]
    assert t_bad in THRESHOLD_GRID and t_good in THRESHOLD_GRID


def test_global_block_alone_suffers_from_scanner_effects():
    X, y, sites = synthetic_sites(scanner=True)
    site = loso_rules(y, sites, loso_predictions(X, y, sites, Candidate(("site",), "ordinal", 1.0)))
    glob = loso_rules(y, sites, loso_predictions(X, y, sites,
                                                 Candidate(("global",), "ordinal", 1.0)))
    assert glob["argmax"][0]["bin_auc"] < site["argmax"][0]["bin_auc"] - 0.1


def test_tuned_thresholds_beat_or_equal_the_median_rule():
    X, y, sites = synthetic_sites(seed=1)
    proba = loso_predictions(X, y, sites, Candidate(("site",), "multinomial", 1.0))
    th = tune_thresholds(y, proba)
    y_idx = np.searchsorted(CODES, y)
    assert (macro_f1(y_idx, decide_index(proba, th))
            >= macro_f1(y_idx, decide_index(proba, (0.5, 0.5))))
