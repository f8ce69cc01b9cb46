"""Rendering the simulated examples: a source head in the example's contrast with its
domain randomisation, a scanner's field of view, bias field, gain and int16 storage,
and one artifact scaled into its severity band (:mod:`mmrqa_bids.artifacts`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmrqa_bids.train.metric_model.recipe import Example
from mmrqa_bids.train.metric_model.sources import TrainingError, load_source_head

#: Bump when the rendering or simulation code changes in a way the ranges do not show: cached
#: metrics are keyed by it, by :data:`~mmrqa_bids.artifacts.SEVERITY_RANGES` and by the
#: metrics code (:func:`~.measuring.cache_key`).
SIMULATION_VERSION = 3


def _render_clean(head, ex: Example, rng: np.random.Generator) -> np.ndarray:
    """The noise-free head in the example's contrast, with its domain randomisation:

    * with probability ``random_contrast``, a random contrast: each tissue's signal (CSF, GM,
      WM, skull, scalp) drawn U(0.03, 1) independently (SynthSeg's random intensities,
      Billot et al., Med Image Anal 2023; with ``random_tissues`` "shell" only the skull's
      and scalp's, the brain's jittered as below); otherwise the named contrast's signals
      times exp(U(-c, c)) each (``contrast_jitter`` c);
    * a zoom of U(1 - z, 1 + z) per axis (head size and shape);
    * an intrinsic smoothness: a Gaussian of U(0, s) voxels (``smooth_jitter`` s), so that
      anatomies (or templates) of different sharpness are seen clean;
    * an intra-tissue texture (``texture`` t): each tissue's signal multiplied by
      exp(a g(x)), a ~ U(0, t), g a white Gaussian field smoothed by a Gaussian of
      U(1, 3) voxels and scaled to unit standard deviation (one field per tissue): real
      tissue is not uniform (deep grey matter, myelination, vessels), a template is;
    * an elastic deformation (``deform`` d): a smooth random displacement field (white noise
      smoothed by a Gaussian of 30 mm, one per axis) scaled to a largest displacement of
      U(0, d) mm, :func:`elastic_deform`: another head's shape and folding, as SynthSeg
      deforms its label maps (Billot et al., Med Image Anal 2023).

    With probability ``plain`` none of this: the named contrast as the unseen sources are
    rendered (a randomised example is never as sharp as a plain one).

    With ``zoom_native`` the zoom is drawn first and applied to the tissue maps on their own
    grid (:func:`~mmrqa_bids.train.metric_model.sources.resample_head`: the head imaged at voxels of
    voxel_size / zoom), not to the rendered image: interpolating the image on its coarse
    grid softens the head's outline (head_edge of a clean 4 mm bold head 0.89 -> 0.61-0.79),
    as a moderate blur does.

    The zoom is interpolated with a spline of order ``zoom_order``: order 1 (linear)
    smooths a 3 mm image by itself (clean FWHM ~5.0 -> ~6.1 mm at 3 mm, T1w), order 3 hardly.
    """
    from scipy import ndimage as ndi

    from mmrqa_bids.artifacts import gaussian_blur
    from mmrqa_bids.phantom import CONTRASTS

    if ex.random_tissues not in ("all", "shell"):  # checked before any draw decides
        raise TrainingError(f"random_tissues must be all or shell, not {ex.random_tissues!r}")
    base = np.array(CONTRASTS[ex.contrast], dtype=float)
    tissues = (head.csf, head.gm, head.wm, head.skull, head.scalp)
    if ex.plain and rng.random() < ex.plain:
        return sum(b * t for b, t in zip(base, tissues)).astype(np.float32)
    if ex.zoom_native and ex.zoom_jitter:
        from mmrqa_bids.train.metric_model.sources import load_native_head, resample_head

        zoom = rng.uniform(1 - ex.zoom_jitter, 1 + ex.zoom_jitter, 3)
        native, native_mm = load_native_head(ex.anatomy)
        head = resample_head(native, native_mm, ex.voxel_size / zoom)
        tissues = (head.csf, head.gm, head.wm, head.skull, head.scalp)
    if ex.random_contrast and rng.random() < ex.random_contrast:
        drawn = rng.uniform(0.03, 1.0, 5)
        if ex.random_tissues == "shell":  # skull and scalp only; the brain jittered as below
            drawn[:3] = np.clip(base[:3] * np.exp(rng.uniform(-ex.contrast_jitter,
                                                              ex.contrast_jitter, 3)), 0.01, 1.0)
        base = drawn
    elif ex.contrast_jitter:
        base = np.clip(base * np.exp(rng.uniform(-ex.contrast_jitter, ex.contrast_jitter, 5)),
                       0.01, 1.0)
    if ex.texture:
        amp, width = float(rng.uniform(0, ex.texture)), float(rng.uniform(1, 3))
        img = np.zeros(head.csf.shape, np.float32)
        for b, tissue in zip(base, tissues):
            g = ndi.gaussian_filter(rng.standard_normal(tissue.shape).astype(np.float32), width)
            img += (b * tissue * np.exp(amp * g / max(float(g.std()), 1e-12))).astype(np.float32)
    else:
        img = sum(b * t for b, t in zip(base, tissues)).astype(np.float32)
    if ex.deform:
        img = elastic_deform(img, float(rng.uniform(0, ex.deform)) / ex.voxel_size,
                             30.0 / ex.voxel_size, rng, order=ex.zoom_order)
    if ex.zoom_jitter and not ex.zoom_native:
        zoom = rng.uniform(1 - ex.zoom_jitter, 1 + ex.zoom_jitter, 3)
        img = np.clip(ndi.zoom(img, zoom, order=ex.zoom_order), 0, None).astype(np.float32)
    if ex.smooth_jitter:
        img = np.clip(gaussian_blur(img, float(rng.uniform(0, ex.smooth_jitter)), (1.0,) * 3),
                      0, None)
    return img


def elastic_deform(img: np.ndarray, max_shift: float, smooth: float,
                   rng: np.random.Generator, order: int = 3) -> np.ndarray:
    """``img`` resampled at x + u(x): u a white Gaussian field per axis smoothed by a Gaussian
    of ``smooth`` voxels and scaled so that its largest displacement is ``max_shift`` voxels
    (spline of ``order``; values clipped at 0)."""
    from scipy import ndimage as ndi

    if max_shift <= 0:
        return img
    fields = [ndi.gaussian_filter(rng.standard_normal(img.shape).astype(np.float32), smooth)
              for _ in range(3)]
    peak = max(float(np.sqrt(sum(f * f for f in fields)).max()), 1e-12)
    grid = np.indices(img.shape, dtype=np.float32)
    coords = [g + f * (max_shift / peak) for g, f in zip(grid, fields)]
    out = ndi.map_coordinates(img, coords, order=order, mode="constant", cval=0.0)
    return np.clip(out, 0, None).astype(np.float32)


def _vary_geometry(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Field of view and orientation as on real scanners: with probability 1/2 the inferior
    10-25% (neck) is cut; with probability 1/3 each, the left-right and anterior-posterior
    axes are flipped."""
    if rng.random() < 0.5:
        cut = int(clean.shape[2] * rng.uniform(0.10, 0.25))
        clean = clean[:, :, cut:]
    for axis in (0, 1):
        if rng.random() < 1 / 3:
            clean = np.flip(clean, axis=axis)
    return np.ascontiguousarray(clean)


#: Ranges of :func:`_scanner_nuisance`: std of the log bias field over the head (our
#: polynomial estimate of ROBEX's subject as scanned: inu_range 0.21 ~ std 0.065), and the
#: in-plane field of view in mm.
SCANNER_BIAS_LOG_STD = (0.0, 0.1)
SCANNER_FOV_MM = (220.0, 260.0)


def _scanner_nuisance(clean: np.ndarray, ex: Example, rng: np.random.Generator) -> np.ndarray:
    """With probability ``ex.scanner``, what every real scan has and a rendered head lacks,
    made part of the clean reference (so never graded as degradation):

    * a receive-coil bias field (:func:`~mmrqa_bids.artifacts.bias_field`, 3rd order, std of
      its log over the head U(:data:`SCANNER_BIAS_LOG_STD`)): a good scan is rarely flat
      (ABIDE's accepted T1w scans: MRIQC inu_range 0.19-0.49, q05-q95);
    * air around the head as a scanner's field of view holds it: both in-plane axes padded
      to U(:data:`SCANNER_FOV_MM`) mm (a rendered head has ~12 mm of air; EFC, FBER and the
      background statistics depend on how much air there is).
    """
    from mmrqa_bids.artifacts import bias_field

    if not ex.scanner or rng.random() >= ex.scanner:
        return clean
    log_std = float(rng.uniform(*SCANNER_BIAS_LOG_STD))
    clean = clean * bias_field(clean, log_std, seed=int(rng.integers(2 ** 31)))
    fov = float(rng.uniform(*SCANNER_FOV_MM))
    pads = []
    for axis in (0, 1):
        extra = max(0, int(round(fov / ex.voxel_size)) - clean.shape[axis])
        before = int(rng.integers(0, extra + 1))
        pads.append((before, extra - before))
    return np.pad(clean, pads + [(0, 0)]).astype(np.float32)


def _store(data: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scanner gain (log-uniform, 200-20000 at the brightest tissue) and int16 storage."""
    gain = float(np.exp(rng.uniform(np.log(200), np.log(20000))))
    scaled = data * gain
    scaled *= min(1.0, 32000.0 / max(float(scaled.max()), 1e-6))
    return np.round(scaled).astype(np.int16).astype(np.float32)


def simulate_example(ex: Example, cache_dir: Path | None = None):
    """The degraded image of an example, stored as a scanner would (int16, random gain), and
    its :class:`~mmrqa_bids.artifacts.Simulated` record (measured degradation, label)."""
    from dataclasses import replace

    from mmrqa_bids.artifacts import simulate, simulate_series

    rng = np.random.default_rng(ex.seed)
    head = load_source_head(ex.anatomy, ex.voxel_size, cache_dir)
    clean = _scanner_nuisance(_vary_geometry(_render_clean(head, ex, rng), rng), ex, rng)
    clean = clean / float(np.percentile(clean[clean > 0.05 * clean.max()], 99.5))
    pe_axis = int(rng.integers(0, 2))
    vox = (ex.voxel_size,) * 3
    if ex.family == "bold":
        sim = simulate_series(clean, ex.artifact, ex.severity, n_volumes=ex.n_volumes,
                              seed=ex.seed, voxel_size=vox, pe_axis=pe_axis)
    else:
        sim = simulate(clean, ex.artifact, ex.severity, seed=ex.seed, voxel_size=vox,
                       pe_axis=pe_axis)
    return replace(sim, data=_store(sim.data, rng))


def render_example(ex: Example, cache_dir: Path | None = None) -> np.ndarray:
    """The degraded image of an example, stored as a scanner would (int16, random gain)."""
    return simulate_example(ex, cache_dir).data
