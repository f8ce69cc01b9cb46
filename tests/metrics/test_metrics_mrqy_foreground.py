"""MRQy's per-slice foreground, vectorised, against a per-slice reference written from
scikit-image's definitions (threshold_otsu, equalize_hist, convex_hull_image), which
MRQy 0.0.3 calls."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from mmrqa_bids.metrics.mrqy_foreground import foreground, hull_fill, otsu_rows


def _histogram(img: np.ndarray, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """skimage.exposure.histogram: one bin per integer, else 256 bins over [min, max]."""
    if integer:
        lo, hi = int(img.min()), int(img.max())
        return np.bincount((img.ravel() - lo).astype(np.intp)), np.arange(lo, hi + 1)
    counts, edges = np.histogram(img.ravel(), bins=256, range=(img.min(), img.max()))
    return counts, (edges[:-1] + edges[1:]) / 2


def _otsu(img: np.ndarray, integer: bool) -> float:
    if np.all(img == img.ravel()[0]):
        return float(img.ravel()[0])
    counts, centers = _histogram(img, integer)
    counts = counts.astype(np.float32)
    w1 = np.cumsum(counts)
    w2 = np.cumsum(counts[::-1])[::-1]
    m1 = np.cumsum(counts * centers) / w1
    m2 = (np.cumsum((counts * centers)[::-1]) / w2[::-1])[::-1]
    var = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return float(centers[np.argmax(var)])


def _equalize(img: np.ndarray, integer: bool) -> np.ndarray:
    counts, centers = _histogram(img, integer)
    cdf = np.cumsum(counts) / counts.sum()
    return np.interp(img.ravel(), centers, cdf).reshape(img.shape)


def _hull(binary: np.ndarray) -> np.ndarray:
    """convex_hull_image: hull of the pixels' edge midpoints, centres on it included."""
    if not binary.any():
        return np.zeros(binary.shape, bool)
    pts = np.argwhere(binary).astype(float)
    offsets = np.array([[0, -0.5], [0, 0.5], [-0.5, 0], [0.5, 0]])
    eq = ConvexHull((pts[:, None, :] + offsets).reshape(-1, 2)).equations
    grid = np.indices(binary.shape).reshape(2, -1).T.astype(float)
    inside = np.all(grid @ eq[:, :2].T + eq[:, 2] < 1e-9, axis=1)
    return inside.reshape(binary.shape)


def _mrqy_foreground(img: np.ndarray, integer: bool) -> np.ndarray:
    """mrqy.QCF.foreground, slice by slice."""
    h = _equalize(img, integer) * 255
    w1 = np.mean(img > _otsu(img, integer))
    w2 = np.mean(h > _otsu(h, False))
    new = w1 * img + w2 * h
    return _hull(new > _otsu(new, False))


def _slices(integer: bool, seed: int = 0) -> np.ndarray:
    """Noisy air around two blobs, a dark slice, a constant one and an empty one."""
    rng = np.random.default_rng(seed)
    n, a, b = 7, 37, 29
    g = np.indices((a, b))
    out = np.abs(rng.normal(0, 12, (n, a, b)))
    for z in range(4):
        blob = ((g[0] - 15 - z) / (9 + z)) ** 2 + ((g[1] - 13) / 8) ** 2 < 1
        blob |= ((g[0] - 29) / 3) ** 2 + ((g[1] - 5 - 3 * z) / 3) ** 2 < 1
        out[z] += blob * rng.uniform(200, 900, (a, b))
    out[4] = 3.0
    out[5] = 0.0
    out[6, 10, 7] = 500.0
    return np.round(out) if integer else out * 0.731


@pytest.mark.parametrize("integer", [True, False])
def test_matches_mrqys_definitions_slice_by_slice(integer):
    slices = _slices(integer).astype(np.float32)
    got = foreground(slices, integer)
    for z in range(slices.shape[0]):
        ref = slices[z].astype(np.int64) if integer else slices[z]
        np.testing.assert_array_equal(got[z], _mrqy_foreground(ref, integer), err_msg=str(z))
    assert got[0].sum() > 0.2 * got[0].size and not got[5].any()


def test_hull_fill_is_the_convex_hull_image():
    rng = np.random.default_rng(5)
    binary = rng.random((20, 23, 31)) > 0.985
    binary[3] = False
    binary[4, 7, 9] = True  # a single pixel: its own hull
    binary[4, 7, 10:20] = False
    got = hull_fill(binary)
    for z in range(binary.shape[0]):
        np.testing.assert_array_equal(got[z], _hull(binary[z]), err_msg=str(z))
    assert got[4].sum() >= 1 and not got[3].any()


def test_otsu_rows_padding_and_constant_rows():
    counts = np.array([[5, 0, 5, 0, 0], [4, 0, 0, 0, 0]], float)
    centers = np.array([[0, 1, 2, 3, 4], [7, 8, 9, 10, 11]], float)
    t = otsu_rows(counts, centers, np.array([3, 1]))
    assert t[0] == 0.0 and t[1] == 7.0
