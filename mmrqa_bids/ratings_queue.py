"""Which runs to rate next: the unrated runs whose rating teaches a model fitted on the
ratings the most (issue #23, "rate next"; shown by the group report, used by
``benchmarks/rated_learning_curve.py``).

Two reasons to rate a run, each scaled to [0, 1] over the candidates and added:

* **uncertain grade**: u = 1 - (p_(1) - p_(2)), one minus the margin between the two most
  probable grades (a run without probabilities: u = 1). A rating there moves the model's
  boundary.
* **unlike anything rated**: d = the root-mean-square difference of the run's
  dataset-relative position (the robust z of each metric against the other runs: the group
  report's :func:`mmrqa_bids.reports.stats.dataset_context`; the benchmark's, the cohort z
  the dataset grade reads) to the nearest rated run, over the metrics finite in both; with
  nothing rated, to the centre (z = 0). A rating there covers a part of the feature space no
  rating covers.

    priority = u / max(u) + d / max(d)

A batch (:data:`QUEUE_SIZE` runs) is picked greedily: after each pick, that run counts as
rated for the distances, so a batch spreads over the feature space instead of twenty
near-copies of the most unusual run. The group report's JavaScript (``templates/report/
group.js``, ``rateNext``) computes the same ranking live as ratings come in; the browser test
checks that both agree. Pure functions of numpy arrays: no I/O, nothing fitted.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

#: Runs listed at a time.
QUEUE_SIZE = 20
#: Distance when two runs share no finite metric: the largest a clipped z difference can be.
NO_SHARED_DISTANCE = 20.0


def margin_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """1 - (largest - second largest probability) per row of an (n, classes) array; 1 for a
    row with a missing (non-finite) probability."""
    p = np.atleast_2d(np.asarray(probabilities, dtype=float))
    out = np.ones(p.shape[0])
    ok = np.isfinite(p).all(axis=1)
    if ok.any() and p.shape[1] >= 2:
        top = -np.sort(-p[ok], axis=1)
        out[ok] = 1.0 - (top[:, 0] - top[:, 1])
    return np.clip(out, 0.0, 1.0)


def rms_distance(z: np.ndarray, point: np.ndarray) -> np.ndarray:
    """sqrt(mean_j (z_ij - point_j)^2) over the metrics j finite in both, per row of the
    (n, m) ``z``; :data:`NO_SHARED_DISTANCE` where none is."""
    diff = np.atleast_2d(np.asarray(z, float)) - np.asarray(point, float)[None, :]
    finite = np.isfinite(diff)
    n = finite.sum(axis=1)
    # summed left to right, as the report's JavaScript does (numpy's pairwise sum can differ
    # in the last bit and so break a tie the other way)
    squares = np.where(finite, diff * diff, 0.0)
    sq = np.cumsum(squares, axis=1)[:, -1] if squares.shape[1] else np.zeros(len(squares))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.sqrt(sq / np.maximum(n, 1)), NO_SHARED_DISTANCE)


def nearest_distance(z: np.ndarray, rated: np.ndarray) -> np.ndarray:
    """Each run's :func:`rms_distance` to the nearest rated run, or to the cohort centre
    (z = 0) when none is rated."""
    z = np.atleast_2d(np.asarray(z, float))
    rated = np.asarray(rated, bool)
    if not rated.any():
        return rms_distance(z, np.zeros(z.shape[1]))
    return np.min([rms_distance(z, z[j]) for j in np.flatnonzero(rated)], axis=0)


def _scaled(v: np.ndarray) -> np.ndarray:
    top = float(v.max()) if v.size else 0.0
    return v / top if top > 0 else np.zeros_like(v)


def rate_next(probabilities: np.ndarray, z: np.ndarray, rated: Sequence[bool],
              k: int = QUEUE_SIZE) -> list[int]:
    """Indices of the next ``k`` runs to rate, best first (module docstring: priority
    u / max u + d / max d over the remaining candidates, picked greedily, each pick counted
    as rated for the next); ties go to the lower index. Fewer when fewer are unrated."""
    u = margin_uncertainty(probabilities)
    z = np.atleast_2d(np.asarray(z, float))
    if z.shape[0] != u.shape[0]:
        raise ValueError(f"{u.shape[0]} rows of probabilities but {z.shape[0]} of positions")
    seen = np.asarray(rated, bool).copy()
    dist = nearest_distance(z, seen)
    picked: list[int] = []
    while len(picked) < k and not seen.all():
        cand = np.flatnonzero(~seen)
        score = _scaled(u[cand]) + _scaled(dist[cand])
        best = int(cand[int(np.argmax(score))])  # argmax: the first of equal scores
        picked.append(best)
        if not seen.any():  # the first rated run replaces the cohort centre
            dist = rms_distance(z, z[best])
        else:
            dist = np.minimum(dist, rms_distance(z, z[best]))
        seen[best] = True
    return picked
