"""Robust cohort reference statistics: centre under a degraded minority, JSON round trip."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mmrqa_bids.cohorts.reference import (FORMAT, CohortReference, build_reference,
                                          robust_centre_spread)


def _contaminated(n: int, share: float, shift: float, seed: int = 0) -> np.ndarray:
    """n values: (1 - share) clean N(10, 1), the rest degraded, all pushed one way."""
    rng = np.random.default_rng(seed)
    n_bad = int(round(share * n))
    clean = rng.normal(10.0, 1.0, n - n_bad)
    bad = rng.normal(10.0 + shift, 2.0, n_bad)
    return np.concatenate([clean, bad])


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25, 0.4])
@pytest.mark.parametrize("n", [20, 100])
def test_centre_survives_a_degraded_minority_the_mean_does_not(share, n):
    errs_robust, errs_mean, spreads = [], [], []
    for seed in range(20):
        v = _contaminated(n, share, shift=8.0, seed=seed)
        centre, spread = robust_centre_spread(v)
        errs_robust.append(abs(centre - 10.0))
        errs_mean.append(abs(float(v.mean()) - 10.0))
        spreads.append(spread)
    # Within half a clean standard deviation on average, whatever the share up to 40%.
    assert np.mean(errs_robust) < 0.5
    # The spread stays that of the clean runs (1), not of the mixture.
    assert 0.5 < np.median(spreads) < 1.6
    if share >= 0.25:
        # The mean is pulled by share x shift (2 to 3.2 clean SDs): it fails where the
        # robust centre holds.
        assert np.mean(errs_mean) > 1.5
        assert np.mean(errs_robust) < np.mean(errs_mean) / 4


def test_centre_beats_the_plain_median_under_one_sided_degradation():
    med, rob = [], []
    for seed in range(30):
        v = _contaminated(60, 0.4, shift=8.0, seed=seed)
        med.append(abs(float(np.median(v)) - 10.0))
        rob.append(abs(robust_centre_spread(v)[0] - 10.0))
    assert np.mean(rob) < np.mean(med)


def test_spread_is_floored_for_identical_values():
    centre, spread = robust_centre_spread([2.0] * 10)
    assert centre == 2.0
    assert spread == pytest.approx(0.02)  # 1% of |centre|


def test_non_finite_values_are_ignored_and_too_few_is_an_error():
    centre, _ = robust_centre_spread([1.0, np.nan, 1.1, np.inf, 0.9, 1.0])
    assert centre == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2 finite"):
        robust_centre_spread([1.0, np.nan])


def _rows(n: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [{"snr_total": float(rng.normal(10, 1)), "efc": float(rng.normal(0.5, 0.02)),
             "cjv": float("nan") if i % 2 else float(rng.normal(0.4, 0.03)),
             "rare": float("nan") if i else 1.0} for i in range(n)]


def test_build_reference_keeps_metrics_finite_in_most_runs():
    rows = _rows()
    ref = build_reference(rows, cohort_id="T1w-abc", protocol={"suffix": "T1w"},
                          members=[f"sub-{i:02d}_T1w" for i in range(12)])
    assert ref.n == 12
    assert set(ref.metrics) == {"snr_total", "efc", "cjv"}  # "rare": 1 finite value of 12
    c, s = ref.stats(["snr_total", "missing"])
    assert abs(c[0] - 10) < 1.0 and s[0] > 0 and math.isnan(c[1])


def test_json_round_trip_is_exact_and_json_safe():
    rows = _rows()
    ref = build_reference(rows, cohort_id="T1w-abc", protocol={"suffix": "T1w", "tr": 2.3},
                          members=[f"sub-{i:02d}_T1w" for i in range(12)])
    text = json.dumps(ref.to_dict(), allow_nan=False)  # raises on NaN
    doc = json.loads(text)
    assert doc["format"] == FORMAT and doc["version"] == 1
    back = CohortReference.from_dict(doc)
    assert back == ref


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="mmrqa-metric-classifier/1"), "not a cohort reference"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.pop("members"), "missing or has a malformed field"),
    (lambda d: d["metrics"]["efc"].update(spread=0.0), "non-positive spread for efc"),
])
def test_from_dict_rejects_other_files_with_a_clear_error(mutate, message):
    ref = build_reference(_rows(), cohort_id="c", protocol={}, members=[str(i) for i in range(12)])
    doc = json.loads(json.dumps(ref.to_dict()))
    mutate(doc)
    with pytest.raises(ValueError, match=message):
        CohortReference.from_dict(doc)


def test_from_dict_rejects_a_non_mapping():
    with pytest.raises(ValueError, match="not a cohort reference"):
        CohortReference.from_dict([1, 2])  # type: ignore[arg-type]


def test_build_reference_errors():
    with pytest.raises(ValueError, match="2 metric rows for 3 members"):
        build_reference(_rows(2), cohort_id="c", protocol={}, members=["a", "b", "c"])
    with pytest.raises(ValueError, match="at least 2 runs"):
        build_reference(_rows(1), cohort_id="c", protocol={}, members=["a"])
    with pytest.raises(ValueError, match="no metric is finite"):
        build_reference([{"x": float("nan")}] * 3, cohort_id="c", protocol={},
                        members=["a", "b", "c"])


def test_column_stats_equal_the_one_metric_estimator():
    from mmrqa_bids.cohorts.reference import column_stats

    rng = np.random.default_rng(3)
    for n in (2, 3, 8, 21, 64):
        x = np.column_stack([_contaminated(n, 0.3, 6.0, seed=n), rng.normal(size=n),
                             np.round(rng.normal(size=n)),  # ties
                             np.full(n, 4.0),  # constant
                             np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n))])
        centre, spread = column_stats(x)
        for j in range(x.shape[1]):
            col = x[:, j]
            if np.isfinite(col).sum() < 2:
                assert np.isnan(centre[j])
                continue
            c, s = robust_centre_spread(col)
            assert centre[j] == pytest.approx(c, abs=1e-12)
            assert spread[j] == pytest.approx(s, abs=1e-12)


def _loop_leave_one_out(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference implementation: column_stats of x without row i, one row at a time."""
    from mmrqa_bids.cohorts.reference import column_stats

    centre, spread = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
    for i in range(x.shape[0]):
        centre[i], spread[i] = column_stats(np.delete(x, i, axis=0))
    return centre, spread


@pytest.mark.parametrize("seed", range(6))
def test_leave_one_out_column_stats_equal_the_loop(seed):
    """The vectorised leave-one-out equals column_stats on every leave-one-out sample, on
    random cohorts with missing values, ties, constant columns and a degraded minority."""
    from mmrqa_bids.cohorts.reference import leave_one_out_column_stats

    rng = np.random.default_rng(seed)
    for n in (2, 3, 8, 9, 20, 64):
        x = np.column_stack([
            _contaminated(n, 0.4, 6.0, seed=seed + n),  # a degraded minority
            rng.normal(size=n),
            np.round(rng.normal(size=n)),  # many ties
            np.full(n, 4.0),  # constant: the spread floor
            np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n)),  # missing values
            np.where(np.arange(n) < n - 2, np.nan, 1.0),  # finite in 2 rows only
            np.full(n, np.nan)])
        expected = _loop_leave_one_out(x)
        got = leave_one_out_column_stats(x)
        for e, g in zip(expected, got):
            assert g.shape == x.shape
            assert np.array_equal(np.isnan(e), np.isnan(g))
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-12, equal_nan=True)


def test_leave_one_out_column_stats_of_one_row_is_missing():
    from mmrqa_bids.cohorts.reference import leave_one_out_column_stats

    centre, spread = leave_one_out_column_stats(np.ones((1, 3)))
    assert centre.shape == spread.shape == (1, 3)
    assert np.isnan(centre).all() and np.isnan(spread).all()
