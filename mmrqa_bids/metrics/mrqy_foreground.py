"""MRQy's per-slice foreground (mrqy 0.0.3 ``QCF.foreground``), for whole blocks of slices.

Per 2-D slice I (MRQy, with scikit-image's definitions):

1. t1 = Otsu(I); w1 = share of pixels with I > t1;
2. H = 255 equalize_hist(I) (the cumulative histogram of I read at each pixel);
   t2 = Otsu(H); w2 = share of pixels with H > t2;
3. N = w1 I + w2 H; the mask is the convex hull of the pixels with N > Otsu(N)
   (``skimage.morphology.convex_hull_image``: the hull of the pixels' edge midpoints, pixel
   centres on its boundary included).

Histograms follow scikit-image: an integer-typed slice gets one bin per integer from its
minimum to its maximum, a floating-point one 256 equal bins over [min, max]; Otsu's
threshold is the centre of the bin maximising w0 w1 (mu0 - mu1)^2 (counts in float32, as
scikit-image casts them), and a constant slice is its own threshold.

Here the slices of a block are processed together. For integer data H and N are functions
of the grey level alone (both non-decreasing in it), so the three thresholds come from one
``bincount`` of the block and the mask before the hull is ``I >= v*`` per slice: two passes
over the pixels. The convex hull is found from the edge midpoints of the first and
last pixel of every row (the hull of those is the hull of all) as two convex chains, for all
slices at once (:func:`hull_fill`).
"""
from __future__ import annotations

import numpy as np

NBINS = 256


def otsu_rows(counts: np.ndarray, centers: np.ndarray, n_bins: np.ndarray) -> np.ndarray:
    """Otsu's threshold of each row of a histogram (``skimage.filters.threshold_otsu``).

    ``counts``/``centers``: (n, B) bin counts and centres; row i uses its first
    ``n_bins[i]`` bins (the rest are padding). variance(k) = W1(k) W2(k+1) (M1(k) -
    M2(k+1))^2 with W1, M1 the weight and mean of bins <= k and W2, M2 those of bins > k;
    threshold = centre of the first maximising k. A row with one bin returns that bin's
    centre (scikit-image returns the value of a constant image).
    """
    c = counts.astype(np.float32)
    w1 = np.cumsum(c, axis=1)
    w2 = np.cumsum(c[:, ::-1], axis=1)[:, ::-1]
    cm = c * centers
    with np.errstate(divide="ignore", invalid="ignore"):
        m1 = np.cumsum(cm, axis=1) / w1
        m2 = np.cumsum(cm[:, ::-1], axis=1)[:, ::-1] / w2
        var = (w1[:, :-1] * w2[:, 1:]) * (m1[:, :-1] - m2[:, 1:]) ** 2
    if var.shape[1] == 0:  # #22: every row one bin (a chunk of empty slices, skull-stripped)
        return centers[:, 0]
    k = np.arange(var.shape[1])
    var = np.where((k[None, :] < (n_bins - 1)[:, None]) & np.isfinite(var), var, -np.inf)
    idx = np.argmax(var, axis=1)
    idx = np.where(n_bins > 1, idx, 0)
    return centers[np.arange(len(idx)), idx]


def _hist256(values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``values`` (n, m), ``numpy.histogram(row, 256, (lo, hi))``: counts (n, 256;
    weighted by ``weights`` when given), bin centres (n, 256) and each value's bin (n, m).
    A row with lo == hi uses numpy's range (lo - 0.5, hi + 0.5)."""
    n = values.shape[0]
    lo = lo.astype(np.float64)
    hi = hi.astype(np.float64)
    flat = lo == hi
    lo, hi = np.where(flat, lo - 0.5, lo), np.where(flat, hi + 0.5, hi)
    edges = np.linspace(lo, hi, NBINS + 1, axis=1)  # (n, 257)
    scale = NBINS / (hi - lo)
    idx = ((values - lo[:, None]) * scale[:, None]).astype(np.intp)
    np.clip(idx, 0, NBINS - 1, out=idx)
    # numpy's correction of values that the multiplication put in a neighbouring bin
    rows = np.arange(n)[:, None]
    idx -= values < edges[rows, idx]
    idx += (values >= edges[rows, idx + 1]) & (idx != NBINS - 1)
    key = (idx + NBINS * rows).ravel()
    counts = np.bincount(key, weights=None if weights is None else weights.ravel(),
                         minlength=n * NBINS).reshape(n, NBINS)
    centers = (edges[:, :-1] + edges[:, 1:]) / 2
    return counts, centers, idx


def _thresholds_integer(v: np.ndarray) -> np.ndarray:
    """The grey level v* per row of integer-valued ``v`` (n, m) from which on (v >= v*)
    MRQy's thresholded image N > Otsu(N) holds (see the module docstring); max + 1 where
    no pixel does."""
    n, m = v.shape
    lo = v.min(axis=1).astype(np.int64)
    hi = v.max(axis=1).astype(np.int64)
    size = int((hi - lo).max()) + 1
    rows = np.arange(n)
    key = v.astype(np.int64)
    key += (rows * size - lo)[:, None]  # (v - lo) + row * size, in place
    hist = np.bincount(key.ravel(), minlength=n * size).reshape(n, size)
    levels = lo[:, None] + np.arange(size)[None, :]  # grey level of each bin
    n_bins = hi - lo + 1
    present = hist > 0
    t1 = otsu_rows(hist, levels, n_bins)
    w1 = np.where(levels > t1[:, None], hist, 0).sum(axis=1) / m
    # H per grey level: 255 cdf (float64, as equalize_hist gives for integer input)
    h = 255.0 * (np.cumsum(hist, axis=1) / m)
    h_lo = np.where(present, h, np.inf).min(axis=1)
    h_hi = np.where(present, h, -np.inf).max(axis=1)
    h_counts, h_centers, _ = _hist256(h, h_lo, h_hi, weights=hist)
    t2 = otsu_rows(h_counts, h_centers, np.where(h_lo == h_hi, 1, NBINS))
    t2 = np.where(h_lo == h_hi, h_lo, t2)
    w2 = np.where(h > t2[:, None], hist, 0).sum(axis=1) / m
    new = w1[:, None] * levels + w2[:, None] * h
    n_lo = np.where(present, new, np.inf).min(axis=1)
    n_hi = np.where(present, new, -np.inf).max(axis=1)
    n_counts, n_centers, _ = _hist256(new, n_lo, n_hi, weights=hist)
    t3 = otsu_rows(n_counts, n_centers, np.where(n_lo == n_hi, 1, NBINS))
    t3 = np.where(n_lo == n_hi, n_lo, t3)
    above = present & (new > t3[:, None])
    first = np.argmax(above, axis=1)
    return np.where(above.any(axis=1), lo + first, hi + 1)


def _threshold_float(v: np.ndarray) -> np.ndarray:
    """MRQy's N > Otsu(N) per row of floating-point ``v`` (n, m), 256-bin histograms."""
    n, m = v.shape
    v = v.astype(np.float64)
    lo, hi = v.min(axis=1), v.max(axis=1)
    counts, centers, idx = _hist256(v, lo, hi)
    t1 = np.where(lo == hi, lo, otsu_rows(counts, centers, np.full(n, NBINS)))
    w1 = np.count_nonzero(v > t1[:, None], axis=1) / m
    # equalize_hist: cdf of the 256-bin histogram, linearly interpolated at each value
    cdf = np.cumsum(counts, axis=1) / m
    with np.errstate(divide="ignore", invalid="ignore"):  # constant rows: h = 1 below
        pos = (v - centers[:, :1]) / ((hi - lo) / NBINS)[:, None]
        k = np.clip(np.floor(pos), 0, NBINS - 2).astype(np.intp)
        frac = np.clip(pos - k, 0.0, 1.0)
    rows = np.arange(n)[:, None]
    h = cdf[rows, k] * (1 - frac) + cdf[rows, k + 1] * frac
    h = np.where((hi == lo)[:, None], 1.0, h)
    h = h * 255
    h_lo, h_hi = h.min(axis=1), h.max(axis=1)
    hc, hcen, _ = _hist256(h, h_lo, h_hi)
    t2 = np.where(h_lo == h_hi, h_lo, otsu_rows(hc, hcen, np.full(n, NBINS)))
    w2 = np.count_nonzero(h > t2[:, None], axis=1) / m
    new = w1[:, None] * v + w2[:, None] * h
    n_lo, n_hi = new.min(axis=1), new.max(axis=1)
    nc, ncen, _ = _hist256(new, n_lo, n_hi)
    t3 = np.where(n_lo == n_hi, n_lo, otsu_rows(nc, ncen, np.full(n, NBINS)))
    return new > t3[:, None]


def thresholded(slices: np.ndarray, integer: bool) -> np.ndarray:
    """MRQy's binary image (N > Otsu(N), before the hull) of each slice of ``slices``
    (n_slices, a, b); ``integer``: bin as an integer-typed image (one bin per grey level)."""
    n = slices.shape[0]
    flat = slices.reshape(n, -1)
    if integer:
        vstar = _thresholds_integer(flat)
        if slices.dtype.kind == "f":  # grey levels are exact in float32 up to 2^24
            vstar = vstar.astype(slices.dtype)
        return slices >= vstar[:, None, None]
    return _threshold_float(flat).reshape(slices.shape)


def _convex_minorant(x: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per row of ``x`` (n, U; integers, read where ``present``), the points that are
    vertices of the greatest convex function below them (positions are the column indices).

    Points on or above the chord between their alive neighbours are not vertices; all of
    them are dropped at once, and the pass is repeated until none is left (every pass is a
    few array operations over all rows). Chords between points 1, 2, 4, ... positions away
    on either side prune most points first."""
    n, u = x.shape
    idx = np.arange(u)
    alive = present.copy()
    # First, at once for every point: on or above the chord of two points k positions away
    # on either side (any two points of the set bound the function from above).
    k = 1
    while 2 * k < u:
        both = present[:, :-2 * k] & present[:, 2 * k:]
        alive[:, k:-k] &= ~(both & (2 * x[:, k:-k] >= x[:, :-2 * k] + x[:, 2 * k:]))
        k *= 2
    while True:
        p = np.maximum.accumulate(np.where(alive, idx, -1), axis=1)
        q = np.minimum.accumulate(np.where(alive, idx, u)[:, ::-1], axis=1)[:, ::-1]
        prev = np.concatenate([np.full((n, 1), -1), p[:, :-1]], axis=1)
        nxt = np.concatenate([q[:, 1:], np.full((n, 1), u)], axis=1)
        cand = alive & (prev >= 0) & (nxt < u)
        pc, qc = np.clip(prev, 0, u - 1), np.clip(nxt, 0, u - 1)
        xp = np.take_along_axis(x, pc, axis=1)
        xq = np.take_along_axis(x, qc, axis=1)
        drop = cand & ((x - xp) * (qc - pc) >= (xq - xp) * (idx - pc))
        if not drop.any():
            return alive
        alive &= ~drop


def _chain_at(x: np.ndarray, alive: np.ndarray, at: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The piecewise-linear chain through the ``alive`` points of each row of ``x``, at the
    positions ``at``: numerator and denominator of its value (an exact fraction of
    integers), and whether the position lies within the chain's extent."""
    n, u = x.shape
    idx = np.arange(u)
    p = np.maximum.accumulate(np.where(alive, idx, -1), axis=1)[:, at]
    q = np.minimum.accumulate(np.where(alive, idx, u)[:, ::-1], axis=1)[:, ::-1][:, at]
    inside = (p >= 0) & (q < u)
    pc, qc = np.clip(p, 0, u - 1), np.clip(q, 0, u - 1)
    xp = np.take_along_axis(x, pc, axis=1)
    xq = np.take_along_axis(x, qc, axis=1)
    den = np.maximum(qc - pc, 1)
    num = xp * den + (xq - xp) * (at[None, :] - pc)
    return num, den, inside


def row_extents(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slice and row of ``binary`` (n, a, b): whether the row has a True pixel, and the
    columns of its first and last one (what the convex hull depends on)."""
    nb = binary.shape[2]
    has = binary.any(axis=2)
    first = np.argmax(binary, axis=2).astype(np.int64)
    last = nb - 1 - np.argmax(binary[:, :, ::-1], axis=2).astype(np.int64)
    return has, first, last


def hull_rows(has: np.ndarray, first: np.ndarray, last: np.ndarray, nb: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per slice and row, the first and last column (inclusive; lo > hi when empty) of the
    convex hull of the edge midpoints of the pixels described by :func:`row_extents`.

    On a grid of half rows (doubled coordinates, so that every point is an integer), the
    hull's left edge is the greatest convex function below the leftmost edge midpoints of
    each half row, and its right edge the least concave one above the rightmost; a pixel
    row keeps the columns between the two (exact integer arithmetic)."""
    n, na = has.shape
    big = np.int64(4 * (nb + 2))
    u = 2 * na + 1  # position 2r + 1: pixel row r; 2r: the half row between rows r - 1, r
    left = np.full((n, u), big)
    right = np.full((n, u), -big)
    left[:, 1::2] = np.where(has, 2 * first - 1, big)  # (r, c0 - 1/2), doubled
    right[:, 1::2] = np.where(has, 2 * last + 1, -big)
    c0 = np.where(has, 2 * first, big)  # (r +- 1/2, c0), doubled
    c1 = np.where(has, 2 * last, -big)
    left[:, 0:-1:2] = np.minimum(left[:, 0:-1:2], c0)
    left[:, 2::2] = np.minimum(left[:, 2::2], c0)
    right[:, 0:-1:2] = np.maximum(right[:, 0:-1:2], c1)
    right[:, 2::2] = np.maximum(right[:, 2::2], c1)
    rows_at = np.arange(1, u, 2)
    num_l, den_l, in_l = _chain_at(left, _convex_minorant(left, left < big), rows_at)
    num_r, den_r, in_r = _chain_at(-right, _convex_minorant(-right, right > -big), rows_at)
    # c >= num_l / (2 den_l) and c <= -num_r / (2 den_r)
    lo = np.where(in_l, -((-num_l) // (2 * den_l)), nb)
    hi = np.where(in_r, (-num_r) // (2 * den_r), -1)
    return lo, hi


def fill_rows(lo: np.ndarray, hi: np.ndarray, nb: int) -> np.ndarray:
    """The mask (n, a, nb) that is True from column ``lo`` to ``hi`` of each row."""
    cols = np.arange(nb)
    return (cols >= lo[:, :, None]) & (cols <= hi[:, :, None])


def hull_fill(binary: np.ndarray) -> np.ndarray:
    """``skimage.morphology.convex_hull_image`` of each slice of ``binary`` (n, a, b):
    pixels whose centre lies in or on the convex hull of the edge midpoints of the True
    pixels (:func:`hull_rows`); an empty slice gives an empty mask."""
    nb = binary.shape[2]
    return fill_rows(*hull_rows(*row_extents(binary), nb), nb)


def foreground(slices: np.ndarray, integer: bool) -> np.ndarray:
    """MRQy's foreground mask of each 2-D slice of ``slices`` (n_slices, a, b)."""
    return hull_fill(thresholded(slices, integer))
