"""Temporal metrics of a 4-D bold run (pure numpy; no file I/O)."""
from __future__ import annotations

import numpy as np


def tsnr(data4d: np.ndarray, mask: np.ndarray) -> float:
    """tSNR = median over the mask of mean_t(v) / std_t(v)."""
    ts = data4d[mask]
    return float(np.median(ts.mean(axis=1) / (ts.std(axis=1) + 1e-16)))


def dvars_std(data4d: np.ndarray, mask: np.ndarray) -> float:
    """Mean DVARS (RMS of the frame-to-frame difference in the mask) / mean_t(std_t) scale.

    DVARS_t = sqrt(mean_v (x_{v,t} - x_{v,t-1})^2); standardised by the expected value
    under temporal white noise, sqrt(2) * mean_v std_t(x_v) (Nichols' DVARS standardisation).
    """
    ts = data4d[mask].astype(np.float64)
    diff = np.diff(ts, axis=1)
    dvars = np.sqrt(np.mean(diff ** 2, axis=0))
    expected = np.sqrt(2.0) * np.mean(ts.std(axis=1)) + 1e-16
    return float(np.mean(dvars) / expected)
