"""Dataset statistics shown in the reports: percentile ranks and outlier flags.

Pure numpy; values that are not finite numbers are ignored.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

ROBUST_Z_CUTOFF = 3.5  # Iglewicz & Hoaglin (1993)
TUKEY_K = 1.5
MIN_RUNS_FOR_OUTLIERS = 5


def finite(values: Iterable[Any]) -> np.ndarray:
    """The finite numbers among ``values`` (booleans and strings such as ``n/a`` dropped)."""
    x = as_floats(values)
    return x[np.isfinite(x)]


def as_floats(values: Iterable[Any]) -> np.ndarray:
    """``values`` as float64, NaN where a value is not a number (booleans, ``n/a``, None);
    a float array passes through (dataset_context converts each column once)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype(np.float64, copy=False)
    return np.array([float(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                     else np.nan for v in values], dtype=np.float64)


def percentile_rank(values: Sequence[float], value: float) -> float:
    """Percentile of ``value`` within ``values``: ``100 (#{x < v} + #{x = v} / 2) / n``
    (the "mean" definition of scipy.stats.percentileofscore); NaN when ``values`` is empty."""
    arr = finite(values)
    if arr.size == 0 or not math.isfinite(value):
        return float("nan")
    return float(100.0 * (np.sum(arr < value) + 0.5 * np.sum(arr == value)) / arr.size)


def percentile_ranks(values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """:func:`percentile_rank` of each of ``at`` (finite) within the finite ``values`` at once:
    ``#{x < v}`` and ``#{x <= v}`` by binary search in the sorted values, the same arithmetic."""
    ordered = np.sort(values)
    below = np.searchsorted(ordered, at, side="left")
    equal = np.searchsorted(ordered, at, side="right") - below
    return 100.0 * (below + 0.5 * equal) / ordered.size


def robust_z(values: Sequence[float]) -> np.ndarray:
    """Modified z-score (Iglewicz & Hoaglin 1993): ``0.6745 (x - median) / MAD``.

    When more than half of the values are equal (MAD = 0), the mean absolute deviation
    replaces it: ``(x - median) / (1.2533 MeanAD)``; all values equal gives 0 everywhere.
    Non-finite inputs give NaN at their position.
    """
    x = as_floats(values)
    ok = np.isfinite(x)
    z = np.full(x.shape, np.nan)
    if not ok.any():
        return z
    med = np.median(x[ok])
    dev = x[ok] - med
    mad = np.median(np.abs(dev))
    if mad > 0:
        z[ok] = 0.6745 * dev / mad
    else:
        mean_ad = np.mean(np.abs(dev))
        z[ok] = dev / (1.2533 * mean_ad) if mean_ad > 0 else 0.0
    return z


def tukey_fences(values: Sequence[float], k: float = TUKEY_K) -> tuple[float, float]:
    """Tukey's fences ``[Q1 - k IQR, Q3 + k IQR]`` of the finite values (NaN when none)."""
    arr = finite(values)
    if arr.size == 0:
        return float("nan"), float("nan")
    q1, q3 = np.percentile(arr, [25, 75])
    return float(q1 - k * (q3 - q1)), float(q3 + k * (q3 - q1))


def outlier_flags(values: Sequence[float], cutoff: float = ROBUST_Z_CUTOFF,
                  min_runs: int = MIN_RUNS_FOR_OUTLIERS) -> np.ndarray:
    """A value is an outlier when ``|robust z| > cutoff`` *and* it lies outside Tukey's
    fences: requiring both keeps a small dataset split into two groups (e.g. a few clean
    runs among degraded ones, where the MAD is small) from flagging a whole group.
    Nothing is flagged with fewer than ``min_runs`` finite values."""
    z = robust_z(values)
    if np.isfinite(z).sum() < min_runs:
        return np.zeros(z.shape, dtype=bool)
    low, high = tukey_fences(values)
    x = as_floats(values)
    with np.errstate(invalid="ignore"):
        outside = (x < low) | (x > high)
    return (np.abs(np.nan_to_num(z, nan=0.0)) > cutoff) & outside


def metric_names(rows: Iterable[Mapping[str, Any]], exclude: Iterable[str] = ()) -> list[str]:
    """Sorted names of the columns that hold a number in at least one row."""
    skip = set(exclude)
    return sorted({k for r in rows for k, v in r.items()
                   if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)})


def dataset_context(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]
                    ) -> dict[str, dict[str, dict[str, float | bool]]]:
    """For every run (by ``bids_name``) and metric: its percentile, robust z, outlier flag,
    and the dataset median. ``rows`` are the group-table rows of one suffix."""
    out: dict[str, dict[str, dict[str, float | bool]]] = {r["bids_name"]: {} for r in rows}
    for name in metrics:
        column = as_floats([r.get(name) for r in rows])
        arr = finite(column)
        if arr.size == 0:
            continue
        median = float(np.median(arr))
        z = robust_z(column)
        flags = outlier_flags(column)
        # every run's value is finite where its z is (robust_z): one percentile_ranks call
        # per metric, not one percentile_rank per run and metric
        ok = np.isfinite(z)
        pct = np.full(z.shape, np.nan)
        pct[ok] = percentile_ranks(arr, column[ok])
        for row, zi, flag, p in zip(rows, z.tolist(), flags.tolist(), pct.tolist()):
            if not math.isfinite(zi):
                continue
            out[row["bids_name"]][name] = {
                "percentile": p,
                "robust_z": zi,
                "outlier": flag,
                "median": median,
                "n": int(arr.size),
            }
    return out
