"""Metrics of a 4-D bold run (pure numpy/scipy; no file I/O).

Names and definitions follow MRIQC's functional IQMs (Esteban et al., PLoS One 2017) where
they match. Spatial metrics (efc, fber, snr, fwhm, gsr) are taken on the temporal mean, and
so are two static-artifact metrics MRIQC computes for anatomical runs only: ``qi_1`` (structured
signal in the air: ghosts, wrap-around) and ``inu_med``/``inu_range`` (the bias field of the
3-class tissue fit, :func:`mmrqa_bids.metrics.tissues.fit_tissues`, EPI contrast). ``fov_edge``
(wrap-around, :func:`~mmrqa_bids.metrics.anatomical.fov_edge`) and ``head_edge`` (blur,
:func:`~mmrqa_bids.metrics.anatomical.head_edge`) are mmrqa's own.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import norm

from mmrqa_bids.metrics.anatomical import (NAN, efc, fber, fov_edge, fwhm, head_edge, inu_stats,
                                           qi_1, snr, summary_stats)
from mmrqa_bids.metrics.masks import Masks
from mmrqa_bids.metrics.tissues import fit_tissues

EPS = 1e-16
FD_RADIUS_MM = 50.0  # Power et al. 2012: rotations as arc length on a 50 mm sphere
FD_THRESHOLD_MM = 0.2  # MRIQC's default for fd_num / fd_perc


def _series(data4d: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Time series of the voxels in ``mask`` as float64, shape (n_voxels, T)."""
    return data4d[mask].astype(np.float64)


def detrend(ts: np.ndarray, order: int = 2) -> np.ndarray:
    """Remove a Legendre polynomial trend of ``order`` (mean included) from each row."""
    t = np.linspace(-1, 1, ts.shape[1])
    basis = np.polynomial.legendre.legvander(t, order)  # (T, order + 1)
    q, _ = np.linalg.qr(basis)
    return ts - (ts @ q) @ q.T


def tsnr(ts: np.ndarray) -> float:
    """Temporal SNR (Krueger & Glover 2001; MRIQC ``tsnr``): median over voxels of
    mean_t / std_t."""
    sd = ts.std(axis=1)
    ok = sd > 0
    if not ok.any():
        return NAN
    return float(np.median(ts.mean(axis=1)[ok] / sd[ok]))


def _ar1(ts: np.ndarray) -> np.ndarray:
    """Yule-Walker lag-1 autocorrelation of each demeaned row."""
    x = ts - ts.mean(axis=1, keepdims=True)
    den = np.einsum("ij,ij->i", x, x)
    num = np.einsum("ij,ij->i", x[:, 1:], x[:, :-1])
    return np.where(den > 0, num / np.maximum(den, EPS), 0.0)


def dvars(ts: np.ndarray) -> tuple[float, float, float]:
    """Mean DVARS, non-standardised, standardised and voxel-wise standardised (Power et al.
    2012; Nichols' standardisation as implemented in MRIQC ``dvars_nstd/std/vstd``).

    DVARS_t = sqrt(mean_v (x_v,t - x_v,t-1)^2). Each voxel's expected difference SD under
    stationarity is sd_v sqrt(2 (1 - ar1_v)), sd_v = IQR_v / 1.349 (robust) and ar1_v its
    lag-1 autocorrelation; std = DVARS / mean_v of it; vstd = sqrt(mean_v (diff / it)^2).
    """
    q75, q25 = np.percentile(ts, [75, 25], axis=1, method="lower")
    sd = (q75 - q25) / 1.349
    keep = sd > 0
    if keep.sum() < 1:
        return NAN, NAN, NAN
    ts, sd = ts[keep], sd[keep]
    diff_sd = np.sqrt(np.maximum(2.0 * (1.0 - _ar1(ts)), 0.0)) * sd
    diff = np.diff(ts, axis=1)
    nstd = np.sqrt(np.mean(diff ** 2, axis=0))
    std = nstd / max(float(diff_sd.mean()), EPS)
    ok = diff_sd > 0
    vstd = np.sqrt(np.mean((diff[ok] / diff_sd[ok, None]) ** 2, axis=0))
    return float(nstd.mean()), float(std.mean()), float(vstd.mean())


def gsr(mean_epi: np.ndarray, mask: np.ndarray, axis: int) -> float:
    """Ghost-to-signal ratio (Giannelli et al. 2010; MRIQC ``gsr_x``/``gsr_y``).

    The N/2 ghost region is the head mask rolled by half the field of view along ``axis``
    (the phase-encoding direction), outside the head; GSR = (mean(ghost) - mean(other air))
    / median(head).
    """
    ghost = np.roll(mask, mask.shape[axis] // 2, axis=axis) & ~mask
    other = ~ghost & ~mask
    signal = float(np.median(mean_epi[mask]))
    if not ghost.any() or not other.any() or signal == 0:
        return NAN
    return float((mean_epi[ghost].mean() - mean_epi[other].mean()) / signal)


def aor(ts: np.ndarray, qthr: float = 0.001, detrended: np.ndarray | None = None) -> float:
    """AFNI outlier ratio (3dToutcount; MRIQC ``aor``): mean over time of the fraction of
    voxels whose quadratic-detrended value departs from the voxel median by more than
    alpha * MAD, alpha = Phi^-1(1 - qthr / T) sqrt(pi / 2). ``detrended``: detrend(ts)
    when the caller already has it."""
    x = detrend(ts) if detrended is None else detrended
    med = np.median(x, axis=1, keepdims=True)
    mad = np.median(np.abs(x - med), axis=1, keepdims=True)
    alpha = norm.isf(qthr / ts.shape[1]) * np.sqrt(np.pi / 2)
    out = (np.abs(x - med) > alpha * mad) & (mad > 0)
    return float(out.mean())


def gcor(ts: np.ndarray, detrended: np.ndarray | None = None) -> float:
    """Global correlation (Saad et al., Brain Connect 2013): the mean of the voxel-by-voxel
    correlation matrix, = ||mean_v u_v||^2 with u_v the unit-norm detrended series."""
    x = detrend(ts) if detrended is None else detrended
    norms = np.linalg.norm(x, axis=1)
    u = x[norms > 0] / norms[norms > 0, None]
    if u.shape[0] == 0:
        return NAN
    g = u.mean(axis=0)
    return float(g @ g)


def _rotation(w: np.ndarray) -> np.ndarray:
    """Rotation matrix of the rotation vector ``w`` (radians), Rodrigues' formula."""
    theta = float(np.linalg.norm(w))
    if theta < 1e-12:
        return np.eye(3)
    k = w / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def realign(data4d: np.ndarray, mask: np.ndarray, zooms: tuple[float, float, float],
            iterations: int = 8, reference: int | None = None,
            max_points: int = 40_000) -> np.ndarray:
    """Rigid-body motion of every volume relative to a reference (the middle volume).

    Gauss-Newton least squares on intensities with the Jacobian taken from the reference's
    spatial gradient, computed once (Friston et al., Hum Brain Mapp 1995; SPM realign), on
    volumes smoothed with a 1-voxel Gaussian: for each volume, find p = (w, t) (rotation
    vector in rad about the mask centroid, translation in mm) minimising
    sum_x (V_t(R(w)(x - c) + c + t) - V_ref(x))^2 over (at most ``max_points``) voxels of the
    eroded mask, with dW/dt = grad V_ref(x) and dW/dw = (x - c) x grad V_ref(x).
    Returns (T, 6) parameters (wx, wy, wz, tx, ty, tz).
    """
    n_t = data4d.shape[3]
    ref_idx = n_t // 2 if reference is None else reference
    vox = np.asarray(zooms, dtype=np.float64)
    sel = ndi.binary_erosion(mask, iterations=1)
    if sel.sum() < 50:
        sel = mask
    idx = np.array(np.nonzero(sel), dtype=np.float64)  # (3, N) voxel indices
    idx = idx[:, :: max(1, idx.shape[1] // max_points)]
    x = idx * vox[:, None]  # mm
    c = x.mean(axis=1, keepdims=True)
    xc = x - c
    ref = ndi.gaussian_filter(data4d[..., ref_idx].astype(np.float32), 1.0)
    ii = tuple(idx.astype(np.intp))
    target = ref[ii].astype(np.float64)
    grad = np.stack([g[ii] for g in np.gradient(ref, *vox)])  # (3, N), per mm
    jac = np.hstack([np.cross(xc.T, grad.T), grad.T])  # (N, 6)
    h_inv_jt = np.linalg.solve(jac.T @ jac + 1e-9 * np.eye(6), jac.T)  # (6, N)
    params = np.zeros((n_t, 6))
    for t in range(n_t):
        if t == ref_idx:
            continue
        vol = ndi.gaussian_filter(data4d[..., t].astype(np.float32), 1.0)
        p = params[t - 1].copy() if t > 0 and t - 1 != ref_idx else np.zeros(6)
        for _ in range(iterations):
            coords = (_rotation(p[:3]) @ xc + c + p[3:, None]) / vox[:, None]
            warped = ndi.map_coordinates(vol, coords, order=1, mode="nearest")
            dp = -h_inv_jt @ (warped - target)
            p += dp
            if np.abs(dp[3:]).max() < 1e-3 and np.abs(dp[:3]).max() < 2e-5:
                break
        params[t] = p
    return params


def framewise_displacement(params: np.ndarray, radius: float = FD_RADIUS_MM) -> np.ndarray:
    """FD_t = sum |d t| + radius * sum |d w| between consecutive volumes (Power et al.,
    NeuroImage 2012); T - 1 values in mm."""
    d = np.abs(np.diff(params, axis=0))
    return radius * d[:, :3].sum(axis=1) + d[:, 3:].sum(axis=1)


def functional_metrics(data4d: np.ndarray, mean_epi: np.ndarray, masks: Masks,
                       zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, float]:
    """Every functional metric of a bold run (see :data:`mmrqa_bids.metrics.FUNC_METRICS`)."""
    head, air = masks.head, masks.background
    ts = _series(data4d, head)
    out: dict[str, float] = {"tsnr": tsnr(ts)}
    out["dvars_nstd"], out["dvars_std"], out["dvars_vstd"] = dvars(ts)
    out["gsr_x"] = gsr(mean_epi, head, 0)
    out["gsr_y"] = gsr(mean_epi, head, 1)
    detrended = detrend(ts)
    out["aor"] = aor(ts, detrended=detrended)
    out["gcor"] = gcor(ts, detrended=detrended)
    del detrended
    fd = framewise_displacement(realign(data4d, head, zooms))
    out["fd_mean"] = float(fd.mean())
    out["fd_num"] = float(np.count_nonzero(fd > FD_THRESHOLD_MM))
    out["fd_perc"] = float(100.0 * out["fd_num"] / fd.size)
    fg_stats = summary_stats(mean_epi[head])
    bg_stats = summary_stats(mean_epi[air])
    out["efc"] = efc(mean_epi)
    out["fber"] = fber(mean_epi[head], mean_epi[air])
    out["snr"] = snr(fg_stats["median"], fg_stats["stdv"], fg_stats["n"])
    fx, fy, fz = fwhm(mean_epi, head, zooms, stride=1)
    out.update(fwhm_x=fx, fwhm_y=fy, fwhm_z=fz, fwhm_avg=float(np.mean([fx, fy, fz])))
    out["qi_1"] = qi_1(masks.small, masks.background_small)
    out["fov_edge"] = fov_edge(masks.head_small)
    out["head_edge"] = head_edge(mean_epi, head, bg_stats["median"])
    model = fit_tissues(masks.small, masks.brain_small, "bold")
    out["inu_med"], out["inu_range"] = (inu_stats(model.field_small, masks.brain_small)
                                        if model is not None else (NAN, NAN))
    for region, stats in (("fg", fg_stats), ("bg", bg_stats)):
        for k, v in stats.items():
            out[f"summary_{region}_{k}"] = v
    return out
