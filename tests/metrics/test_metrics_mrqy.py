"""The vectorised MRQy set against a plain per-slice implementation of the same definitions."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.signal import convolve2d

from mmrqa_bids.metrics.mrqy import median5, mrqy_metrics
from mmrqa_bids.metrics.names import MRQY_NAMES


def _patch(img: np.ndarray) -> np.ndarray:
    a, b = np.unravel_index(np.argmax(img), img.shape)
    padded = np.pad(img, 2)
    return padded[a:a + 5, b:b + 5].astype(np.float64)


def _reference(data: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """One slice at a time, written from the docstring formulas (MRQy with the fixes)."""
    filt = np.full((3, 3), -1 / 8)
    filt[1, 1] = 1
    per = {k: [] for k in MRQY_NAMES}
    for z in range(1, data.shape[2]):
        sl = data[:, :, z].astype(np.float64)
        m = mask[:, :, z]
        F, B = sl * m, sl * ~m
        if np.std(F) == 0:
            continue
        f, b = sl[m], sl[~m]
        pf, pb = _patch(F), _patch(B)
        med = ndi.median_filter(ndi.median_filter(F, size=(5, 1), mode="nearest"),
                                size=(1, 5), mode="nearest")
        n = F.size
        x = F / np.sqrt((F ** 2).sum())
        vals = {
            "MEAN": f.mean(), "RNG": np.ptp(f), "VAR": f.var(), "CV": 100 * f.std() / f.mean(),
            "CPP": np.abs(convolve2d(F, filt, mode="same"))[m].mean(),
            "PSNR": 20 * np.log10(F.max() / np.sqrt(np.mean((F - med) ** 2))),
            "SNR1": f.std() / b.std(), "SNR2": pf.mean() / b.std(),
            "SNR3": pf.mean() / pf.std(), "SNR4": pf.mean() / pb.std(),
            "CNR": (pf - pb).mean() / pb.std(), "CVP": pf.std() / pf.mean(),
            "CJV": (f.std() + b.std()) / abs(f.mean() - b.mean()),
            "EFC": np.sum(x * np.log(x + 1e-16)) / (np.sqrt(n) * np.log(1 / np.sqrt(n))),
            "FBER": np.median(f ** 2) / np.median(b ** 2),
        }
        for k, v in vals.items():
            if np.isfinite(v):
                per[k].append(v)
    return {k: float(np.mean(v)) for k, v in per.items()}


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(0)
    shape = (40, 44, 12)
    grid = np.indices(shape[:2])
    disk = ((grid[0] - 20) ** 2 / 14 ** 2 + (grid[1] - 22) ** 2 / 16 ** 2) < 1
    clean = np.where(disk[:, :, None], 500.0, 0.0) + 200 * np.sin(grid[0] / 3.0)[:, :, None] * disk[:, :, None]
    data = np.abs(clean + rng.normal(0, 15, shape)).astype(np.float32)
    mask = np.repeat(disk[:, :, None], shape[2], axis=2)
    return data, mask


def test_matches_the_per_slice_reference(volume):
    data, mask = volume
    got = mrqy_metrics(data, mask)
    ref = _reference(data, mask)
    for k in MRQY_NAMES:
        # FBER medians are taken on a 1/4 in-plane sample for speed.
        tol = 0.1 if k == "FBER" else 1e-5
        assert got[k] == pytest.approx(ref[k], rel=tol), k


def test_slice_zero_is_skipped(volume):
    data, mask = volume
    changed = data.copy()
    changed[:, :, 0] *= 5
    assert mrqy_metrics(changed, mask) == mrqy_metrics(data, mask)


def test_efc_in_unit_interval_and_patch_is_centred():
    data = np.zeros((21, 21, 3), np.float32)
    data[5:16, 5:16, :] = 100.0
    data[10, 10, :] = 200.0  # brightest pixel: its centred patch is 24 x 100 + 1 x 200
    mask = data > 0
    out = mrqy_metrics(data, mask)
    assert 0.0 < out["EFC"] < 1.0
    patch = np.full(25, 100.0)
    patch[12] = 200.0
    assert out["CVP"] == pytest.approx(patch.std() / patch.mean())


def test_median5_is_the_5_point_median():
    for perm in itertools.permutations(range(5)):
        x = np.array(perm, np.float32)[:, None]
        assert median5(x, 0)[2, 0] == 2
    rng = np.random.default_rng(1)
    a = rng.random((9, 30, 4)).astype(np.float32)
    assert np.array_equal(median5(a, 1), ndi.median_filter(a, size=(1, 5, 1), mode="nearest"))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        mrqy_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 3), bool))


def test_memory_layout_and_tied_maxima_do_not_change_values(volume):
    # Integer data with many tied maxima per slice: the patch is centred on the first maximum
    # in row-major (x, y) order whether the volume is C- or Fortran-ordered (nibabel's).
    data, mask = volume
    coarse = np.round(data / 8.0).astype(np.float32)
    ref = _reference(coarse, mask)
    for arr, msk in ((coarse, mask), (np.asfortranarray(coarse), mask),
                     (np.asfortranarray(coarse), np.asfortranarray(mask))):
        got = mrqy_metrics(arr, msk)
        for k in MRQY_NAMES:
            if k != "FBER":
                assert got[k] == pytest.approx(ref[k], rel=1e-5), k
        assert got == pytest.approx(mrqy_metrics(coarse, mask), rel=1e-9, nan_ok=True)


@pytest.mark.parametrize("scale", [1.0, 0.37])
def test_fber_medians_are_exact(volume, scale):
    # Integer-valued slices take the counting path, others the sorting path; both must give
    # numpy's median of the squares on the same (every second pixel) sample.
    from mmrqa_bids.metrics.mrqy import _masked_medians_sq

    data, mask = volume
    d = np.round(data) * np.float32(scale)
    v = np.moveaxis(d[:, ::2, :], 2, 0).reshape(d.shape[2], -1)
    m = np.moveaxis(mask[:, ::2, :], 2, 0).reshape(d.shape[2], -1)
    med_f, med_b = _masked_medians_sq(v, m)
    for z in range(v.shape[0]):
        assert med_f[z] == np.median(np.square(v[z][m[z]], dtype=np.float64))
        assert med_b[z] == np.median(np.square(v[z][~m[z]], dtype=np.float64))
