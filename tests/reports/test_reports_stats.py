import math

import numpy as np
import pytest

from mmrqa_bids.reports import stats


def test_percentile_rank_mean_definition():
    values = [1.0, 2.0, 3.0, 4.0]
    assert stats.percentile_rank(values, 3.0) == pytest.approx(62.5)  # (2 + 0.5) / 4
    assert stats.percentile_rank(values, 0.0) == 0.0
    assert stats.percentile_rank(values, 9.0) == 100.0
    assert stats.percentile_rank([5.0] * 3, 5.0) == 50.0
    assert math.isnan(stats.percentile_rank(["n/a"], 1.0))


def test_robust_z_matches_iglewicz_hoaglin():
    x = [1.0, 2.0, 3.0, 4.0, 100.0]
    z = stats.robust_z(x)  # median 3, MAD 1
    assert z[4] == pytest.approx(0.6745 * 97)
    assert z[2] == 0.0
    # MAD = 0 falls back to the mean absolute deviation; constant input gives 0.
    z = stats.robust_z([1.0, 1.0, 1.0, 1.0, 5.0])
    assert z[4] == pytest.approx(4 / (1.2533 * 0.8))
    assert np.all(stats.robust_z([2.0, 2.0]) == 0)
    assert np.isnan(stats.robust_z([1.0, "n/a", 3.0])[1])


def test_outliers_need_robust_z_and_tukey_and_enough_runs():
    base = [10.0, 10.5, 9.8, 10.2, 9.9, 10.1]
    assert stats.outlier_flags(base + [40.0]).tolist() == [False] * 6 + [True]
    # Two groups (a few clean runs among degraded ones): neither is flagged.
    assert not stats.outlier_flags([69.4, 69.4, 69.4, 16.6, 15.3, 13.5, 9.4]).any()
    assert not stats.outlier_flags([1.0, 1.1, 50.0]).any()  # fewer than 5 runs


def test_dataset_context_per_run_and_metric():
    rows = [{"bids_name": f"r{i}", "snr": float(i), "cnr": "n/a" if i == 0 else 1.0}
            for i in range(6)]
    ctx = stats.dataset_context(rows, stats.metric_names(rows))
    assert stats.metric_names(rows) == ["cnr", "snr"]
    assert ctx["r5"]["snr"]["percentile"] == pytest.approx(100 * 5.5 / 6)
    assert ctx["r5"]["snr"]["median"] == 2.5 and ctx["r5"]["snr"]["n"] == 6
    assert "cnr" not in ctx["r0"] and ctx["r1"]["cnr"]["n"] == 5


def test_percentile_ranks_at_once_equal_one_at_a_time():
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(size=200), 1)  # ties
    at = np.concatenate([values[:50], [-9.0, 9.0, 0.05]])
    expected = [stats.percentile_rank(values, float(v)) for v in at]
    assert stats.percentile_ranks(values, at).tolist() == expected  # exactly, not approx
