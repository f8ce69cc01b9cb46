"""Metrics of a 4-D bold run (pure numpy/scipy; no file I/O).

Names and definitions follow MRIQC's functional IQMs (Esteban et al., PLoS One 2017) where
they match. Spatial metrics (efc, fber, snr, fwhm, gsr) are taken on the temporal mean, and
so are two static-artifact metrics MRIQC computes for anatomical runs only: ``qi_1`` (structured
signal in the air: ghosts, wrap-around) and ``inu_med``/``inu_range`` (the bias field of the
3-class tissue fit, :func:`mmrqa_bids.metrics.tissues.fit_tissues`, EPI contrast). ``fov_edge``
(wrap-around, :func:`~mmrqa_bids.metrics.anatomical.fov_edge`) and ``head_edge`` (blur,
:func:`~mmrqa_bids.metrics.anatomical.head_edge`) are mmrqa's own.

``tsnr``, ``dvars_*`` and ``fd_*`` follow the code MRIQC runs for them (nipype's ``TSNR``,
``ComputeDVARS`` and ``FramewiseDisplacement``, MRIQC's ``FunctionalQC``), checked on real runs
by ``benchmarks/metrics_vs_mriqc_bold.py``. ``gcor`` and ``aor`` depart: both remove a quadratic
trend by least squares first (MRIQC's ``@compute_gcor`` only demeans; its 3dToutcount call keeps
AFNI's default ``-polort 0``, which removes the median only), so both are NaN on runs of 3
volumes or fewer, where MRIQC's values are defined.
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
TSNR_SD_MIN = 1e-3  # nipype TSNR: a voxel of temporal SD <= this has tSNR 0 (image units)
DVARS_SCALE = 1000.0  # nipype ComputeDVARS (MRIQC's call): in-mask median scaled to this
DVARS_SD_MIN = 1e-7  # nipype ComputeDVARS variance_tol: robust SD (scaled) <= this removed
DETREND_ORDER = 2  # aor / gcor: quadratic Legendre trend removed first
#: A detrended series (or its MAD) at or below this fraction of the raw series' RMS is
#: rounding residue of the projection, i.e. zero: the voxel is constant up to its trend.
RESIDUE_REL = 1e-10


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
    """Temporal SNR (Krueger & Glover 2001; MRIQC ``tsnr``), as nipype's ``TSNR`` map and
    MRIQC's ``FunctionalQC`` median over the mask::

        tsnr_v = mean_t(x_v) / sd_t(x_v)  if sd_t(x_v) > 1e-3, else 0
        tsnr   = median_v tsnr_v          (every voxel of the mask; sd with ddof 0)

    Voxels of (near-)constant signal count as 0, as in MRIQC (the 1e-3 is in image units,
    :data:`TSNR_SD_MIN`). NaN when no voxel's SD exceeds it (a constant run: MRIQC's median
    would be 0, which reads as a measured value).
    """
    sd = ts.std(axis=1)
    ok = sd > TSNR_SD_MIN
    if not ok.any():
        return NAN
    out = np.zeros(ts.shape[0])
    out[ok] = ts.mean(axis=1)[ok] / sd[ok]
    return float(np.median(out))


def _ar1(ts: np.ndarray) -> np.ndarray:
    """Yule-Walker lag-1 autocorrelation of each demeaned row."""
    x = ts - ts.mean(axis=1, keepdims=True)
    den = np.einsum("ij,ij->i", x, x)
    num = np.einsum("ij,ij->i", x[:, 1:], x[:, :-1])
    return np.where(den > 0, num / np.maximum(den, EPS), 0.0)


def dvars(ts: np.ndarray) -> tuple[float, float, float]:
    """Mean DVARS, non-standardised, standardised and voxel-wise standardised (Power et al.
    2012; Nichols' standardisation), as nipype's ``ComputeDVARS`` with the defaults MRIQC
    calls it with (``dvars_nstd/std/vstd``: the mean over time of each column)::

        y_v,t    = 1000 x_v,t / median_{v,t}(x)          (in-mask median scaled to 1000)
        sd_v     = IQR_t(y_v) / 1.349                     (percentiles: 'lower')
        voxels with sd_v <= 1e-7 are removed              (nipype's variance_tol)
        DVARS_t  = sqrt(mean_v (y_v,t - y_v,t-1)^2)       -> dvars_nstd
        s_v      = sd_v sqrt(2 (1 - ar1_v))               (ar1_v: Yule-Walker lag 1)
        std_t    = DVARS_t / mean_v s_v                   -> dvars_std
        vstd_t   = sqrt(mean_v ((y_v,t - y_v,t-1) / s_v)^2) -> dvars_vstd

    ``dvars_std`` and ``dvars_vstd`` do not depend on the scaling; ``dvars_nstd`` is in units
    of 1/1000 of the in-mask median (so free of the image's gain). All three are NaN when no
    voxel has a robust SD above the tolerance (e.g. 2 volumes: every IQR is 0); ``dvars_nstd``
    is NaN when the in-mask median is not positive (no signal level to scale to).
    """
    median = float(np.median(ts))
    scale = DVARS_SCALE / median if median > 0 else 1.0
    ts = ts * scale
    q75, q25 = np.percentile(ts, [75, 25], axis=1, method="lower")
    sd = (q75 - q25) / 1.349
    keep = sd > (DVARS_SD_MIN if median > 0 else 0.0)
    if keep.sum() < 1:
        return NAN, NAN, NAN
    ts, sd = ts[keep], sd[keep]
    diff_sd = np.sqrt(np.maximum(2.0 * (1.0 - _ar1(ts)), 0.0)) * sd
    diff = np.diff(ts, axis=1)
    nstd = np.sqrt(np.mean(diff ** 2, axis=0))
    std = nstd / max(float(diff_sd.mean()), EPS)
    ok = diff_sd > 0
    vstd = np.sqrt(np.mean((diff[ok] / diff_sd[ok, None]) ** 2, axis=0))
    return (float(nstd.mean()) if median > 0 else NAN), float(std.mean()), float(vstd.mean())


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


def _residue_floor(ts: np.ndarray) -> np.ndarray:
    """Per row, the size under which a detrended value is rounding residue:
    RESIDUE_REL * RMS_t(x_v), shape (n_voxels, 1)."""
    return RESIDUE_REL * np.sqrt(np.mean(ts * ts, axis=1, keepdims=True))


def aor(ts: np.ndarray, qthr: float = 0.001, detrended: np.ndarray | None = None) -> float:
    """Outlier ratio after AFNI 3dToutcount -fraction (MRIQC ``aor``), with a departure: the
    series is detrended by a quadratic Legendre fit (least squares) where MRIQC's call keeps
    AFNI's default ``-polort 0`` (the median removed only)::

        r_v,t = x_v,t - quadratic Legendre trend of x_v       (detrend, order 2)
        MAD_v = median_t |r_v,t - median_t r_v|
        alpha = Phi^-1(1 - qthr / T) sqrt(pi / 2)
        aor   = mean_{v,t} [ |r_v,t - median_t r_v| > alpha MAD_v  and  MAD_v > floor_v ]

    over every voxel of the mask; floor_v = 1e-10 RMS_t(x_v) (:data:`RESIDUE_REL`): a voxel
    whose detrended MAD is rounding residue is constant up to its trend and has no outlier.
    NaN for runs of T <= 3 volumes: a quadratic trend fits every series exactly, nothing is
    left to test. ``detrended``: detrend(ts) when the caller already has it.
    """
    n_t = ts.shape[1]
    if n_t <= DETREND_ORDER + 1:
        return NAN
    x = detrend(ts, DETREND_ORDER) if detrended is None else detrended
    med = np.median(x, axis=1, keepdims=True)
    dev = np.abs(x - med)
    mad = np.median(dev, axis=1, keepdims=True)
    alpha = norm.isf(qthr / n_t) * np.sqrt(np.pi / 2)
    out = (dev > alpha * mad) & (mad > _residue_floor(ts))
    return float(out.mean())


def gcor(ts: np.ndarray, detrended: np.ndarray | None = None) -> float:
    """Global correlation (Saad et al., Brain Connect 2013; MRIQC ``gcor``), the mean of the
    voxel-by-voxel correlation matrix of the detrended series::

        r_v  = x_v - quadratic Legendre trend of x_v       (detrend, order 2)
        u_v  = r_v / ||r_v||                               (voxels with ||r_v|| > floor_v)
        gcor = || mean_v u_v ||^2

    floor_v = 1e-10 ||x_v|| (:data:`RESIDUE_REL`): a residual that small is rounding residue
    (the voxel is constant up to its trend) and is left out instead of being scaled up to
    unit length. Departure: MRIQC (AFNI ``@compute_gcor``) only demeans. NaN for runs of
    T <= 3 volumes (a quadratic trend fits every series exactly), and when every voxel is
    left out.
    """
    if ts.shape[1] <= DETREND_ORDER + 1:
        return NAN
    x = detrend(ts, DETREND_ORDER) if detrended is None else detrended
    norms = np.linalg.norm(x, axis=1)
    ok = norms > RESIDUE_REL * np.linalg.norm(ts, axis=1)
    if not ok.any():
        return NAN
    u = x[ok] / norms[ok, None]
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


def fd_perc(fd_num: float, n_volumes: int) -> float:
    """Percentage of FD values above the threshold, over the number of volumes, as MRIQC's
    ``FunctionalQC``: fd_perc = 100 fd_num / T (T - 1 FD values: the first volume counts
    as one without motion)."""
    return float(100.0 * fd_num / n_volumes)


def functional_metrics(data4d: np.ndarray, mean_epi: np.ndarray, masks: Masks,
                       zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, float]:
    """Every functional metric of a bold run (see :data:`mmrqa_bids.metrics.FUNC_METRICS`)."""
    head, air = masks.head, masks.background
    ts = _series(data4d, head)
    out: dict[str, float] = {"tsnr": tsnr(ts)}
    out["dvars_nstd"], out["dvars_std"], out["dvars_vstd"] = dvars(ts)
    out["gsr_x"] = gsr(mean_epi, head, 0)
    out["gsr_y"] = gsr(mean_epi, head, 1)
    detrended = detrend(ts, DETREND_ORDER)
    out["aor"] = aor(ts, detrended=detrended)
    out["gcor"] = gcor(ts, detrended=detrended)
    del detrended
    fd = framewise_displacement(realign(data4d, head, zooms))
    out["fd_mean"] = float(fd.mean())
    out["fd_num"] = float(np.count_nonzero(fd > FD_THRESHOLD_MM))
    out["fd_perc"] = fd_perc(out["fd_num"], data4d.shape[3])
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
