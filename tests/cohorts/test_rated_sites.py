"""Real rated cohorts (ABIDE's sites) as training cohorts: labels, site tables, the site
leave-out, the weight rule, and the weighted fit."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mmrqa_bids.cohorts import rated_sites as rs
from mmrqa_bids.cohorts.reference import metric_columns
from mmrqa_bids.cohorts.relative import CohortModel, cohort_z, relative_change

NAN = np.nan
NAMES = ("snr_total", "efc", "cjv", "site_only_iqm")
FEATURES = ("snr_total", "efc", "cjv", "fov_edge")  # fov_edge: not an MRIQC IQM


def _rated(seed: int = 0, sizes=(("A", 12), ("B", 10), ("C", 9))):
    """A tiny IQM table of three sites, rater_1 rating every other image."""
    rng = np.random.default_rng(seed)
    X, sites = [], []
    for k, (site, n) in enumerate(sizes):
        base = np.array([10.0 + k, 0.5 + 0.1 * k, 0.4, 1.0])
        X.append(base * (1 + 0.05 * rng.standard_normal((n, len(NAMES)))))
        sites += [site] * n
    X = np.vstack(X)
    r1 = np.full(len(X), NAN)
    r1[::2] = rng.choice([-1.0, 0.0, 1.0], size=r1[::2].size)
    return X, np.array(sites), {"rater_1": r1}


def test_rater_1_labels_excluded_bad_doubtful_and_accepted_good():
    r = {"rater_1": np.array([-1.0, 0.0, 1.0, NAN])}
    assert rs.rating_labels(r, "rater_1").tolist() == ["Bad", "Good", "Good", None]


def test_consensus_labels_bad_from_half_of_the_available_raters():
    r = {"rater_1": np.array([-1.0, -1.0, NAN, NAN, 1.0]),
         "rater_2": np.array([1.0, 1.0, NAN, -1.0, 0.0]),
         "rater_3": np.array([NAN, 1.0, NAN, 1.0, -1.0])}
    assert rs.rating_labels(r, "consensus").tolist() == ["Bad", "Good", None, "Bad", "Good"]
    with pytest.raises(ValueError):
        rs.rating_labels(r, "rater_9")


def test_site_table_z_against_the_whole_site_labelled_or_not():
    X, sites, ratings = _rated()
    labels = rs.rating_labels(ratings)
    t = rs.site_table(X, NAMES, sites, labels, FEATURES)
    assert len(t["label"]) == int(np.sum(labels != None))  # noqa: E711 (object array)
    assert set(t["label"]) <= {"Good", "Bad"}
    assert t["real"].all() and not t["clean"].any()
    assert np.isnan(t["z"][:, 3]).all()  # a metric MRIQC does not compute is missing
    sel = np.flatnonzero(sites == "B")
    rows = [dict(zip(NAMES, v)) for v in X[sel]]
    z, centre, _ = cohort_z(rows, FEATURES)  # every image of B, rated or not
    rel = relative_change(metric_columns(rows, FEATURES), centre)
    keep = np.array([v is not None for v in labels[sel]])
    mine = t["site"] == "B"
    np.testing.assert_allclose(t["z"][mine], z[keep], equal_nan=True)
    np.testing.assert_allclose(t["rel"][mine], rel[keep], equal_nan=True)
    assert np.all(t["size"][mine] == len(sel))
    assert len(set(t["cohort"][mine])) == 1 and t["cohort"].min() >= rs.SITE_COHORT_OFFSET


def test_leaving_a_site_out_leaves_it_out():
    X, sites, ratings = _rated()
    labels = rs.rating_labels(ratings)
    t = rs.site_table(X, NAMES, sites, labels, FEATURES)
    out = rs.leave_site_out(t, "A")
    assert "A" not in set(out["site"]) and len(out["label"]) == int(np.sum(t["site"] != "A"))
    # The other sites' rows do not depend on site A at all: change A's images entirely.
    X2 = X.copy()
    X2[sites == "A"] *= 7.0
    t2 = rs.site_table(X2, NAMES, sites, labels, FEATURES, exclude_sites=["A"])
    for k in ("z", "rel", "label", "site", "cohort"):
        np.testing.assert_array_equal(t2[k], out[k])


def test_equal_total_weight():
    assert rs.real_weights(6000, 600) == pytest.approx(10.0)
    assert rs.real_weights(6000, 600, "none") == 1.0
    with pytest.raises(ValueError):
        rs.real_weights(1, 1, "half")
    sim = _sim_table(40)
    X, sites, ratings = _rated()
    real = rs.site_table(X, NAMES, sites, rs.rating_labels(ratings), FEATURES)
    both = rs.combine(sim, real)
    w, is_real = both["weight"], both["real"]
    assert w[is_real].sum() == pytest.approx(w[~is_real].sum())
    assert np.all(w[~is_real] == 1.0)
    assert both["z"].shape == (len(sim["label"]) + len(real["label"]), len(FEATURES))
    assert list(both["label"][:len(sim["label"])]) == list(sim["label"])


def test_combine_with_no_real_rows_is_the_simulated_table():
    sim = _sim_table(3)
    X, sites, ratings = _rated()
    real = rs.site_table(X, NAMES, sites, rs.rating_labels(ratings), FEATURES,
                         exclude_sites=sorted(set(sites)))
    assert len(real["label"]) == 0
    both = rs.combine(sim, real)
    np.testing.assert_array_equal(both["z"], sim["z"])
    assert not both["real"].any() and np.all(both["weight"] == 1.0)


def _sim_table(n_cohorts: int, seed: int = 0, rows: int = 30) -> dict[str, np.ndarray]:
    """A simulated-like table: clean rows near z 0 (Good), degraded ones with metric 0 off
    by 3-6 (Medium) or 8-10 (Bad) robust SD."""
    rng = np.random.default_rng(seed)
    n = n_cohorts * rows
    z = rng.normal(0, 1, (n, len(FEATURES)))
    label = rng.choice(["Good", "Medium", "Bad"], n, p=[0.6, 0.25, 0.15])
    z[label == "Medium", 0] = rng.uniform(3, 6, np.sum(label == "Medium"))
    z[label == "Bad", 0] = rng.uniform(8, 10, np.sum(label == "Bad"))
    rel = 0.05 * z
    return {"z": z, "rel": rel, "label": label, "clean": label == "Good",
            "source": np.array(["sim"] * n), "cohort": np.repeat(np.arange(n_cohorts), rows),
            "size": np.full(n, rows), "prevalence": np.full(n, 0.4),
            "artifact": np.where(label == "Good", "none", "blur"),
            "naive": np.nanmean(np.abs(z), axis=1)}


FAST = {"max_iter": 30}


def test_weighted_fit_learns_from_heavier_real_rows_and_keeps_the_simulated_support():
    from mmrqa_bids.cohorts.train import fit_cohort_model, support_bounds

    sim = _sim_table(30)
    # Real rated rows: metric 0 at 2-3 robust SD is an excluded (Bad) image; the simulated
    # rows say Good there. Their own mean |z| is far beyond the simulated support.
    rng = np.random.default_rng(1)
    n = 200
    z = rng.normal(0, 0.3, (n, len(FEATURES)))
    bad = np.arange(n) < n // 2
    z[bad, 0] = rng.uniform(2, 3, bad.sum())
    real = {"z": z, "rel": 0.05 * z, "label": np.where(bad, "Bad", "Good"),
            "site": np.repeat(["A", "B"], n // 2), "cohort": np.repeat([10 ** 6, 10 ** 6 + 1],
                                                                     n // 2),
            "size": np.full(n, n // 2), "prevalence": np.full(n, 0.5),
            "source": np.repeat(["abide:A", "abide:B"], n // 2),
            "artifact": np.full(n, "rated"), "clean": np.zeros(n, bool),
            "real": np.ones(n, bool), "naive": np.full(n, 50.0)}
    probe = np.zeros((1, len(FEATURES)))
    probe[0, 0] = 2.5

    def p_at_least_medium(doc):
        m = CohortModel.from_dict(doc)
        return 1.0 - m.predict_proba(probe, 0.05 * probe)[0, 0]

    plain = fit_cohort_model("anat", sim, params=FAST, features=FEATURES)
    light = fit_cohort_model("anat", rs.combine(sim, real, "none"), params=FAST,
                             features=FEATURES)
    heavy = fit_cohort_model("anat", rs.combine(sim, real), params=FAST, features=FEATURES)
    assert "n_real_rows" not in plain["training"]  # the simulated-only recipe is unchanged
    assert heavy["training"]["n_real_rows"] == n
    assert p_at_least_medium(heavy) > p_at_least_medium(light) > p_at_least_medium(plain)
    # Support bounds and naive cuts come from the simulated rows only.
    bounds = support_bounds(sim["naive"], sim["label"])
    assert (heavy["support"]["good_max"], heavy["support"]["medium_max"]) == bounds
    assert heavy["naive_cuts"] == plain["naive_cuts"]
    assert heavy["features"] == list(FEATURES)


def test_a_table_over_other_features_than_declared_is_refused():
    from mmrqa_bids.cohorts.train import fit_cohort_model

    with pytest.raises(ValueError):
        fit_cohort_model("anat", _sim_table(5), params=FAST, features=FEATURES[:2])


@pytest.mark.skipif(importlib.util.find_spec("mriqc_learn") is None,
                    reason="mriqc-learn (ABIDE's IQM table) is not installed")
def test_abide_rater_1_rows():
    t = rs.abide_site_table(("snr_total", "efc", "fov_edge"))
    assert len(t["label"]) == 600 and int(np.sum(t["label"] == "Bad")) == 173
    assert len(set(t["site"])) == 17
    assert np.isnan(t["z"][:, 2]).all()
    out = rs.abide_site_table(("snr_total",), exclude_sites=["NYU"])
    assert "NYU" not in set(out["site"]) and len(out["label"]) == 600 - 108


def test_read_pools_reads_frozen_records_in_plan_order_without_measuring(tmp_path):
    import json

    from mmrqa_bids.cohorts.simulate import plan_pool
    from mmrqa_bids.cohorts.train import read_pools

    runs = plan_pool("tpm-T1w")
    for i, run in enumerate(runs):
        (tmp_path / f"{run.key()}.json").write_text(json.dumps(
            {"source": run.source, "artifact": run.artifact, "severity": run.severity,
             "replicate": run.replicate, "metrics": {"efc": float(i), "cjv": None},
             "label": "Good", "metrics_code": "frozen"}))
    pools = read_pools(["tpm-T1w"], tmp_path)
    recs = pools["tpm-T1w"]
    assert [r["metrics"]["efc"] for r in recs] == [float(i) for i in range(len(runs))]
    assert all(np.isnan(r["metrics"]["cjv"]) for r in recs)
    (tmp_path / f"{runs[5].key()}.json").unlink()
    with pytest.raises(FileNotFoundError):
        read_pools(["tpm-T1w"], tmp_path)
