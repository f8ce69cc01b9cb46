import json

import numpy as np
import pytest
from mriqc_testdata import NEW_JSON, OLD_JSON, site_model

from mmrqa_bids.mriqc.grade import grade_records
from mmrqa_bids.mriqc.iqms import IqmRecord, read_iqm_json
from mmrqa_bids.mriqc.model import (IqmModel, ModelInputError, decide, em_priors,
                                    probabilities, reference_scale, reference_stats, signed_log,
                                    site_rank_scale, site_robust_scale)
from mmrqa_bids.mriqc.iqms import MriqcError
from mmrqa_bids.resources import data_dir


def site_records(template, n=15, seed=1):
    base = read_iqm_json(template)
    rng = np.random.default_rng(seed)
    return [IqmRecord(bids_name=f"sub-{i:02d}_T1w", source="test",
                      iqms={k: v * float(1 + 0.2 * rng.uniform(-1, 1)) for k, v in base.iqms.items()},
                      renamed=base.renamed)
            for i in range(n)]


def test_shipped_model_is_small_and_complete():
    path = data_dir() / "mriqc_t1w_model.json"
    assert path.stat().st_size < 1_000_000
    model = IqmModel.load()
    assert model.suffix == "T1w" and model.kind in ("ordinal", "multinomial")
    assert len(model.features) == model.coef.shape[1] > 20
    assert not any(f.startswith(("size_", "spacing_")) for f in model.features)
    assert {"loso_cv", "chosen"} <= model.card.keys()
    assert (data_dir() / "mriqc_t1w_model_card.md").is_file()


def test_site_robust_scale_formula():
    X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, np.nan], [4.0, 5.0], [5.0, 5.0]])
    Z = site_robust_scale(X, ["a"] * 5, clip=10)
    # median 3, IQR 4 - 2 = 2; a constant column has IQR 0 -> divided by 1; NaN stays NaN.
    assert Z[:, 0] == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert Z[[0, 1, 3, 4], 1] == pytest.approx([0, 0, 0, 0]) and np.isnan(Z[2, 1])
    # Two sites are scaled independently; clipping applies.
    x = np.array([[0.0], [1.0], [2.0], [3.0], [1000.0], [1000.0], [1001.0], [1002.0]])
    Z2 = site_robust_scale(x, ["a"] * 5 + ["b"] * 3, clip=3)
    assert Z2[:5, 0] == pytest.approx([-1.0, -0.5, 0.0, 0.5, 3.0])  # 499 clipped to 3
    assert Z2[5:, 0] == pytest.approx([-1.0, 0.0, 1.0])


def test_probabilities_are_valid_and_ordinal_is_monotone():
    s = np.array([[-3.0, -5.0], [0.0, -1.0], [3.0, 2.0], [1.0, 4.0]])  # last: s1 > s0
    p = probabilities(s, "ordinal")
    assert np.allclose(p.sum(axis=1), 1) and (p >= 0).all()
    assert p[0].argmax() == 0 and p[2].argmax() == 2
    assert p[3, 1] == pytest.approx(0.0)  # P(>Medium) capped by P(>Bad)
    m = probabilities(np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]), "multinomial")
    assert m[0] == pytest.approx([1 / 3] * 3) and m[1].argmax() == 0


def test_grading_is_deterministic_and_order_invariant():
    model = IqmModel.load()
    records = site_records(NEW_JSON)
    a = grade_records(records, model, "T1w", "test")
    b = grade_records(records, model, "T1w", "test")
    assert a.rows == b.rows
    c = grade_records(records[::-1], model, "T1w", "test")
    by_name = {r["bids_name"]: r for r in c.rows}
    for row in a.rows:
        assert by_name[row["bids_name"]]["p_bad"] == pytest.approx(row["p_bad"], abs=1e-12)
    for row in a.rows:
        assert row["p_good"] + row["p_medium"] + row["p_bad"] == pytest.approx(1.0)
        assert row["grade"] in ("Good", "Medium", "Bad")
        assert row["confidence"] == row[f"p_{row['grade'].lower()}"]
        assert row["grade"] == decide(np.array([[row["p_bad"], row["p_medium"], row["p_good"]]]),
                                      model.thresholds)[0]


def test_old_mriqc_version_graded_with_missing_iqms_reported():
    model = IqmModel.load()
    table = grade_records(site_records(OLD_JSON), model, "T1w", "old-mriqc")
    assert "snrd_total" in table.missing_features and "summary_bg_median" in table.missing_features
    assert table.renamed["summary_mean_bg"] == "summary_bg_mean"
    assert all(r["missing_iqms"] == len(table.missing_features) for r in table.rows)


def test_refuses_table_lacking_needed_iqms():
    model = IqmModel.load()
    records = [IqmRecord(bids_name=f"sub-{i:02d}_T1w", source="t",
                         iqms={"cjv": 0.4 + 0.01 * i, "cnr": 3.0, "efc": 0.5})
               for i in range(20)]
    with pytest.raises(ModelInputError, match=r"too few of the IQMs the model needs: \d+ of \d+ "
                                              r"missing.*missing: .*fber"):
        grade_records(records, model, "T1w", "tiny.tsv")


def test_refuses_too_few_runs_for_site_scaling():
    with pytest.raises(ModelInputError, match="needs at least 10 runs"):
        grade_records(site_records(NEW_JSON, n=5), site_model(), "T1w", "t")
    # A model on the global block alone needs no site statistics.
    table = grade_records(site_records(NEW_JSON, n=5), site_model(("global",)), "T1w", "t")
    assert len(table.rows) == 5


def test_global_block_formula_and_model_round_trip(tmp_path):
    x = np.array([[-3.0, 0.0, np.e - 1.0]])
    assert signed_log(x) == pytest.approx(np.array([[-np.log(4.0), 0.0, 1.0]]))
    X = np.array([[0.0, 1.0], [1.0, 1.0], [3.0, 1.0], [7.0, 1.0], [np.nan, 1.0]])
    center, spread = reference_stats(X)
    # slog of column 0: 0, log 2, log 4, log 8 -> median 1.5 log 2, IQR 1.5 log 2
    assert center[0] == pytest.approx(1.5 * np.log(2))
    assert spread[0] == pytest.approx(1.5 * np.log(2))
    assert spread[1] == 1.0  # constant column
    Z = reference_scale(X, center, spread, clip=0.5)
    assert Z[:, 0][:4] == pytest.approx([-0.5, -1 / 3, 1 / 3, 0.5]) and np.isnan(Z[4, 0])
    model = site_model(("site", "global"))
    path = tmp_path / "m.json"
    path.write_text(model.to_json())
    loaded = IqmModel.load(path)
    assert loaded.blocks == ("site", "global") and loaded.thresholds == (0.5, 0.5)
    X = loaded.design([r.iqms for r in site_records(NEW_JSON)])
    assert loaded.predict_proba(X) == pytest.approx(model.predict_proba(X))
    assert loaded.feature_weights().shape == (len(loaded.features),)


def test_cut_rule_decides_between_the_cumulative_probabilities():
    p = np.array([[0.6, 0.1, 0.3], [0.3, 0.3, 0.4], [0.45, 0.1, 0.45], [0.1, 0.6, 0.3]])
    assert decide(p, None) == ["Bad", "Good", "Bad", "Medium"]
    assert decide(p, (0.5, 0.5)) == ["Bad", "Medium", "Medium", "Medium"]
    assert decide(p, (0.4, 0.35)) == ["Bad", "Good", "Bad", "Medium"]


def test_broken_model_file_is_a_clear_error(tmp_path):
    from mmrqa_bids.mriqc.iqms import MriqcError
    doc = json.loads((data_dir() / "mriqc_t1w_model.json").read_text())
    doc["coef"] = doc["coef"][:1]
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(MriqcError, match="model.json: coefficient shapes"):
        IqmModel.load(bad)
    doc = json.loads((data_dir() / "mriqc_t1w_model.json").read_text())
    doc["thresholds"] = [0.5, 1.5]
    bad.write_text(json.dumps(doc))
    with pytest.raises(MriqcError, match="model.json: thresholds must be two probabilities"):
        IqmModel.load(bad)


def test_em_recovers_a_known_prior_shift():
    """Three 1-D Gaussian classes; exact posteriors under equal training priors; a target
    sample drawn with priors (0.6, 0.3, 0.1): EM (Saerens et al. 2002) recovers them, and the
    adapted posteriors are the exact posteriors under the target priors."""
    rng = np.random.default_rng(0)
    means, target = np.array([-2.0, 0.0, 2.0]), np.array([0.6, 0.3, 0.1])
    k = rng.choice(3, size=4000, p=target)
    x = rng.normal(means[k], 1.0)
    lik = np.exp(-0.5 * (x[:, None] - means) ** 2)
    posterior = lik / lik.sum(axis=1, keepdims=True)  # training priors 1/3 each
    adapted, prior = em_priors(posterior, np.full(3, 1 / 3))
    assert prior == pytest.approx(target, abs=0.03)
    exact = lik * prior / (lik * prior).sum(axis=1, keepdims=True)
    assert adapted == pytest.approx(exact, abs=1e-5)
    # No shift: the priors stay where they were, the posteriors unchanged.
    k = rng.choice(3, size=6000)
    lik = np.exp(-0.5 * (rng.normal(means[k], 1.0)[:, None] - means) ** 2)
    posterior = lik / lik.sum(axis=1, keepdims=True)
    adapted, prior = em_priors(posterior, np.full(3, 1 / 3))
    assert prior == pytest.approx([1 / 3] * 3, abs=0.03)
    assert adapted == pytest.approx(posterior, abs=0.05)


def test_site_rank_scale_formula_and_invariance():
    from scipy.stats import norm
    X = np.array([[3.0], [1.0], [2.0], [2.0], [np.nan]])
    Z = site_rank_scale(X, ["a"] * 5)
    # ranks among the 4 values: 4, 1, 2.5, 2.5 -> Phi^-1((r - 0.5) / 4)
    assert Z[:4, 0] == pytest.approx(norm.ppf((np.array([4, 1, 2.5, 2.5]) - 0.5) / 4))
    assert np.isnan(Z[4, 0])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 2))
    sites = np.repeat(["a", "b"], 10)
    y = x.copy()
    y[sites == "b"] = np.exp(3 * x[sites == "b"]) + 100  # a scanner's monotone distortion
    assert site_rank_scale(y, sites) == pytest.approx(site_rank_scale(x, sites))


def test_em_model_round_trip_and_refusal(tmp_path):
    model = site_model(("rank", "global"))
    model = IqmModel(**{**model.__dict__, "prior": "em", "train_prior": (0.3, 0.3, 0.4)})
    path = tmp_path / "em.json"
    path.write_text(model.to_json())
    loaded = IqmModel.load(path)
    assert loaded.prior == "em" and loaded.train_prior == pytest.approx((0.3, 0.3, 0.4))
    records = site_records(NEW_JSON, n=15)
    X = loaded.design([r.iqms for r in records])
    p = loaded.predict_proba(X)
    assert p == pytest.approx(model.predict_proba(X)) and np.allclose(p.sum(axis=1), 1)
    plain = IqmModel(**{**model.__dict__, "prior": "none"})
    assert p == pytest.approx(em_priors(plain.predict_proba(X), np.array([0.3, 0.3, 0.4]))[0])
    table = grade_records(records, loaded, "T1w", "t")  # the table is one site
    assert [r["p_bad"] for r in table.rows] == pytest.approx(p[:, 0])
    # The EM step estimates a site's class mix: it needs enough runs, like per-site scaling.
    glob_em = IqmModel(**{**site_model(("global",)).__dict__, "prior": "em"})
    with pytest.raises(ModelInputError, match="needs at least 10 runs"):
        grade_records(site_records(NEW_JSON, n=5), glob_em, "T1w", "t")
    doc = json.loads(path.read_text())
    doc["prior"] = "bayes"
    path.write_text(json.dumps(doc))
    with pytest.raises(MriqcError, match="em.json: unknown prior step 'bayes'"):
        IqmModel.load(path)


def test_model_file_refuses_a_non_finite_weight():
    import dataclasses

    model = site_model(("site",))
    coef = np.array(model.coef, dtype=float)
    coef.flat[0] = np.nan
    model = dataclasses.replace(model, coef=coef)
    with pytest.raises(ValueError):
        model.to_json()
