"""Model selection helpers of the IQM model, on small synthetic multi-site data (no
mriqc-learn tables needed)."""
import numpy as np
import pytest
from sklearn.metrics import f1_score

from mmrqa_bids.mriqc.model import decide_index
from mmrqa_bids.mriqc.train import (CODES, MIN_SITE_CLASS, THRESHOLD_GRID, Candidate,
                                    adapt_priors, candidates, loso_predictions, loso_rules,
                                    macro_f1, selection_score, site_criterion, site_objective,
                                    tune_site_thresholds)


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
    assert len(grid) == len({c.name for c in grid}) == 2 * 5 * 2 * 2 * 3 + 2 * 3
    assert grid[0] == Candidate(("site",), "ordinal", 0.01, "all", "balanced")
    assert selection_score({"bin_auc": 0.8, "f1_3": 0.4, "bacc3": 0.0}) == pytest.approx(0.6)


def test_site_criterion_ignores_site_class_mix():
    """A score that is constant within each site but tracks the sites' class mix is perfect
    pooled and worthless per site: within-site AUC 0.5."""
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    sites = np.repeat(["a", "b", "c"], 40)
    share_bad = {"a": 0.8, "b": 0.5, "c": 0.1}
    y = np.array([-1 if rng.random() < share_bad[s] else int(rng.integers(0, 2)) for s in sites])
    p_bad = np.array([share_bad[s] for s in sites])
    proba = np.c_[p_bad, (1 - p_bad) / 2, (1 - p_bad) / 2]
    grade = np.where(p_bad >= 0.5, -1, 0)
    assert roc_auc_score(y == -1, p_bad) > 0.75  # pooled: rewarded
    crit = site_criterion(y, sites, proba, grade)
    assert crit["site_auc"] == pytest.approx(0.5) and crit["site_bacc"] == pytest.approx(0.5)
    assert crit["criterion"] == pytest.approx((crit["site_auc"] + crit["site_bacc"]
                                               + crit["site_f1"]) / 3)


def test_site_objective_matches_site_criterion_terms():
    rng = np.random.default_rng(4)
    sites = np.repeat(["a", "b", "c", "d"], [30, 25, 8, 40])
    y = rng.integers(-1, 2, len(sites))
    y[sites == "c"] = np.r_[[-1, -1], [0] * 6]  # 2 Bad: out of the binary means
    proba = rng.dirichlet([1, 1, 1], len(sites))
    th = (0.4, 0.35)
    grade = CODES[decide_index(proba, th)]
    crit = site_criterion(y, sites, proba, grade)
    assert crit["n_binary_sites"] == 3
    names, site_idx = np.unique(sites, return_inverse=True)
    ok = np.array([((y[sites == s] == -1).sum() >= MIN_SITE_CLASS)
                   and ((y[sites == s] != -1).sum() >= MIN_SITE_CLASS) for s in names])
    fast = site_objective(np.searchsorted(CODES, y), decide_index(proba, th), site_idx,
                          len(names), ok)
    assert fast == pytest.approx((crit["site_bacc"] + crit["site_f1"]) / 2)
    t_bad, t_good = tune_site_thresholds(y, sites, proba)
    assert t_bad in THRESHOLD_GRID and t_good in THRESHOLD_GRID


@pytest.mark.parametrize("blocks,scanner", [(("site",), True), (("rank",), True),
                                            (("global",), False), (("site", "global"), True)])
def test_loso_is_deterministic_and_learns_the_signal(blocks, scanner):
    """Per-site scaling removes a scanner's scale; the global block alone needs no such
    effect (with one, it fails: see test_global_block_alone_suffers_from_scanner_effects)."""
    X, y, sites = synthetic_sites(scanner=scanner)
    cand = Candidate(blocks, "ordinal", 1.0)
    a, priors = loso_predictions(X, y, sites, cand)
    assert np.array_equal(a, loso_predictions(X, y, sites, cand)[0])
    assert np.allclose(a.sum(axis=1), 1.0) and np.allclose(priors, 1 / 3)
    rules = loso_rules(y, sites, a)
    assert set(rules) == {"argmax", "median", "tuned"}
    for metrics, thresholds in rules.values():
        assert metrics["bin_auc"] > 0.8  # the first IQM orders the grades at every site
    t_bad, t_good = rules["tuned"][1]
    assert t_bad in THRESHOLD_GRID and t_good in THRESHOLD_GRID


def test_global_block_alone_suffers_from_scanner_effects():
    X, y, sites = synthetic_sites(scanner=True)
    site = loso_rules(y, sites,
                      loso_predictions(X, y, sites, Candidate(("site",), "ordinal", 1.0))[0])
    glob = loso_rules(y, sites,
                      loso_predictions(X, y, sites, Candidate(("global",), "ordinal", 1.0))[0])
    assert glob["argmax"][0]["bin_auc"] < site["argmax"][0]["bin_auc"] - 0.1


def test_loso_forest_and_unweighted_priors():
    X, y, sites = synthetic_sites(seed=2)
    proba, _ = loso_predictions(X, y, sites, Candidate(("rank",), "forest"))
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(proba, loso_predictions(X, y, sites, Candidate(("rank",), "forest"))[0])
    _, priors = loso_predictions(X, y, sites, Candidate(("site",), "multinomial", 1.0,
                                                        weight="none"))
    test = sites == "s0"
    assert priors[test][0] == pytest.approx([(y[~test] == c).mean() for c in CODES])
    adapted = adapt_priors(proba, np.full_like(proba, 1 / 3), sites)
    assert np.allclose(adapted.sum(axis=1), 1.0)
