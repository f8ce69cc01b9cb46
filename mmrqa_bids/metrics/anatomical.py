"""Volume-wise (3-D) image quality metrics of a structural volume (pure numpy; no file I/O).

Names and definitions follow MRIQC (Esteban et al., PLoS One 2017, doi:10.1371/journal.pone.
0184661) where they match; deviations are stated in each docstring. ``fg`` = voxels in the
head mask, ``bg`` (air) = voxels farther than a margin from the head and not exactly zero.
Every metric marked scale-free is invariant to a positive gain on the intensities.

Fed the same image, masks and tissue labels, MRIQC 24.0.2's own functions
(``mriqc/qc/anatomical.py``) give the same snr_*, cnr, cjv, efc, fber, wm2max, qi_1, icvs_*
and summary_* within 1% on real heads (benchmarks/metrics_vs_mrqy.py). Where the values
differ, it is on purpose:

- snrd_*: the air's noise is its median / sqrt(2 ln 2) (Rayleigh), not MRIQC's
  0.655 x 1.4826 MAD of the air (:func:`rayleigh_sigma`);
- fber: -1 only when the air's median is 0, not below 1e-3 in the image's units;
- the inputs differ: the masks and hard tissue classes are mmrqa's own (no template
  registration, no FSL FAST partial volumes, hence no rpve), the image is not
  N4-corrected first, fwhm_* is a first-difference estimate (not AFNI's 3dFWHMx), inu_*
  come from a polynomial field (or N4 on a 6 mm copy), and qi_1's artifact mask is found
  in the air by median + 5 MAD and an opening.
"""
from __future__ import annotations

import numpy as np

from mmrqa_bids.metrics.inu import n4_field
from mmrqa_bids.metrics.masks import Masks, bounding_box, opening
from mmrqa_bids.metrics.tissues import TISSUE_CODES, TISSUES, brain_box, classify, fit_tissues

EPS = 1e-16
#: sqrt(2 ln 2): median of a unit Rayleigh distribution (the air of a magnitude image).
RAYLEIGH_MEDIAN = float(np.sqrt(2.0 * np.log(2.0)))
_MAX_STAT_VOXELS = 250_000
_CHUNK = 1 << 18  # voxels per block in whole-volume reductions
NAN = float("nan")
#: Bias-field estimators for ``inu_med``/``inu_range`` (see :func:`anatomical_metrics`).
INU_METHODS = ("polynomial", "n4")


def _subsample(values: np.ndarray, limit: int = _MAX_STAT_VOXELS) -> np.ndarray:
    """A deterministic, evenly strided subset of at most ~``limit`` values."""
    step = max(1, values.size // limit)
    return values[::step]


def _moments(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and central moments m2, m4 of all ``values`` (float64, in cache-sized blocks)."""
    v = values.ravel()
    n = v.size
    blocks = range(0, n, _CHUNK)
    mean = sum(float(v[i:i + _CHUNK].sum(dtype=np.float64)) for i in blocks) / n
    m2 = m4 = 0.0
    for i in blocks:
        d = v[i:i + _CHUNK].astype(np.float64) - mean
        d *= d
        m2 += float(d.sum())
        m4 += float(np.dot(d, d))
    return mean, m2 / n, m4 / n


def order_statistics(values: np.ndarray, ranks: list[int]) -> list[float]:
    """The values of ascending rank ``ranks`` (0-based) among ``values``, exactly: by
    counting for whole numbers in [0, 2^16) (a scanner's integers), by a partition
    otherwise."""
    a = values.ravel()
    lo = float(a.min())
    if lo >= 0 and float(a.max()) < 65536 and np.array_equal(a, np.floor(a)):
        cum = np.cumsum(np.bincount(a.astype(np.intp)))
        return [float(np.searchsorted(cum, r, side="right")) for r in ranks]
    part = np.partition(a, sorted(set(ranks)))
    return [float(part[r]) for r in ranks]


def quantiles(values: np.ndarray, probs: tuple[float, ...]) -> list[float]:
    """Quantiles as statsmodels' ``DescrStatsW.quantile`` gives them with unit weights (SAS
    definition 5, numpy's ``averaged_inverted_cdf``), which MRIQC's ``summary_stats`` uses:
    with y_1 <= ... <= y_n and g = p n, y_(floor g + 1), or (y_g + y_(g+1)) / 2 when g is a
    whole number."""
    n = values.size
    picks = []
    for p in probs:
        g = p * n
        j = int(np.floor(g))
        picks.append((j - 1, j) if g == j and 0 < j < n else (min(j, n - 1),) * 2)
    stats = dict(zip(sorted({r for pk in picks for r in pk}),
                     order_statistics(values, sorted({r for pk in picks for r in pk}))))
    return [(stats[a] + stats[b]) / 2.0 for a, b in picks]


def summary_stats(values: np.ndarray) -> dict[str, float]:
    """MRIQC's ``summary_*`` statistics of a region.

    mean, median, stdv (population), mad = 1.4826 median|x - median| (consistent with the
    standard deviation for Gaussian data; statsmodels' ``mad`` as MRIQC uses it), p05/p95
    (:func:`quantiles`, MRIQC's definition), k = excess kurtosis m4 / m2^2 - 3 (scipy's
    ``kurtosis``), n = number of voxels. All but mad use every voxel (the air's kurtosis
    rests on its few bright voxels); in regions over 250,000 voxels mad is read on an evenly
    strided subset.
    """
    n = int(values.size)
    if n == 0:
        return {"mean": NAN, "median": NAN, "stdv": NAN, "mad": NAN, "p05": NAN, "p95": NAN,
                "k": NAN, "n": 0.0}
    p05, median, p95 = quantiles(values, (0.05, 0.5, 0.95))
    mean, m2, m4 = _moments(values)
    v = _subsample(values).astype(np.float64)
    return {
        "mean": float(mean), "median": float(median), "stdv": float(np.sqrt(m2)),
        "mad": float(1.4826 * np.median(np.abs(v - median))),
        "p05": float(p05), "p95": float(p95),
        "k": float(m4 / (m2 * m2) - 3.0) if m2 > 0 else NAN, "n": float(n),
    }


def snr1_volume(fg: np.ndarray, air: np.ndarray) -> float:
    """MRQy's SNR1 over the whole volume: std(fg) / std(air) (``snr1``; the slice-averaged
    MRQy value is ``mrqy_SNR1``). Scale-free."""
    sd_air = float(np.std(air)) if air.size else 0.0
    return float(np.std(fg) / sd_air) if sd_air > 0 else NAN


def snr(mu: float, sigma: float, n: float) -> float:
    """Tissue SNR (MRIQC ``snr_*``): mu / (sigma sqrt(n / (n - 1))); scale-free."""
    if n < 2 or sigma <= 0:
        return NAN
    return float(mu / (sigma * np.sqrt(n / (n - 1.0))))


def rayleigh_sigma(air: np.ndarray) -> float:
    """Noise sigma of a magnitude image from its air: median(air) / sqrt(2 ln 2).

    Air in a magnitude image is Rayleigh-distributed with median sigma sqrt(2 ln 2); the
    median makes the estimate robust to ghosts and other artifacts covering < 50% of the air.
    """
    if air.size == 0:
        return NAN
    return float(np.median(_subsample(air)) / RAYLEIGH_MEDIAN)


def snr_dietrich(mu: float, sigma_air: float) -> float:
    """Background-based SNR (Dietrich et al., JMRI 2007; MRIQC ``snrd_*``): mu / sigma_air.

    sigma_air is the Gaussian noise level estimated from the Rayleigh air
    (:func:`rayleigh_sigma`), where MRIQC scales the air MAD by sqrt(2 / (4 - pi)).
    """
    if not sigma_air > 0:
        return NAN
    return float(mu / sigma_air)


def cnr(mu_wm: float, mu_gm: float, sd_air: float, sd_wm: float, sd_gm: float) -> float:
    """Contrast-to-noise ratio (MRIQC): |mu_wm - mu_gm| / sqrt(sd_air^2 + sd_wm^2 + sd_gm^2)."""
    den = np.sqrt(sd_air ** 2 + sd_wm ** 2 + sd_gm ** 2)
    return float(abs(mu_wm - mu_gm) / den) if den > 0 else NAN


def cjv(mu_wm: float, mu_gm: float, sd_wm: float, sd_gm: float) -> float:
    """Coefficient of joint variation (Ganzetti et al., Front Neuroinform 2016; MRIQC):
    (sd_wm + sd_gm) / |mu_wm - mu_gm|. Lower is better; scale-free."""
    den = abs(mu_wm - mu_gm)
    return float((sd_wm + sd_gm) / den) if den > 0 else NAN


def efc(data: np.ndarray) -> float:
    """Entropy focus criterion (Atkinson et al., IEEE TMI 1997), normalised as in MRIQC.

    x_j = v_j / B_max with B_max = sqrt(sum_k v_k^2);  E = -sum_j x_j ln(x_j + 1e-16);
    EFC = E / E_max, E_max = -N (1 / sqrt N) ln(1 / sqrt N) = sqrt(N) ln sqrt(N): 0 when all
    energy is in one voxel, 1 when it is spread evenly. Higher = more blur/ghosting.
    """
    v = data.astype(np.float32, copy=False).ravel(order="K")  # memory order: no copy
    n = v.size
    chunks = range(0, n, _CHUNK)
    energy = sum(float(np.dot(np.abs(v[i:i + _CHUNK]), np.abs(v[i:i + _CHUNK]))) for i in chunks)
    if energy == 0:
        return NAN
    scale = np.float32(1.0 / np.sqrt(energy))
    e = 0.0
    for i in chunks:  # cache-sized blocks: no full-size temporaries
        x = np.abs(v[i:i + _CHUNK]) * scale
        e -= float(np.dot(x, np.log(x + np.float32(EPS))))
    e_max = np.sqrt(n) * np.log(np.sqrt(n))
    return float(e / e_max)


def median_of_squares(values: np.ndarray) -> float:
    """numpy's median of values^2 in float64, exactly: from the middle one or two |v| (|v|
    has the order of v^2, :func:`order_statistics`)."""
    a = np.abs(values.ravel())
    lo, hi = order_statistics(a, [(a.size - 1) // 2, a.size // 2])
    return (lo * lo + hi * hi) / 2.0


def fber(fg: np.ndarray, bg: np.ndarray) -> float:
    """Foreground-background energy ratio (Shehzad et al. 2015; MRIQC, MRQy):
    median(|fg|^2) / median(|bg|^2), in float64 (MRQy squares int16 in place and overflows).
    Returns -1 when the air has no energy (median 0: zero-filled background). MRIQC returns
    -1 below 1e-3 in the image's own units, which would depend on the intensity scale (a
    volume scaled to [0, 1] has its air median squared below 1e-3): the one departure."""
    if fg.size == 0 or bg.size == 0:
        return NAN
    bg_mu = median_of_squares(bg)
    return median_of_squares(fg) / bg_mu if bg_mu > 0 else -1.0


def top_quantile(data: np.ndarray, fraction: float = 0.0005) -> float:
    """``numpy.percentile(data, 100 (1 - fraction))`` (P99.95 by default; linear
    interpolation between the two order statistics around rank (1 - fraction)(N - 1)),
    found among the candidates above the P99.5 of an evenly strided subset (exact unless
    the subset misjudges the tail, in which case the full percentile is computed). The
    volume is read in memory order (no copy); the result does not depend on that order."""
    flat = data.ravel(order="K")
    pos = (1.0 - fraction) * (flat.size - 1)
    k = int(np.floor(pos))
    t0 = float(np.percentile(flat[:: max(1, flat.size // 200_000)], 100 * (1 - 10 * fraction)))
    cand = np.concatenate([c[c > t0] for c in (flat[i:i + _CHUNK]
                                               for i in range(0, flat.size, _CHUNK))])
    below = flat.size - cand.size  # rank of the first candidate
    if k < below or cand.size < 2:
        return float(np.percentile(flat, 100 * (1 - fraction)))
    j = min(k - below, cand.size - 1)
    j1 = min(j + 1, cand.size - 1)
    part = np.partition(cand, [j, j1])
    a, b = float(part[j]), float(part[j1])
    return a + (pos - k) * (b - a)


def wm2max(data: np.ndarray, mu_wm: float) -> float:
    """White-matter to maximum intensity ratio (MRIQC): median(WM) / P99.95(image)."""
    top = top_quantile(data)
    return float(mu_wm / top) if top > 0 else NAN


def qi_1_masks(small: np.ndarray, background_small: np.ndarray, z: float = 5.0
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """The air without artifacts and the artifact mask of :func:`qi_1` (None when the air is
    too small to tell)."""
    air = small[background_small]
    if air.size < 100:
        return None
    med = float(np.median(air))
    mad = 1.4826 * float(np.median(np.abs(air - med)))
    if mad <= 0:
        return background_small, np.zeros(small.shape, bool)
    art = background_small & (small > med + z * mad)
    art = opening(art)
    return background_small & ~art, art


def qi_1(small: np.ndarray, background_small: np.ndarray, z: float = 5.0) -> float:
    """Mortamet's QI1 (MRM 2009; MRIQC ``qi_1``): the fraction of air voxels that are artifact,
    art / (air without artifacts + art), as MRIQC's ``art_qi1``.

    On the block-averaged grid (noise averaged down), air voxels brighter than
    median + ``z`` * 1.4826 MAD of the air are candidates; a binary opening (6-connected)
    removes isolated noise voxels, leaving structured artifacts (ghosts, motion ripples,
    wrap-around). MRIQC finds its artifact mask differently (an opening of the air's
    upper tail after a hat-shaped air mask from a template registration). Scale-free; ~0 for
    pure noise.
    """
    masks = qi_1_masks(small, background_small, z)
    if masks is None:
        return NAN
    clean, art = masks
    n_art = np.count_nonzero(art)
    return float(n_art / (np.count_nonzero(clean) + n_art))


def fov_edge(head: np.ndarray) -> float:
    """Share of the in-plane field-of-view faces covered by the head: max over the x and y
    axes of mean(head on the two faces normal to that axis).

    0 when air surrounds the head in-plane. A field of view shorter than the head along the
    phase-encoding axis folds the head's tails onto both faces along it (wrap-around,
    :func:`mmrqa_bids.artifacts.wrap_around`), so the head fills them. The z faces are left
    out: a field of view that cuts the neck or the vertex is common and harmless.
    """
    if head.ndim != 3 or not head.any():
        return NAN
    shares = []
    for axis in (0, 1):
        faces = np.take(head, [0, head.shape[axis] - 1], axis=axis)
        shares.append(float(faces.mean()))
    return max(shares)


def _neighbours(axis: int, ndim: int = 3) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Index pair (a, b) such that ``x[a]`` and ``x[b]`` are neighbours along ``axis``."""
    a, b = [slice(None)] * ndim, [slice(None)] * ndim
    a[axis], b[axis] = slice(1, None), slice(None, -1)
    return tuple(a), tuple(b)


def _within(mask: np.ndarray, axis: int, steps: int) -> np.ndarray:
    """Voxels with a True of ``mask`` within ``steps`` voxels along ``axis`` (either side):
    out(v) = OR_{|k| <= steps} mask(v + k e_axis), False beyond the array (a 1-D maximum
    filter of width 2 steps + 1, by in-place ORs of shifted views)."""
    out = mask.copy()
    n = mask.shape[axis]
    for k in range(1, min(steps, n - 1) + 1):
        for dst, src in ((slice(k, None), slice(None, n - k)),
                         (slice(None, n - k), slice(k, None))):
            a, b = [slice(None)] * mask.ndim, [slice(None)] * mask.ndim
            a[axis], b[axis] = dst, src
            np.logical_or(out[tuple(a)], mask[tuple(b)], out=out[tuple(a)])
    return out


def head_edge(data: np.ndarray, head: np.ndarray, air_level: float, z_stride: int = 1) -> float:
    """Sharpness of the head's outline in-plane (scale-free; mmrqa's own, for blur).

    head_edge = P95 |I(v) - I(v + e_a)| / (P90(I over the rim) - air_level), where the pairs
    (v, v + e_a), a in {x, y}, lie within 2 voxels of the head mask's edge on both sides, the
    rim is the head voxels within 2 in-plane voxels of the air, and ``air_level`` is the
    air's median. A step from air to tissue gives 1; a Gaussian point-spread function of
    std s voxels lowers the steepest one-voxel step to Phi(1/2s) - Phi(-1/2s) of the
    height (0.38 at s = 1).
    Unlike ``fwhm_*``, which mixes the blur with the anatomy's own smoothness (a textured
    real head measures sharper than the template), it reads one edge that every head has:
    skin against air. Every ``z_stride``-th axial slice is used (the measure is in-plane).
    """
    head = head[:, :, ::z_stride]
    box = bounding_box(head, margin=3) if head.ndim == 3 else None
    if box is None or head.all():
        return NAN
    data, head = data[:, :, ::z_stride][box], head[box]
    air = ~head
    near_air = _within(air, 0, 2) | _within(air, 1, 2)
    rim = head & near_air
    height = float(np.percentile(data[rim], 90)) - air_level
    if not height > 0:
        return NAN
    band = near_air & (_within(head, 0, 2) | _within(head, 1, 2))
    steps = []
    for axis in (0, 1):
        a, b = _neighbours(axis)
        pair = band[a] & band[b]
        steps.append(np.abs(data[a][pair].astype(np.float64) - data[b][pair]))
    return float(np.percentile(np.concatenate(steps), 95) / height)


def fwhm(data: np.ndarray, mask: np.ndarray, zooms: tuple[float, float, float] = (1.0, 1.0, 1.0),
         stride: int = 2, box: tuple[slice, ...] | None = None) -> tuple[float, float, float]:
    """Smoothness per axis from first differences (Forman et al., MRM 1995; AFNI 3dFWHMx
    classic estimator, MRIQC ``fwhm_*``), in mm.

    For a Gaussian-smoothed field the lag-1 autocorrelation is r = 1 - var(dx) / (2 var(x))
    and FWHM = dx sqrt(-2 ln 2 / ln r). Variances over pairs of neighbours inside ``mask``;
    the two other axes are sampled every ``stride`` voxels to save time. ``box`` (slices
    with explicit start/stop holding every True voxel of ``mask``) confines the work to it;
    its starts are moved down to multiples of ``stride``, so that the same voxels are
    sampled, in the same order: the same values.
    """
    if box is not None:
        box = tuple(slice(b.start // stride * stride, b.stop) for b in box)
        data, mask = data[box], mask[box]
    out = []
    for axis in range(3):
        sl = [slice(None, None, stride)] * 3
        sl[axis] = slice(None)
        d = data[tuple(sl)]
        m = mask[tuple(sl)]
        a, b = _neighbours(axis)
        pair = m[a] & m[b]
        x = d[a][pair].astype(np.float64)
        dx = x - d[b][pair]
        var_x = x.var()
        if x.size < 10 or var_x <= 0:
            out.append(NAN)
            continue
        r = 1.0 - dx.var() / (2.0 * var_x)
        out.append(float(zooms[axis] * np.sqrt(-2.0 * np.log(2.0) / np.log(r)))
                   if 0 < r < 1 else NAN)
    return out[0], out[1], out[2]


def inu_stats(field_small: np.ndarray, brain_small: np.ndarray) -> tuple[float, float]:
    """INU summaries (MRIQC ``inu_med``, ``inu_range``): median and P95 - P5 of the
    multiplicative bias field over the brain (field normalised to mean 1 over the brain)."""
    v = field_small[brain_small]
    if v.size == 0:
        return NAN, NAN
    p05, p50, p95 = np.percentile(v, [5, 50, 95])
    return float(p50), float(p95 - p05)


def anatomical_metrics(data: np.ndarray, masks: Masks, suffix: str = "T1w",
                       zooms: tuple[float, float, float] = (1.0, 1.0, 1.0),
                       return_tissues: bool = False, inu: str = "polynomial"):
    """Every volume-wise MRIQC-style metric of a structural 3-D volume (a dict), and with
    ``return_tissues`` also the tissue label map (:data:`~mmrqa_bids.metrics.tissues.
    TISSUE_CODES`; None when no brain could be classified).

    ``inu``: the bias field behind ``inu_med``/``inu_range``: ``"polynomial"`` (default, the
    quadratic log-field fitted with the tissue classes) or ``"n4"`` (SimpleITK's N4 on a
    6 mm copy, :func:`mmrqa_bids.metrics.inu.n4_field`; 0.15-0.45 s more). The tissue classes
    use the polynomial field either way.

    As in MRIQC, tissue SNR and CNR use the tissue median and standard deviation, CJV the
    median and MAD, and the air's standard deviation enters the CNR."""
    if inu not in INU_METHODS:
        raise ValueError(f"unknown INU method {inu!r}; expected one of {INU_METHODS}")
    # A C-ordered copy when ``data`` is Fortran-ordered (as nibabel loads it): the masks are
    # C-ordered, and boolean selections (whose values come in C order whatever the layout)
    # and the neighbour passes below read it contiguously. efc and wm2max read ``data``
    # itself (in memory order).
    cdata = np.ascontiguousarray(data)
    # Every voxel of the head and the air (MRIQC's fber and summary_bg_* use them all).
    fg = cdata[masks.head]
    air = cdata[masks.background]
    out: dict[str, float] = {}
    stats = {"bg": summary_stats(air)}
    labels = None
    model = fit_tissues(masks.small, masks.brain_small, suffix)
    if model is not None:
        labels, _, data_box, labels_box = classify(cdata, masks.brain_small, model,
                                                   masks.factor)
        for t in TISSUES:
            stats[t] = summary_stats(data_box[labels_box == TISSUE_CODES[t]])
        field = model.field_small
        if inu == "n4":
            spacing = tuple(float(z) * masks.factor for z in zooms)
            field = n4_field(masks.small, masks.brain_small, spacing)  # type: ignore[arg-type]
        out["inu_med"], out["inu_range"] = (inu_stats(field, masks.brain_small)
                                            if field is not None else (NAN, NAN))
    else:
        for t in TISSUES:
            stats[t] = summary_stats(np.empty(0, np.float32))
        out["inu_med"] = out["inu_range"] = NAN
    sigma_air = rayleigh_sigma(air)
    for t in TISSUES:
        s = stats[t]
        out[f"snr_{t}"] = snr(s["median"], s["stdv"], s["n"])
        out[f"snrd_{t}"] = snr_dietrich(s["median"], sigma_air)
    out["snr_total"] = float(np.mean([out[f"snr_{t}"] for t in TISSUES]))
    out["snrd_total"] = float(np.mean([out[f"snrd_{t}"] for t in TISSUES]))
    wm, gm = stats["wm"], stats["gm"]
    out["cnr"] = cnr(wm["median"], gm["median"], stats["bg"]["stdv"], wm["stdv"], gm["stdv"])
    out["cjv"] = cjv(wm["median"], gm["median"], wm["mad"], gm["mad"])
    out["efc"] = efc(data)
    out["fber"] = fber(fg, air)
    out["snr1"] = snr1_volume(fg, air)
    out["wm2max"] = wm2max(data, wm["median"])
    out["qi_1"] = qi_1(masks.small, masks.background_small)
    out["fov_edge"] = fov_edge(masks.head_small)
    # one axial slice every ~4 mm is edge enough, and keeps 1 mm volumes cheap
    out["head_edge"] = head_edge(cdata, masks.head, stats["bg"]["median"],
                                 z_stride=max(1, round(4.0 / float(zooms[2]))))
    fx, fy, fz = fwhm(cdata, masks.head, zooms, stride=3 if data.size > 8_000_000 else 2,
                      box=brain_box(masks.head_small, masks.factor, data.shape, margin=0))
    out.update(fwhm_x=fx, fwhm_y=fy, fwhm_z=fz, fwhm_avg=float(np.mean([fx, fy, fz])))
    n_icv = sum(stats[t]["n"] for t in TISSUES)
    for t in TISSUES:
        out[f"icvs_{t}"] = float(stats[t]["n"] / n_icv) if n_icv else NAN
    for region, s in stats.items():
        for k, v in s.items():
            out[f"summary_{region}_{k}"] = v
    return (out, labels) if return_tissues else out
