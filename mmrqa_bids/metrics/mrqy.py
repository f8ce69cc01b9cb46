"""The 15 MRQy metrics (Sadri et al., Med Phys 2020; mrqy 0.0.3), slice-wise and vectorised.

MRQy evaluates each metric on every 2-D slice along the third voxel axis, skipping slice 0
and slices whose foreground image F is constant, drops NaN/Inf values and averages over the
remaining slices. Per slice, ``F`` is the slice with the background zeroed, ``B`` the slice
with the foreground zeroed, ``f``/``b`` the foreground/background pixel values.

Here all slices are computed at once with array reductions (no per-slice Python loop except
for the FBER medians), on a foreground mask given by the caller: mmrqa passes its 3-D head
mask; MRQy rebuilds an Otsu + convex-hull mask per slice (15 times), which the benchmark can
pass instead to compare like with like.

Deviations from mrqy 0.0.3, all fixing defects (they change values; documented per metric):

- EFC: MRQy adds 1e16 (meant 1e-16) inside the log and divides by |E_max|, giving values
  around 3-5; here 1e-16 and E_max with its sign, so EFC lies in [0, 1] as in MRIQC.
- PSNR: MRQy subtracts a median-filtered copy of F/max(F) (normalised to [0, 1]) from F,
  so its "noise" is the RMS of F itself (peak/RMS). Here the residual is taken against the
  median-filtered F itself, in the same units. The 5x5 median is computed separably
  (5-point median of rows, then of columns), a fast approximation of the square median.
- FBER: MRQy squares the raw values (int16 overflows); here in float64. Slices whose air
  median is 0 are dropped (MRQy returns 0 for them, which biases the slice average). The
  per-slice medians are taken on every second pixel in each in-plane direction (speed).
- Patch (SNR2, SNR3, SNR4, CNR, CVP): MRQy pads by 5 and then slices 5 pixels from the
  brightest pixel's index, which is the 5x5 block up and to the left of it; here the 5x5
  patch is centred on the brightest pixel (zero-padded at the slice border).
- CPP: MRQy averages the response of a zero-sum 3x3 high-pass kernel over the whole slice,
  which is identically 0 except at the slice border; here the mean absolute response over
  the foreground (the contrast per pixel the paper describes).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from mmrqa_bids.metrics.names import MRQY_NAMES

EPS = 1e-16
PATCH = 5
CHUNK = 16  # slices per block: keeps the temporaries in cache


def _nanmean(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    return float(v.mean()) if v.size else float("nan")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def median5(a: np.ndarray, axis: int) -> np.ndarray:
    """5-point running median along ``axis`` (edge-replicated ends), by a min/max network:
    med5 = med3(e, max(min(a, b), min(c, d)), min(max(a, b), max(c, d)))."""
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (2, 2)
    p = np.pad(a, pad, mode="edge")

    def shifted(k: int) -> np.ndarray:
        sl = [slice(None)] * a.ndim
        sl[axis] = slice(k, k + n)
        return p[tuple(sl)]

    a0, a1, a3, a4, e = shifted(0), shifted(1), shifted(3), shifted(4), shifted(2)
    lo = np.minimum(a0, a1)
    tmp = np.minimum(a3, a4)
    np.maximum(lo, tmp, out=lo)  # lo = max(min(a0, a1), min(a3, a4))
    hi = np.maximum(a0, a1)
    np.maximum(a3, a4, out=tmp)
    np.minimum(hi, tmp, out=hi)  # hi = min(max(a0, a1), max(a3, a4))
    np.minimum(e, lo, out=tmp)
    np.maximum(e, lo, out=lo)
    np.minimum(lo, hi, out=lo)
    np.maximum(tmp, lo, out=tmp)  # med3(e, lo, hi) = max(min(e, lo), min(max(e, lo), hi))
    return tmp


def _patches(img: np.ndarray) -> np.ndarray:
    """Per slice (first axis; in-plane axes 1, 2), the PATCH x PATCH block centred on the
    first brightest pixel in row-major order (as numpy.where in MRQy), zero outside the
    image: shape (n_slices, 25)."""
    nz, nx, ny = img.shape
    arg = np.argmax(img.reshape(nz, nx * ny), axis=1)
    ax, ay = np.divmod(arg, ny)
    off = np.arange(PATCH) - PATCH // 2
    rows = ax[:, None, None] + off[None, :, None]
    cols = ay[:, None, None] + off[None, None, :]
    inside = (rows >= 0) & (rows < nx) & (cols >= 0) & (cols < ny)
    zs = np.broadcast_to(np.arange(nz)[:, None, None], inside.shape)
    vals = img[zs, np.clip(rows, 0, nx - 1), np.clip(cols, 0, ny - 1)].astype(np.float64)
    return np.where(inside, vals, 0.0).reshape(nz, PATCH * PATCH)


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    """In-plane (first two axes) bounding box of ``mask`` over all slices, plus ``margin``."""
    rows = np.nonzero(mask.any(axis=(1, 2)))[0]
    cols = np.nonzero(mask.any(axis=(0, 2)))[0]
    if rows.size == 0:
        return slice(0, 1), slice(0, 1), slice(None)
    return (slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
            slice(max(cols[0] - margin, 0), cols[-1] + margin + 1), slice(None))


def mrqy_metrics(data: np.ndarray, fg_mask: np.ndarray, skip_first: bool = True
                 ) -> dict[str, float]:
    """The 15 MRQy metrics, averaged over the slices along the third axis.

    Per slice (definitions of mrqy 0.0.3 with the fixes listed in the module docstring):
    MEAN = mean f; RNG = max f - min f; VAR = var f; CV = 100 std f / mean f;
    CPP = mean over f of |F * k|, k = [[-1/8]*3, [-1/8, 1, -1/8], [-1/8]*3];
    PSNR = 20 log10(max F / RMS(F - med5x5(F))); SNR1 = std f / std b;
    SNR2 = mean P_F / std b; SNR3 = mean P_F / std P_F; SNR4 = mean P_F / std P_B;
    CNR = mean(P_F - P_B) / std P_B; CVP = std P_F / mean P_F;
    CJV = (std f + std b) / |mean f - mean b|;
    EFC = sum_j x_j ln(x_j + 1e-16) / E_max, x = F / sqrt(sum F^2), E_max = sqrt(N) ln(1/sqrt(N));
    FBER = median(f^2) / median(b^2); P_F, P_B = 5x5 patches centred on the brightest
    pixel of F, B. Standard deviations are population (numpy) ones, as in MRQy.
    """
    if data.ndim != 3 or data.shape != fg_mask.shape:
        raise ValueError(f"mrqy metrics need a 3-D volume and a mask of the same shape, got "
                         f"{data.shape} and {fg_mask.shape}")
    start = 1 if skip_first else 0
    d = data[:, :, start:]
    m = fg_mask[:, :, start:]
    box = _bbox(m, margin=3)[:2]
    parts = [_chunk_values(np.ascontiguousarray(np.moveaxis(d[:, :, z0:z0 + CHUNK], 2, 0),
                                                dtype=np.float32),
                           np.ascontiguousarray(np.moveaxis(m[:, :, z0:z0 + CHUNK], 2, 0)),
                           box)
             for z0 in range(0, d.shape[2], CHUNK)]
    per_slice = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    valid = per_slice.pop("valid").astype(bool)
    return {name: _nanmean(per_slice[name][valid]) for name in MRQY_NAMES}


def _chunk_values(d: np.ndarray, m: np.ndarray, box: tuple[slice, slice]
                  ) -> dict[str, np.ndarray]:
    """Per-slice MRQy values of a chunk of slices laid out (slice, row, column)."""
    nz, nx, ny = d.shape
    npix = nx * ny
    axes = (1, 2)
    s_all = d.sum(axis=axes, dtype=np.float64)
    ss_all = np.square(d).sum(axis=axes, dtype=np.float64)
    # Everything that involves F is computed in the in-plane bounding box of the foreground
    # (with a 3-pixel margin, so filters see the same zeros as on the whole slice).
    inplane = (slice(None),) + box
    db, mb = d[inplane], m[inplane]
    F = db * mb
    n_f = mb.sum(axis=axes).astype(np.float64)
    n_b = npix - n_f
    s_f = F.sum(axis=axes, dtype=np.float64)
    ss_f = np.square(F).sum(axis=axes, dtype=np.float64)
    s_b, ss_b = s_all - s_f, ss_all - ss_f
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_f, mean_b = s_f / n_f, s_b / n_b
        var_f = np.maximum(ss_f / n_f - mean_f ** 2, 0)
        var_b = np.maximum(ss_b / n_b - mean_b ** 2, 0)
        # MRQy skips slices where the whole foreground image F is constant.
        var_img_f = ss_f / npix - (s_f / npix) ** 2
    valid = var_img_f > 0
    std_f, std_b = np.sqrt(var_f), np.sqrt(var_b)

    big = np.float32(np.finfo(np.float32).max)
    peak = F.max(axis=axes).astype(np.float64)
    fg_min = np.where(mb, db, big).min(axis=axes).astype(np.float64)
    # max over f is max F when the foreground is non-negative (magnitude images).
    fg_max = peak if fg_min.min() >= 0 else np.where(mb, db, -big).max(axis=axes)
    rng = fg_max - fg_min

    # CPP: 3x3 high-pass response (9F - box3x3(F)) / 8, mean |.| over the foreground.
    hp = ndi.uniform_filter1d(ndi.uniform_filter1d(F, 3, axis=1, mode="constant"), 3, axis=2,
                              mode="constant")
    hp *= -9.0
    hp += 9.0 * F
    np.abs(hp, out=hp)
    hp *= mb
    cpp = _ratio(hp.sum(axis=axes, dtype=np.float64) / 8.0, n_f)

    # PSNR against the (separable) 5x5 median of F itself; outside the box F = median = 0.
    med = median5(median5(F, 1), 2)
    med -= F
    mse = np.square(med).sum(axis=axes, dtype=np.float64) / npix
    with np.errstate(divide="ignore", invalid="ignore"):
        psnr = 20.0 * np.log10(peak / np.sqrt(mse))

    B = d.copy()
    B[inplane] -= F
    pf, pb = _patches(F), _patches(B)
    pf_mean, pf_std, pb_std = pf.mean(axis=1), pf.std(axis=1), pb.std(axis=1)

    # EFC per slice (F is 0 outside the foreground and adds nothing there).
    x = F * (1.0 / np.maximum(np.sqrt(ss_f), EPS)).astype(np.float32)[:, None, None]
    np.add(x, np.float32(EPS), out=med)
    np.log(med, out=med)
    ent = np.einsum("ijk,ijk->i", x, med, dtype=np.float64)
    e_max = np.sqrt(npix) * np.log(1.0 / np.sqrt(npix))
    efc = ent / e_max

    # FBER: medians of f^2 and b^2 per slice, from every second pixel in-plane.
    fber = np.full(nz, np.nan)
    ds, ms = d[:, ::2, ::2], m[:, ::2, ::2]
    for z in np.nonzero(valid & (n_f > 0) & (n_b > 0))[0]:
        sl, mz = ds[z], ms[z]
        if mz.all() or not mz.any():
            continue
        bg_mu = np.median(np.square(sl[~mz], dtype=np.float64))
        if bg_mu > 0:
            fber[z] = np.median(np.square(sl[mz], dtype=np.float64)) / bg_mu

    return {
        "valid": valid.astype(np.float64),
        "MEAN": mean_f, "RNG": rng, "VAR": var_f, "CV": 100.0 * _ratio(std_f, mean_f),
        "CPP": cpp, "PSNR": psnr, "SNR1": _ratio(std_f, std_b), "SNR2": _ratio(pf_mean, std_b),
        "SNR3": _ratio(pf_mean, pf_std), "SNR4": _ratio(pf_mean, pb_std),
        "CNR": _ratio((pf - pb).mean(axis=1), pb_std), "CVP": _ratio(pf_std, pf_mean),
        "CJV": _ratio(std_f + std_b, np.abs(mean_f - mean_b)), "EFC": efc, "FBER": fber,
    }
