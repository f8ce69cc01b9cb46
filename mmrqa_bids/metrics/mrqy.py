"""The 15 MRQy metrics (Sadri et al., Med Phys 2020; mrqy 0.0.3), slice-wise and vectorised.

MRQy evaluates each metric on every 2-D slice along the third voxel axis of the file as
stored, skipping slice 0 and slices whose foreground image F is constant, drops NaN/Inf
values and averages over the remaining slices. Per slice, the foreground is MRQy's own
(Otsu thresholds of the slice and of its equalised histogram, then the convex hull;
:mod:`mmrqa_bids.metrics.mrqy_foreground`), ``F`` is the slice with the background zeroed,
``B`` the slice with the foreground zeroed, ``f``/``b`` the foreground/background values.

Here all slices are computed at once with array reductions (no per-slice Python loop; the
FBER medians are exact order statistics found by counting or sorting whole blocks of
slices). A caller may pass its own 3-D foreground mask instead (tests, and the benchmark's
same-mask comparison); :func:`mmrqa_bids.metrics.measure` uses MRQy's foreground on the
volume in the file's voxel order, so that the values are MRQy's on real acquisitions.

Deliberate departures from mrqy 0.0.3, each fixing a defect (benchmarks/metrics_vs_mrqy.py
prints them beside MRQy's values):

- EFC: MRQy adds 1e16 (meant 1e-16) inside the log and divides by |E_max|, giving values
  around 3-5; here 1e-16 and E_max with its sign, so EFC lies in [0, 1] as in MRIQC.
- PSNR: MRQy subtracts a median-filtered copy of F/max(F) (normalised to [0, 1]) from F,
  so its "noise" is the RMS of F itself (peak/RMS). Here the residual is taken against the
  median-filtered F itself, in the same units. The 5x5 median is computed separably
  (5-point median of rows, then of columns), a fast approximation of the square median.
- FBER: MRQy squares the raw values in the file's type (int16 data overflows and wraps);
  here in float64. On floating-point files the two agree.

Kept as MRQy defines them although they read oddly: CPP is the mean over the whole slice of
a zero-sum 3x3 high-pass response, which cancels everywhere but on the slice border (0 when
the foreground does not touch it); the SNR2-4/CNR/CVP patch is the 5x5 block up and to the
left of the brightest pixel (MRQy pads by 5 and slices 5 pixels from its index); FBER is 0
on slices whose air median square is below 1e-3 (zero-filled air).
"""
from __future__ import annotations

import numpy as np

from mmrqa_bids.metrics.mrqy_foreground import fill_rows, hull_rows, row_extents, thresholded
from mmrqa_bids.metrics.names import MRQY_NAMES

EPS = 1e-16
PATCH = 5
PAD = 5  # MRQy's padding (not PATCH // 2): its patch ends 1 pixel before the peak
CHUNK = 8  # slices per block: keeps the temporaries in cache (8 measured fastest)
FG_CHUNK = 32  # slices per block of the foreground's histograms (their cost is per block)


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


def _first_argmax_xy(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per slice of ``img`` laid out (slice, y, x), the (x, y) position of the first maximum
    in row-major (x, y) order, i.e. what ``numpy.argmax`` gives on the (x, y) slice as MRQy
    stores it. ``argmax`` on the (y, x) layout agrees unless the maximum is tied; the (rare)
    tied slices are resolved exactly."""
    nz, ny, nx = img.shape
    flat = img.reshape(nz, ny * nx)
    arg = np.argmax(flat, axis=1)
    peak = flat[np.arange(nz), arg]
    ay, ax = np.divmod(arg, nx)
    ties = np.count_nonzero(flat == peak[:, None], axis=1) > 1
    for z in np.nonzero(ties)[0]:
        yy, xx = np.nonzero(img[z] == peak[z])
        first = np.argmin(xx * ny + yy)
        ax[z], ay[z] = xx[first], yy[first]
    return ax, ay


def _patches(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per slice of ``img`` laid out (slice, y, x), MRQy's PATCH x PATCH block: x and y from
    5 to 1 pixels before the first brightest pixel in row-major (x, y) order (numpy.where
    in MRQy, which pads by 5 and slices ``[a:a + 5, b:b + 5]``), zero outside the image:
    shape (n_slices, 25), patch rows along x. With ``mask``, the image is
    ``img`` zeroed where ``mask`` is True (MRQy's background image B), without building it.
    """
    nz, ny, nx = img.shape
    if mask is not None:
        img_b = np.where(mask, np.float32(0), img)
        ax, ay = _first_argmax_xy(img_b)
    else:
        ax, ay = _first_argmax_xy(img)
    off = np.arange(PATCH) - PAD
    rows = ax[:, None, None] + off[None, :, None]
    cols = ay[:, None, None] + off[None, None, :]
    inside = (rows >= 0) & (rows < nx) & (cols >= 0) & (cols < ny)
    zs = np.broadcast_to(np.arange(nz)[:, None, None], inside.shape)
    at = (zs, np.clip(cols, 0, ny - 1), np.clip(rows, 0, nx - 1))
    vals = img[at].astype(np.float64)
    if mask is not None:
        inside &= ~mask[at]
    return np.where(inside, vals, 0.0).reshape(nz, PATCH * PATCH)


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """In-plane bounding box (axes 1, 2) of ``mask`` (slice, ., .) over all its slices, plus
    ``margin`` pixels."""
    rows = np.nonzero(mask.any(axis=(0, 2)))[0]
    cols = np.nonzero(mask.any(axis=(0, 1)))[0]
    if rows.size == 0:
        return slice(0, 1), slice(0, 1)
    return (slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
            slice(max(cols[0] - margin, 0), cols[-1] + margin + 1))


def _slices_yx(a: np.ndarray, z0: int, z1: int) -> np.ndarray:
    """Slices ``z0:z1`` (third axis) of a 3-D array laid out (slice, y, x), C-contiguous:
    a free view of a Fortran-ordered (nibabel) array, a transposing copy otherwise."""
    return np.ascontiguousarray(a[:, :, z0:z1].T)


def is_integral(data: np.ndarray) -> bool:
    """True for an integer dtype, or floating-point values that are all whole numbers (a
    scanner's integer data converted to float), checked a block of slices at a time."""
    if data.dtype.kind in "iub":
        return True
    for z0 in range(0, data.shape[-1], CHUNK):
        block = data[..., z0:z0 + CHUNK]
        if not np.array_equal(block, np.floor(block)):
            return False
    return True


def mrqy_metrics(data: np.ndarray, fg_mask: np.ndarray | None = None, skip_first: bool = True,
                 integer: bool | None = None) -> dict[str, float]:
    """The 15 MRQy metrics, averaged over the slices along the third axis.

    Per slice (definitions of mrqy 0.0.3 with the fixes listed in the module docstring):
    MEAN = mean f; RNG = max f - min f; VAR = var f; CV = 100 std f / mean f;
    CPP = mean over the slice of F * k, k = [[-1/8]*3, [-1/8, 1, -1/8], [-1/8]*3] ('same'
    zero-padded convolution) = (3/8 sum of F on the border, corners excluded, + 5/8 sum of
    F on the 4 corners) / N; PSNR = 20 log10(max F / RMS(F - med5x5(F)));
    SNR1 = std f / std b; SNR2 = mean P_F / std b; SNR3 = mean P_F / std P_F;
    SNR4 = mean P_F / std P_B; CNR = mean(P_F - P_B) / std P_B; CVP = std P_F / mean P_F;
    CJV = (std f + std b) / |mean f - mean b|;
    EFC = sum_j x_j ln(x_j + 1e-16) / E_max, x = F / sqrt(sum F^2), E_max = sqrt(N) ln(1/sqrt(N));
    FBER = median(f^2) / median(b^2) (0 when median(b^2) < 1e-3); P_F, P_B = MRQy's 5x5
    patches of F, B (:func:`_patches`). Standard deviations are population (numpy) ones,
    as in MRQy.

    ``fg_mask``: a 3-D foreground; None (default) builds MRQy's per slice
    (:func:`mmrqa_bids.metrics.mrqy_foreground.foreground`), whose histograms need
    ``integer``: bin one grey level per bin, as scikit-image does for an integer-typed
    file (default: :func:`is_integral`).
    Slices are processed in blocks of :data:`CHUNK`, each laid out (slice, y, x) so that a
    Fortran-ordered volume (as nibabel loads it) is read in place.
    """
    if data.ndim != 3 or (fg_mask is not None and data.shape != fg_mask.shape):
        raise ValueError(f"mrqy metrics need a 3-D volume and a mask of the same shape, got "
                         f"{data.shape} and {None if fg_mask is None else fg_mask.shape}")
    start = 1 if skip_first else 0
    d = data[:, :, start:]
    if fg_mask is None and integer is None:
        integer = is_integral(d)
    if d.dtype != np.float32:
        d = d.astype(np.float32, order="K")
    m = None if fg_mask is None else fg_mask[:, :, start:]
    if m is not None and d.flags.f_contiguous and not m.flags.f_contiguous:
        m = np.asfortranarray(m)  # one copy, in the data's layout
    chunks = range(0, d.shape[2], CHUNK)
    if m is None:
        # MRQy's foreground: the thresholded slices' row extents block by block, then the
        # convex hulls of all slices at once.
        ext = [row_extents(thresholded(_slices_yx(d, z0, z0 + FG_CHUNK), bool(integer)))
               for z0 in range(0, d.shape[2], FG_CHUNK)]
        lo, hi = hull_rows(*(np.concatenate(e) for e in zip(*ext)), d.shape[0])
    parts = []
    for z0 in chunks:
        dz = _slices_yx(d, z0, z0 + CHUNK)
        mz = (fill_rows(lo[z0:z0 + CHUNK], hi[z0:z0 + CHUNK], d.shape[0]) if m is None
              else _slices_yx(m, z0, z0 + CHUNK))
        parts.append(_chunk_values(dz, mz, _bbox(mz, margin=3),
                                   integer if m is None and integer else None))
    per_slice = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    valid = per_slice.pop("valid").astype(bool)
    return {name: _nanmean(per_slice[name][valid]) for name in MRQY_NAMES}


_COUNTING_MAX = 16384  # integer-valued slices up to this value use a counting selection


def _order_statistics(a: np.ndarray, mask: np.ndarray, ranks: dict[str, np.ndarray],
                      integer: bool | None = None) -> dict[str, np.ndarray]:
    """Per row of ``a`` (n_rows, n_pixels; non-negative), the value of ascending rank
    ``ranks["f_lo"]`` etc. among the pixels where ``mask`` is True (keys ``f_*``) or False
    (keys ``b_*``); ranks are clipped to the row.

    Integer-valued rows (a scanner's int16 data; ``integer`` says so when known, else it is
    checked) below :data:`_COUNTING_MAX` are selected by counting (one ``bincount`` per block, linear time); other data by one sort per row, with
    keys |v| where ``mask`` and -|v| elsewhere (unmasked pixels first, by decreasing |v|).
    Both give the exact order statistics."""
    nrows, npix = a.shape
    rows = np.arange(nrows)
    n_f = np.count_nonzero(mask, axis=1)
    n_b = npix - n_f
    top = float(a.max()) if a.size else 0.0
    out = {}
    if top < _COUNTING_MAX and (integer if integer is not None
                                else np.array_equal(a, np.floor(a))):
        size = int(top) + 1
        key = a.astype(np.intp)
        key += mask * size
        key += (rows * (2 * size))[:, None]
        cum = np.cumsum(np.bincount(key.ravel(), minlength=nrows * 2 * size)
                        .reshape(nrows, 2, size), axis=2)
        for name, r in ranks.items():
            c = cum[:, 1 if name.startswith("f") else 0]
            n = n_f if name.startswith("f") else n_b
            k = np.clip(r, 0, np.maximum(n - 1, 0))
            out[name] = np.count_nonzero(c <= k[:, None], axis=1).astype(np.float64)
        return out
    srt = np.sort(np.where(mask, a, -a), axis=1)
    for name, r in ranks.items():
        if name.startswith("f"):
            idx = n_b + np.clip(r, 0, np.maximum(n_f - 1, 0))
        else:
            idx = n_b - 1 - np.clip(r, 0, np.maximum(n_b - 1, 0))
        out[name] = np.abs(srt[rows, np.clip(idx, 0, npix - 1)].astype(np.float64))
    return out


def _masked_medians_sq(values: np.ndarray, mask: np.ndarray, integer: bool | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``values`` (n_slices, n_pixels), median(v^2) over the pixels where ``mask``
    is True and over those where it is False (NaN for an empty set), exactly as
    ``numpy.median`` of the float64 squares: the middle one or two |v| of each set (|v| has
    the order of v^2) squared, and averaged for an even count."""
    n_f = np.count_nonzero(mask, axis=1)
    n_b = mask.shape[1] - n_f
    a = values if values.size and float(values.min()) >= 0 else np.abs(values)
    q = _order_statistics(a, mask, {
        "f_lo": (n_f - 1) // 2, "f_hi": n_f // 2, "b_lo": (n_b - 1) // 2, "b_hi": n_b // 2},
        integer)
    out = []
    for s, n in (("f", n_f), ("b", n_b)):
        lo, hi = q[s + "_lo"], q[s + "_hi"]
        med = np.where(n % 2 == 1, lo * lo, (lo * lo + hi * hi) / 2)
        out.append(np.where(n > 0, med, np.nan))
    return out[0], out[1]


def _chunk_values(d: np.ndarray, m: np.ndarray, box: tuple[slice, slice],
                  integer: bool | None = None) -> dict[str, np.ndarray]:
    """Per-slice MRQy values of a chunk of slices laid out (slice, y, x); ``integer``: the
    values are whole numbers (None: check)."""
    nz, ny, nx = d.shape
    npix = nx * ny
    axes = (1, 2)
    s_all = d.sum(axis=axes, dtype=np.float64)
    ss_all = np.einsum("ijk,ijk->i", d, d, dtype=np.float64)
    # Everything that involves F is computed in the in-plane bounding box of the foreground
    # (with a 3-pixel margin, so filters see the same zeros as on the whole slice).
    inplane = (slice(None),) + box
    db, mb = d[inplane], m[inplane]
    F = db * mb
    n_f = np.count_nonzero(mb, axis=axes).astype(np.float64)
    n_b = npix - n_f
    s_f = F.sum(axis=axes, dtype=np.float64)
    ss_f = np.einsum("ijk,ijk->i", F, F, dtype=np.float64)
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
    fg_min = np.min(db, axis=axes, where=mb, initial=big).astype(np.float64)
    # max over f is max F when the foreground is non-negative (magnitude images).
    fg_max = (peak if fg_min.min() >= 0 else
              np.max(db, axis=axes, where=mb, initial=-big).astype(np.float64))
    rng = fg_max - fg_min

    # CPP (MRQy): the zero-sum kernel cancels inside the slice; only the border is left,
    # with the weight of the kernel taps that fall outside it (3/8 on edges, 5/8 in corners).
    top, bottom = d[:, 0, :] * m[:, 0, :], d[:, -1, :] * m[:, -1, :]
    edge = (top.sum(axis=1, dtype=np.float64) + bottom.sum(axis=1, dtype=np.float64)
            + (d[:, 1:-1, 0] * m[:, 1:-1, 0]).sum(axis=1, dtype=np.float64)
            + (d[:, 1:-1, -1] * m[:, 1:-1, -1]).sum(axis=1, dtype=np.float64))
    corner = (top[:, 0] + top[:, -1] + bottom[:, 0] + bottom[:, -1]).astype(np.float64)
    cpp = (3.0 / 8.0 * edge + 2.0 / 8.0 * corner) / npix

    # PSNR against the (separable) 5x5 median of F itself, along x then y as MRQy's slice
    # axes; outside the box F = median = 0.
    med = median5(median5(F, 2), 1)
    med -= F
    mse = np.einsum("ijk,ijk->i", med, med, dtype=np.float64) / npix
    with np.errstate(divide="ignore", invalid="ignore"):
        psnr = 20.0 * np.log10(peak / np.sqrt(mse))

    pf, pb = _patches(F), _patches(d, mask=m)
    pf_mean, pf_std, pb_std = pf.mean(axis=1), pf.std(axis=1), pb.std(axis=1)

    # EFC per slice (F is 0 outside the foreground and adds nothing there).
    x = F * (1.0 / np.maximum(np.sqrt(ss_f), EPS)).astype(np.float32)[:, None, None]
    np.add(x, np.float32(EPS), out=med)
    np.log(med, out=med, where=mb)  # outside the foreground x = 0: no log needed
    ent = np.einsum("ijk,ijk->i", x, med, dtype=np.float64)
    e_max = np.sqrt(npix) * np.log(1.0 / np.sqrt(npix))
    efc = ent / e_max

    # FBER: medians of f^2 and b^2 per slice (exact); MRQy gives 0 where the air has none.
    med_f, med_b = _masked_medians_sq(d.reshape(nz, -1), m.reshape(nz, -1), integer)
    usable = valid & (n_f > 0) & (n_b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fber = np.where(usable, np.where(med_b < 1e-3, 0.0, med_f / np.where(usable, med_b, 1.0)),
                        np.nan)

    return {
        "valid": valid.astype(np.float64),
        "MEAN": mean_f, "RNG": rng, "VAR": var_f, "CV": 100.0 * _ratio(std_f, mean_f),
        "CPP": cpp, "PSNR": psnr, "SNR1": _ratio(std_f, std_b), "SNR2": _ratio(pf_mean, std_b),
        "SNR3": _ratio(pf_mean, pf_std), "SNR4": _ratio(pf_mean, pb_std),
        "CNR": _ratio((pf - pb).mean(axis=1), pb_std), "CVP": _ratio(pf_std, pf_mean),
        "CJV": _ratio(std_f + std_b, np.abs(mean_f - mean_b)), "EFC": efc, "FBER": fber,
    }
