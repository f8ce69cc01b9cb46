"""A cohort's reference statistics: the robust centre and spread of every metric over the runs
of one protocol, stored as JSON so that new runs can later be graded against them.

The centre must survive a cohort in which a large minority of runs is degraded (up to ~40%),
and degradations mostly push a metric one way (noise lowers every SNR, blur raises FWHM), so
the plain median (which then lands in the clean runs' upper tail) and the mean (which follows
the degraded runs) are not enough. Per metric, over the finite values v_1..v_n
(:func:`robust_centre_spread`):

1. the *shorth*: the shortest interval holding h = floor(n/2) + 1 values (Rousseeuw & Leroy
   1987, the LMS location). With fewer than half the runs degraded it lies among the clean
   runs; its width w estimates the spread as w / 1.349 (the width of a normal's central half);
2. one reweighting step: the values within 3 such spreads of the shorth's median are kept,
   and centre = their median, spread = 1.4826 x their median absolute deviation (MAD).

The spread is floored at :data:`SPREAD_FLOOR_REL` x |centre| (and :data:`SPREAD_FLOOR_ABS`),
so that a metric the cohort's runs share to many digits does not turn a rounding difference
into a large z.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

FORMAT = "mmrqa-cohort-reference"
FORMAT_VERSION = 1
#: Smallest spread, relative to |centre| and absolute (see the module docstring).
SPREAD_FLOOR_REL = 0.01
SPREAD_FLOOR_ABS = 1e-9
#: A metric enters the reference when at least this share of the runs (and 2) have it finite.
MIN_FINITE_SHARE = 0.5
_NORMAL_IQR = 1.3489795  # width of the central half of a standard normal
_NORMAL_MAD = 1.4826  # 1 / Phi^-1(3/4)
REWEIGHT_CUT = 3.0


def robust_centre_spread(values: Sequence[float]) -> tuple[float, float]:
    """Robust (centre, spread) of the finite ``values``: the shorth, then one reweighting
    step (module docstring). Raises ValueError with fewer than 2 finite values."""
    v = np.sort(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    n = v.size
    if n < 2:
        raise ValueError(f"robust centre needs at least 2 finite values, got {n}")
    h = n // 2 + 1
    widths = v[h - 1:] - v[: n - h + 1]
    best = np.flatnonzero(widths == widths.min())
    k = int(best[len(best) // 2])  # the middle of tied shortest halves
    centre0 = float(np.median(v[k:k + h]))
    scale0 = float(widths[k]) / _NORMAL_IQR
    if scale0 > 0:
        v = v[np.abs(v - centre0) <= REWEIGHT_CUT * scale0]
    centre = float(np.median(v))
    spread = _NORMAL_MAD * float(np.median(np.abs(v - centre)))
    return centre, floor_spread(centre, spread)


def floor_spread(centre: float, spread: float) -> float:
    """max(spread, SPREAD_FLOOR_REL |centre|, SPREAD_FLOOR_ABS)."""
    return max(float(spread), SPREAD_FLOOR_REL * abs(float(centre)), SPREAD_FLOOR_ABS)


def _finite_float(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def metric_columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> np.ndarray:
    """(n_rows, n_names) float matrix of the rows' values, NaN where missing or not finite."""
    try:  # numbers and None (-> NaN) convert at once; anything else value by value
        x = np.array([[r.get(n) for n in names] for r in rows], dtype=float)
    except (TypeError, ValueError):
        x = np.array([[_finite_float(r.get(n)) for n in names] for r in rows], dtype=float)
    x = x.reshape(len(rows), len(names))
    x[~np.isfinite(x)] = np.nan
    return x


@dataclass(frozen=True)
class CohortReference:
    """The robust centre and spread of every metric over a cohort's runs."""

    cohort_id: str
    protocol: dict[str, Any] = field(hash=False)
    members: tuple[str, ...]
    metrics: tuple[str, ...]
    centre: tuple[float, ...]
    spread: tuple[float, ...]
    n: int

    def __post_init__(self) -> None:
        if not (len(self.metrics) == len(self.centre) == len(self.spread)):
            raise ValueError(f"cohort {self.cohort_id!r}: {len(self.metrics)} metrics, "
                             f"{len(self.centre)} centres, {len(self.spread)} spreads")
        if self.n < 2:
            raise ValueError(f"cohort {self.cohort_id!r}: a reference needs 2 runs, got {self.n}")

    def stats(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(centre, spread) arrays for ``names``; NaN for a metric the reference lacks."""
        index = {m: i for i, m in enumerate(self.metrics)}
        c = np.array([self.centre[index[n]] if n in index else np.nan for n in names], float)
        s = np.array([self.spread[index[n]] if n in index else np.nan for n in names], float)
        return c, s

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe content (no NaN: every stored centre and spread is finite)."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "cohort_id": self.cohort_id,
                "protocol": dict(self.protocol), "members": list(self.members), "n": self.n,
                "metrics": {m: {"centre": c, "spread": s}
                            for m, c, s in zip(self.metrics, self.centre, self.spread)}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CohortReference":
        """Read :meth:`to_dict`'s content back; ValueError naming the problem on anything
        else (another format, a newer version, missing or non-finite fields)."""
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise ValueError(f"not a cohort reference (format {got!r}, expected {FORMAT!r})")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"cohort reference version {d.get('version')!r} is not supported "
                             f"(this mmrqa reads version {FORMAT_VERSION})")
        try:
            stats = d["metrics"]
            names = tuple(str(k) for k in stats)
            centre = tuple(float(stats[k]["centre"]) for k in names)
            spread = tuple(float(stats[k]["spread"]) for k in names)
            ref = cls(cohort_id=str(d["cohort_id"]), protocol=dict(d["protocol"]),
                      members=tuple(str(m) for m in d["members"]), metrics=names,
                      centre=centre, spread=spread, n=int(d["n"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"cohort reference is missing or has a malformed field: {exc!r}"
                             ) from exc
        bad = [m for m, c, s in zip(names, centre, spread)
               if not (math.isfinite(c) and math.isfinite(s) and s > 0)]
        if bad:
            raise ValueError(f"cohort reference {ref.cohort_id!r}: non-finite centre or "
                             f"non-positive spread for {', '.join(bad[:5])}")
        return ref


def reference_metrics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Metrics finite in at least :data:`MIN_FINITE_SHARE` of the rows (and 2), sorted."""
    names = sorted({k for r in rows for k in r})
    x = metric_columns(rows, names)
    finite = np.isfinite(x).sum(axis=0)
    need = max(2, math.ceil(MIN_FINITE_SHARE * len(rows)))
    return [n for n, f in zip(names, finite) if f >= need]


def column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`robust_centre_spread` of every column of ``x`` (NaN where < 2 finite values):
    the columns without a missing value at once (the same arithmetic, vectorised: the
    leave-one-out grades call this once per run), the others one by one."""
    x = np.asarray(x, dtype=float)
    centre = np.full(x.shape[1], np.nan)
    spread = np.full(x.shape[1], np.nan)
    full = np.isfinite(x).all(axis=0) if x.shape[0] >= 2 else np.zeros(x.shape[1], bool)
    if full.any():
        centre[full], spread[full] = _full_column_stats(x[:, full])
    for j in np.flatnonzero(~full):
        col = x[:, j]
        if np.isfinite(col).sum() >= 2:
            centre[j], spread[j] = robust_centre_spread(col)
    return centre, spread


def _full_column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`robust_centre_spread` of each column of an all-finite (n >= 2, m) matrix."""
    v = np.sort(x, axis=0)
    n, m = v.shape
    h = n // 2 + 1
    widths = v[h - 1:] - v[: n - h + 1]  # (n - h + 1, m)
    ties = widths == widths.min(axis=0)
    # the middle of tied shortest halves: the (count // 2)-th tie, 0-based
    k = np.argmax(np.cumsum(ties, axis=0) > (ties.sum(axis=0) // 2)[None, :], axis=0)
    cols = np.arange(m)
    window = np.take_along_axis(v, k[None, :] + np.arange(h)[:, None], axis=0)
    centre0 = np.median(window, axis=0)
    scale0 = widths[k, cols] / _NORMAL_IQR
    keep = (np.abs(v - centre0) <= REWEIGHT_CUT * scale0) | (scale0 <= 0)
    kept = np.where(keep, v, np.nan)
    centre = np.nanmedian(kept, axis=0)
    spread = _NORMAL_MAD * np.nanmedian(np.abs(kept - centre), axis=0)
    spread = np.maximum(np.maximum(spread, SPREAD_FLOOR_REL * np.abs(centre)), SPREAD_FLOOR_ABS)
    return centre, spread


def leave_one_out_column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row i, :func:`column_stats` of ``x`` without row i: two (n, m) arrays, NaN where
    the other rows hold fewer than 2 finite values of a column.

    The same estimator as :func:`robust_centre_spread` on each of the n x m leave-one-out
    samples at once, in place of n calls of :func:`column_stats` (the group level's hot spot
    in cohorts of up to ``relative.LOO_MAX_SIZE`` runs). Memory is n^2 m floats. Each column
    is sorted once with NaN last; sample (i, j) is that order without row i's entry, so it
    stays sorted, and every median below is of a sorted run: the middle value, or the mean
    of the two middle ones as numpy's median takes it."""
    x = np.asarray(x, dtype=float)
    n, m = x.shape
    if n < 2:
        return np.full((n, m), np.nan), np.full((n, m), np.nan)
    order = np.argsort(x, axis=0, kind="stable")  # NaN last
    v = np.take_along_axis(x, order, axis=0)  # (n, m)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n)[:, None], axis=0)  # row i's place in column j
    k = np.arange(n - 1)
    # (n, n - 1, m): column j's sorted values without row i
    idx = k[None, :, None] + (k[None, :, None] >= rank[:, None, :])
    s = np.take_along_axis(np.broadcast_to(v, (n, n, m)), idx, axis=1)
    return _sorted_sample_stats(s)


def _sorted_median(s: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of the first ``count`` values of each sorted run along axis 1 of ``s``."""
    count = np.maximum(count, 1)
    lo = np.take_along_axis(s, ((count - 1) // 2)[:, None, :], axis=1)[:, 0]
    hi = np.take_along_axis(s, (count // 2)[:, None, :], axis=1)[:, 0]
    return np.where(count % 2 == 1, lo, (lo + hi) / 2)


def _sorted_sample_stats(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`robust_centre_spread` of every sample s[i, :, j] (each sorted, NaN last): two
    (n, m) arrays, NaN where a sample has fewer than 2 finite values."""
    c = np.isfinite(s).sum(axis=1)  # (n, m) finite values per sample
    pos = np.arange(s.shape[1])[None, :, None]
    h = c // 2 + 1
    # shorth: widths[k] = s[k + h - 1] - s[k] for k = 0 .. c - h; +inf elsewhere
    top = np.take_along_axis(s, np.minimum(pos + (h - 1)[:, None, :], s.shape[1] - 1), axis=1)
    with np.errstate(invalid="ignore"):
        widths = np.where(pos <= (c - h)[:, None, :], top - s, np.inf)
    ties = widths == widths.min(axis=1, keepdims=True)
    nth = (ties.sum(axis=1) // 2)[:, None, :]  # the middle of tied shortest halves
    k0 = np.argmax(np.cumsum(ties, axis=1) > nth, axis=1)  # (n, m)
    # median of the sorted window s[k0 : k0 + h]
    lo = np.take_along_axis(s, (k0 + (h - 1) // 2)[:, None, :], axis=1)[:, 0]
    hi = np.take_along_axis(s, (k0 + h // 2)[:, None, :], axis=1)[:, 0]
    centre0 = np.where(h % 2 == 1, lo, (lo + hi) / 2)
    scale0 = np.take_along_axis(widths, k0[:, None, :], axis=1)[:, 0] / _NORMAL_IQR
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(s) & ((np.abs(s - centre0[:, None, :])
                                  <= REWEIGHT_CUT * scale0[:, None, :])
                                 | (scale0 <= 0)[:, None, :])
    # the kept values are a contiguous stretch of the sorted sample: move them to the front
    first = np.argmax(keep, axis=1)
    n_kept = keep.sum(axis=1)
    kept = np.take_along_axis(s, np.minimum(pos + first[:, None, :], s.shape[1] - 1), axis=1)
    kept = np.where(pos < n_kept[:, None, :], kept, np.nan)
    centre = _sorted_median(kept, n_kept)
    dev = np.sort(np.abs(kept - centre[:, None, :]), axis=1)  # NaN stay last
    spread = _NORMAL_MAD * _sorted_median(dev, n_kept)
    spread = np.maximum(np.maximum(spread, SPREAD_FLOOR_REL * np.abs(centre)), SPREAD_FLOOR_ABS)
    few = c < 2
    return np.where(few, np.nan, centre), np.where(few, np.nan, spread)


def build_reference(rows: Sequence[Mapping[str, float]], *, cohort_id: str,
                    protocol: Mapping[str, Any], members: Sequence[str]) -> CohortReference:
    """The reference of a cohort from its runs' metrics (``rows``, one per member, in the
    order of ``members``)."""
    if len(rows) != len(members):
        raise ValueError(f"cohort {cohort_id!r}: {len(rows)} metric rows for "
                         f"{len(members)} members")
    if len(rows) < 2:
        raise ValueError(f"cohort {cohort_id!r}: a reference needs at least 2 runs, "
                         f"got {len(rows)}")
    names = reference_metrics(rows)
    if not names:
        raise ValueError(f"cohort {cohort_id!r}: no metric is finite in most of its runs")
    centre, spread = column_stats(metric_columns(rows, names))
    return CohortReference(cohort_id=str(cohort_id), protocol=dict(protocol),
                           members=tuple(str(m) for m in members), metrics=tuple(names),
                           centre=tuple(float(c) for c in centre),
                           spread=tuple(float(s) for s in spread), n=len(rows))
