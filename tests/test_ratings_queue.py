"""The "rate next" ranking (mmrqa_bids.ratings_queue)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmrqa_bids.ratings_queue import (NO_SHARED_DISTANCE, margin_uncertainty, nearest_distance,
                                      rate_next, rms_distance)


def test_margin_uncertainty():
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [np.nan, 0.5, 0.5]])
    assert margin_uncertainty(p).tolist() == pytest.approx([0.0, 0.8, 1.0, 1.0])


def test_rms_distance_over_shared_metrics_only():
    z = np.array([[3.0, 4.0], [np.nan, 2.0], [np.nan, np.nan]])
    d = rms_distance(z, np.array([0.0, 0.0]))
    assert d.tolist() == pytest.approx([math.sqrt(12.5), 2.0, NO_SHARED_DISTANCE])


def test_nearest_distance_to_centre_then_to_rated():
    z = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    assert nearest_distance(z, [False] * 3).tolist() == pytest.approx([0, 1, 5])
    assert nearest_distance(z, [False, False, True]).tolist() == pytest.approx([5, 4, 0])


def test_nothing_rated_the_most_uncertain_and_unusual_first():
    # run 2: far from the centre and uncertain; run 0: typical and certain
    p = np.array([[0.98, 0.01, 0.01], [0.6, 0.3, 0.1], [0.45, 0.4, 0.15], [0.9, 0.05, 0.05]])
    z = np.array([[0.1, 0.0], [1.0, 0.5], [6.0, 4.0], [0.2, 0.3]])
    order = rate_next(p, z, [False] * 4, k=4)
    assert order[0] == 2 and order[-1] == 0 and sorted(order) == [0, 1, 2, 3]


def test_rated_runs_are_never_queued_and_k_caps_the_batch():
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], size=30)
    z = rng.normal(size=(30, 5))
    rated = np.zeros(30, bool)
    rated[[3, 7, 11]] = True
    order = rate_next(p, z, rated, k=20)
    assert len(order) == len(set(order)) == 20 and not set(order) & {3, 7, 11}
    assert rate_next(p, z, np.ones(30, bool)) == []
    assert len(rate_next(p, z, np.arange(30) > 2, k=20)) == 3


def test_a_batch_spreads_instead_of_picking_near_copies():
    # two tight clusters far from the centre, equally (un)certain: after a pick in one
    # cluster, its neighbours are close to a "rated" run, so the next pick is in the other
    a = np.array([8.0, 0.0]) + np.array([[0.0, 0.0], [0.01, 0.0], [0.0, 0.01]])
    b = np.array([0.0, 7.0]) + np.array([[0.0, 0.0], [0.01, 0.0], [0.0, 0.01]])
    z = np.vstack([a, b])
    p = np.tile([0.5, 0.3, 0.2], (6, 1))
    first, second = rate_next(p, z, [False] * 6, k=2)
    assert first in (0, 1, 2) and second in (3, 4, 5)


def test_a_run_like_a_rated_one_waits():
    p = np.tile([0.5, 0.3, 0.2], (3, 1))
    z = np.array([[4.0, 4.0], [4.1, 4.0], [-3.0, -3.0]])
    assert rate_next(p, z, [True, False, False], k=1) == [2]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="rows"):
        rate_next(np.ones((3, 3)) / 3, np.zeros((2, 4)), [False] * 3)


def test_distances_are_summed_left_to_right_as_in_the_report():
    """The report's JavaScript adds the squares left to right; numpy's pairwise sum can
    differ in the last bit, which would break an exact tie the other way."""
    from mmrqa_bids.ratings_queue import rms_distance

    rng = np.random.default_rng(3)
    z = np.round(rng.normal(0, 3, (400, 73)), 1)
    z[rng.random(z.shape) < 0.1] = np.nan
    point = np.round(rng.normal(0, 3, 73), 1)
    expected = []
    for row in z:
        s, n = 0.0, 0
        for a, b in zip(row, point):
            if np.isfinite(a) and np.isfinite(b):
                s += (a - b) * (a - b)
                n += 1
        expected.append(np.sqrt(s / n))
    assert rms_distance(z, point).tolist() == expected
    assert rms_distance(np.zeros((2, 0)), np.zeros(0)).tolist() == [20.0, 20.0]
