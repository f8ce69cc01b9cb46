"""The vectorised MRQy set against a plain per-slice implementation of the same definitions,
and against MRQy 0.0.3 itself on real heads that ship with installed packages."""
from __future__ import annotations

import itertools

import nibabel as nb
import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.signal import convolve2d

from mmrqa_bids.metrics import compute
from mmrqa_bids.metrics.mrqy import median5, mrqy_metrics
from mmrqa_bids.metrics.names import MRQY_NAMES


def _patch(img: np.ndarray) -> np.ndarray:
    """MRQy's patch: pad by 5, slice [a:a + 5, b:b + 5] at the first maximum (a, b)."""
    a, b = np.argwhere(img == img.max())[0]
    return np.pad(img, 5)[a:a + 5, b:b + 5].astype(np.float64)


def _reference(data: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """One slice at a time, written from the docstring formulas (MRQy, with the fixed EFC
    and PSNR)."""
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
        bg = np.median(b ** 2)
        vals = {
            "MEAN": f.mean(), "RNG": np.ptp(f), "VAR": f.var(), "CV": 100 * f.std() / f.mean(),
            "CPP": convolve2d(F, filt, mode="same").mean(),
            "PSNR": 20 * np.log10(F.max() / np.sqrt(np.mean((F - med) ** 2))),
            "SNR1": f.std() / b.std(), "SNR2": pf.mean() / b.std(),
            "SNR3": pf.mean() / pf.std(), "SNR4": pf.mean() / pb.std(),
            "CNR": (pf - pb).mean() / pb.std(), "CVP": pf.std() / pf.mean(),
            "CJV": (f.std() + b.std()) / abs(f.mean() - b.mean()),
            "EFC": np.sum(x * np.log(x + 1e-16)) / (np.sqrt(n) * np.log(1 / np.sqrt(n))),
            "FBER": 0.0 if bg < 1e-3 else np.median(f ** 2) / bg,
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
        assert got[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-9), k


def test_cpp_is_mrqys_border_sum():
    # A foreground touching the slice border: MRQy's CPP is the 'same' convolution's mean,
    # which only the border pixels feed.
    rng = np.random.default_rng(3)
    data = rng.uniform(10, 100, (12, 9, 3)).astype(np.float32)
    mask = np.zeros(data.shape, bool)
    mask[:7, :, :] = True
    assert mrqy_metrics(data, mask)["CPP"] == pytest.approx(_reference(data, mask)["CPP"],
                                                            rel=1e-6)
    assert _reference(data, mask)["CPP"] > 0


def test_slice_zero_is_skipped(volume):
    data, mask = volume
    changed = data.copy()
    changed[:, :, 0] *= 5
    assert mrqy_metrics(changed, mask) == mrqy_metrics(data, mask)
    assert mrqy_metrics(changed) == mrqy_metrics(data)


def test_efc_in_unit_interval_and_patch_ends_before_the_peak():
    data = np.zeros((21, 21, 3), np.float32)
    data[5:16, 5:16, :] = 100.0
    data[10, 10, :] = 200.0  # brightest pixel: MRQy's patch is the 5x5 block before it
    data[7, 7, :] = 50.0
    mask = data > 0
    out = mrqy_metrics(data, mask)
    assert 0.0 < out["EFC"] < 1.0
    patch = np.full(25, 100.0)
    patch[12] = 50.0  # (7, 7) is the centre of the block x, y in 5..9
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
    # Integer data with many tied maxima per slice: the patch is taken at the first maximum
    # in row-major (x, y) order whether the volume is C- or Fortran-ordered (nibabel's).
    data, mask = volume
    coarse = np.round(data / 8.0).astype(np.float32)
    ref = _reference(coarse, mask)
    for arr, msk in ((coarse, mask), (np.asfortranarray(coarse), mask),
                     (np.asfortranarray(coarse), np.asfortranarray(mask))):
        got = mrqy_metrics(arr, msk)
        for k in MRQY_NAMES:
            assert got[k] == pytest.approx(ref[k], rel=1e-5, abs=1e-9), k
        assert got == pytest.approx(mrqy_metrics(coarse, mask), rel=1e-9, nan_ok=True)
    assert mrqy_metrics(np.asfortranarray(coarse)) == pytest.approx(mrqy_metrics(coarse),
                                                                    rel=1e-9, nan_ok=True)


@pytest.mark.parametrize("scale", [1.0, 0.37])
def test_fber_medians_are_exact(volume, scale):
    # Integer-valued slices take the counting path, others the sorting path; both must give
    # numpy's median of the squares.
    from mmrqa_bids.metrics.mrqy import _masked_medians_sq

    data, mask = volume
    d = np.round(data) * np.float32(scale)
    v = np.moveaxis(d, 2, 0).reshape(d.shape[2], -1)
    m = np.moveaxis(mask, 2, 0).reshape(d.shape[2], -1)
    med_f, med_b = _masked_medians_sq(v, m)
    for z in range(v.shape[0]):
        assert med_f[z] == np.median(np.square(v[z][m[z]], dtype=np.float64))
        assert med_b[z] == np.median(np.square(v[z][~m[z]], dtype=np.float64))


# MRQy 0.0.3's own output (mrqy.QCF.vol, medpy read, slices 1..N-1 of the file's third axis),
# recorded in its own virtualenv by benchmarks/metrics_vs_mrqy.py on these files as shipped.
MRQY_0_0_3 = {
    "dipy_b0": {"MEAN": 215.5611451, "RNG": 1246.652174, "VAR": 35658.37144,
                "CV": 114.6235977, "CPP": 0.03321776612, "SNR1": 27.03333322,
                "SNR2": 60.09198704, "SNR3": 1.698185975, "SNR4": 55.02984634,
                "CNR": 53.56334245, "CVP": 0.7647078508, "CJV": 1.266106154},
    "nibabel_epi": {"MEAN": 482.5524518, "RNG": 981.2608696, "VAR": 13362.25203,
                    "CV": 24.12580155, "CPP": 0.005019478176, "SNR1": 5.983654405,
                    "SNR2": 31.01806115, "SNR3": 7.091446264, "SNR4": 18.558185,
                    "CNR": 17.93370318, "CVP": 0.2083018475, "CJV": 0.2838407492,
                    "FBER": 0.0},
    "robex": {"MEAN": 283.6419067, "RNG": 1416.396118, "VAR": 43118.75781,
              "CV": 83.58731842, "CPP": 0.08419796798, "SNR1": 13.26426506,
              "SNR2": 28.73360993, "SNR3": 2.229455926, "SNR4": 29.03544532,
              "CNR": 27.7144917, "CVP": 0.788310077, "CJV": 1.212138534,
              "FBER": 146.5486854},
}


def _real_head(name: str) -> nb.Nifti1Image:
    from mmrqa_bids.train.metric_model import sources

    try:
        if name == "dipy_b0":
            return nb.load(str(sources.b0_path()))
        if name == "robex":
            return nb.squeeze_image(nb.load(str(sources.robex_paths()[0])))
        img = nb.load(str(sources.epi_path()))  # nibabel's example4d: its first volume
        return nb.Nifti1Image(np.asanyarray(img.dataobj)[..., 0], img.affine, img.header)
    except sources.TrainingError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", sorted(MRQY_0_0_3))
def test_agrees_with_mrqy_on_real_heads(name):
    """As acquired (int16 LPS oblique b=0, int16 EPI, float32 1.5 mm T1w with its own
    Rician air): MRQy's own foreground on the file's voxel order gives MRQy's values. EFC
    and PSNR are the fixed definitions; FBER of int16 files overflows in MRQy (except where
    both are 0: zero-filled air)."""
    img = _real_head(name)
    got = compute(img, "T1w" if name == "robex" else "T2w")
    for k, want in MRQY_0_0_3[name].items():
        assert got[f"mrqy_{k}"] == pytest.approx(want, rel=1e-6, abs=1e-9), k


def test_mrqy_values_follow_the_files_voxel_order():
    # The same voxels stored sagittally: MRQy slices the file's third axis, and so does
    # compute (not the RAS axis measure() sees).
    img = _real_head("dipy_b0")
    data = np.asanyarray(img.dataobj)
    perm = np.zeros((4, 4))
    perm[0, 2] = perm[1, 0] = perm[2, 1] = perm[3, 3] = 1.0
    moved = nb.Nifti1Image(np.ascontiguousarray(np.transpose(data, (1, 2, 0))),
                           img.affine @ perm)
    a, b = compute(img, "T2w"), compute(moved, "T2w")
    assert a["mrqy_MEAN"] == pytest.approx(MRQY_0_0_3["dipy_b0"]["MEAN"], rel=1e-6)
    assert b["mrqy_MEAN"] != pytest.approx(a["mrqy_MEAN"], rel=1e-3)
    assert b["snr_total"] == pytest.approx(a["snr_total"], rel=1e-9)  # RAS metrics: same
