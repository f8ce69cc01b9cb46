"""Volume-wise image quality metrics on a 3-D volume (pure numpy; no file I/O).

Definitions follow MRQy (Sadri et al., Med Phys 2020) and MRIQC (Esteban et al., PLoS One
2017) where they agree. ``fg`` = voxels in the head mask, ``bg`` = air outside the dilated head.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-16


def mean_fg(fg: np.ndarray) -> float:
    """MEAN = mean(fg)."""
    return float(np.mean(fg))


def range_fg(fg: np.ndarray) -> float:
    """RNG = max(fg) - min(fg)."""
    return float(np.max(fg) - np.min(fg))


def var_fg(fg: np.ndarray) -> float:
    """VAR = var(fg)."""
    return float(np.var(fg))


def cv_fg(fg: np.ndarray) -> float:
    """CV = 100 * std(fg) / mean(fg) (percent)."""
    return float(100.0 * np.std(fg) / (np.mean(fg) + EPS))


def snr1(fg: np.ndarray, bg: np.ndarray) -> float:
    """SNR1 = std(fg) / std(bg) (MRQy)."""
    return float(np.std(fg) / (np.std(bg) + EPS))


def cnr_fg_bg(fg: np.ndarray, bg: np.ndarray) -> float:
    """CNR = (mean(fg) - mean(bg)) / std(bg)."""
    return float((np.mean(fg) - np.mean(bg)) / (np.std(bg) + EPS))


def cjv_fg_bg(fg: np.ndarray, bg: np.ndarray) -> float:
    """CJV = (std(fg) + std(bg)) / |mean(fg) - mean(bg)| (MRQy's foreground/background form)."""
    return float((np.std(fg) + np.std(bg)) / (abs(np.mean(fg) - np.mean(bg)) + EPS))


def efc(data: np.ndarray) -> float:
    """Entropy focus criterion (Atkinson 1997), normalised to [0, 1] as in MRIQC.

    x_j = |v_j| / sqrt(sum_k v_k^2);  E = -sum_j x_j ln x_j;  EFC = E / E_max with
    E_max = sqrt(N) ln sqrt(N), the entropy when the energy is spread evenly over N voxels.
    (MRQy writes 1e16 where 1e-16 is meant; this is the corrected form.)
    """
    v = np.abs(data.astype(np.float64, copy=False)).ravel()
    n = v.size
    b_max = np.sqrt(np.sum(v ** 2))
    x = v / (b_max + EPS)
    e = -np.sum(x * np.log(x + EPS))
    e_max = np.sqrt(n) * np.log(np.sqrt(n))
    return float(e / e_max)


def fber(fg: np.ndarray, bg: np.ndarray) -> float:
    """FBER = mean(|fg|^2) / mean(|bg|^2) (float64: no int16 overflow)."""
    fg = fg.astype(np.float64, copy=False)
    bg = bg.astype(np.float64, copy=False)
    return float(np.mean(fg ** 2) / (np.mean(bg ** 2) + EPS))


def first_set(data: np.ndarray, head: np.ndarray, background: np.ndarray) -> dict[str, float]:
    fg = data[head]
    bg = data[background]
    if bg.size < 100:
        bg = data[~head]
    return {
        "mean": mean_fg(fg),
        "rng": range_fg(fg),
        "var": var_fg(fg),
        "cv": cv_fg(fg),
        "snr1": snr1(fg, bg),
        "cnr": cnr_fg_bg(fg, bg),
        "cjv": cjv_fg_bg(fg, bg),
        "efc": efc(data),
        "fber": fber(fg, bg),
    }
