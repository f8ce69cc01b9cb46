"""Volume-wise anatomical metrics on closed-form phantoms (known SNR, contrast, smoothness)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from metrics_phantoms import make_sphere, sphere_labels  # noqa: F401 (fixtures)
from mmrqa_bids.metrics import ANAT_FEATURES, ANAT_METRICS, MeasureError, measure
from mmrqa_bids.metrics import anatomical as A

SIGMA = 20.0
WM, GM, CSF = 800.0, 550.0, 250.0


def test_tissue_classes_are_recovered(make_sphere):
    ph = make_sphere(SIGMA)
    tissues = measure(ph.image, "T1w").tissues
    for name in ("wm", "gm", "csf"):
        dice = 2 * (tissues[name] & ph.labels[name]).sum() / (tissues[name].sum()
                                                              + ph.labels[name].sum())
        assert dice > 0.98, name


def test_known_snr_contrast_and_cjv(make_sphere):
    m = measure(make_sphere(SIGMA).image, "T1w").metrics
    # Rician noise at SNR >= 12 is Gaussian to < 1%: SNR = level / sigma.
    assert m["snr_wm"] == pytest.approx(WM / SIGMA, rel=0.03)
    assert m["snr_gm"] == pytest.approx(GM / SIGMA, rel=0.03)
    assert m["snr_csf"] == pytest.approx(CSF / SIGMA, rel=0.04)
    assert m["snrd_wm"] == pytest.approx(WM / SIGMA, rel=0.02)
    assert m["snrd_gm"] == pytest.approx(GM / SIGMA, rel=0.02)
    assert m["snr_total"] == pytest.approx(np.mean([m["snr_wm"], m["snr_gm"], m["snr_csf"]]))
    # Air std of a Rayleigh(sigma) = sigma sqrt((4 - pi) / 2).
    assert m["cnr"] == pytest.approx((WM - GM) / (SIGMA * np.sqrt(2 + (4 - np.pi) / 2)),
                                     rel=0.03)
    assert m["cjv"] == pytest.approx(2 * SIGMA / (WM - GM), rel=0.05)
    assert m["inu_range"] < 0.01 and m["inu_med"] == pytest.approx(1.0, abs=0.01)
    assert m["qi_1"] < 1e-3


def test_fber_and_wm2max_closed_form(make_sphere):
    ph = make_sphere(SIGMA)
    res = measure(ph.image, "T1w")
    fg, air = ph.image[res.head], ph.image[res.background]
    # (the medians are taken on every third plane: a 1/3 sample)
    assert res.metrics["fber"] == pytest.approx(np.median(fg ** 2.0) / np.median(air ** 2.0),
                                                rel=0.02)
    # median(air^2) of a Rayleigh(sigma) is 2 ln 2 sigma^2.
    assert np.median(air.astype(np.float64) ** 2) == pytest.approx(2 * np.log(2) * SIGMA ** 2,
                                                                   rel=0.02)
    assert res.metrics["wm2max"] == pytest.approx(
        res.metrics["summary_wm_median"] / np.percentile(ph.image, 99.95), rel=2e-3)


def test_efc_extremes():
    assert A.efc(np.ones((10, 10, 10))) == pytest.approx(1.0)
    one = np.zeros((10, 10, 10))
    one[5, 5, 5] = 3.0
    assert A.efc(one) == pytest.approx(0.0, abs=1e-12)


def test_fwhm_of_smoothed_white_noise():
    rng = np.random.default_rng(1)
    noise = ndi.gaussian_filter(rng.standard_normal((80, 80, 80)), 1.5)
    fx, fy, fz = A.fwhm(noise, np.ones(noise.shape, bool), zooms=(2.0, 2.0, 1.0), stride=1)
    expected = 2 * np.sqrt(2 * np.log(2)) * 1.5  # voxels
    assert fx == pytest.approx(2 * expected, rel=0.05)
    assert fy == pytest.approx(2 * expected, rel=0.05)
    assert fz == pytest.approx(expected, rel=0.05)


def test_summary_stats_of_gaussian():
    rng = np.random.default_rng(2)
    s = A.summary_stats(rng.normal(100.0, 10.0, 200_000))
    assert s["mean"] == pytest.approx(100, rel=1e-3)
    assert s["stdv"] == pytest.approx(10, rel=1e-2)
    assert s["mad"] == pytest.approx(10, rel=2e-2)
    assert s["p95"] - s["p05"] == pytest.approx(2 * 1.6449 * 10, rel=2e-2)
    assert abs(s["k"]) < 0.05 and s["n"] == 200_000


def test_every_name_and_scale_invariance(make_sphere):
    img = make_sphere(SIGMA).image
    a = measure(img, "T1w").metrics
    b = measure(img * 7.3, "T1w").metrics
    assert set(a) == set(ANAT_METRICS)
    for k in ANAT_FEATURES:
        assert np.isfinite(a[k]), k
        assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-9), k


def test_int16_and_float32_give_the_same_values(make_sphere):
    as_int = np.round(make_sphere(SIGMA).image).astype(np.int16)
    a = measure(as_int, "T1w").metrics
    b = measure(as_int.astype(np.float32), "T1w").metrics
    assert a == b
    # MRQy's int16 FBER overflow does not happen here.
    assert a["mrqy_FBER"] > 100


@pytest.mark.parametrize("suffix", ["T1w", "T2w"])
def test_contrast_order_per_suffix(make_sphere, suffix):
    # FLAIR is not in this list: with CSF as dark as bone, the outer CSF cannot be told from
    # the skull without a template (documented in mmrqa_bids.metrics.tissues).
    levels = {"T1w": {}, "T2w": {"wm": 400.0, "gm": 600.0, "csf": 950.0}}[suffix]
    ph = make_sphere(SIGMA, levels=levels)
    tissues = measure(ph.image, suffix).tissues
    for name in ("wm", "gm"):
        assert (tissues[name] & ph.labels[name]).sum() > 0.9 * ph.labels[name].sum(), name


def test_more_noise_lowers_every_snr(make_sphere):
    low, high = (measure(make_sphere(s, seed=3).image, "T1w").metrics for s in (15.0, 45.0))
    for k in ("snr_total", "snr_wm", "snr_gm", "snrd_total", "snrd_wm", "cnr", "fber",
              "mrqy_SNR1", "mrqy_SNR2", "mrqy_SNR3", "mrqy_SNR4", "mrqy_CNR", "mrqy_PSNR"):
        assert high[k] < low[k], k
    assert high["cjv"] > low["cjv"]
    assert high["mrqy_CJV"] > low["mrqy_CJV"]


def test_blur_raises_fwhm_and_bias_raises_inu(make_sphere):
    ph = make_sphere(SIGMA)
    base = measure(ph.image, "T1w").metrics
    blurred = measure(ndi.gaussian_filter(ph.image, 1.5), "T1w").metrics
    assert blurred["fwhm_avg"] > 1.3 * base["fwhm_avg"]
    x = np.linspace(-1, 1, ph.image.shape[0], dtype=np.float32)[:, None, None]
    biased = measure(ph.image * np.exp(0.25 * x), "T1w").metrics
    assert biased["inu_range"] > base["inu_range"] + 0.05
    assert biased["cjv"] > base["cjv"]


def test_ghost_in_the_air_raises_qi1_and_lowers_fber(make_sphere):
    ph = make_sphere(SIGMA)
    base = measure(ph.image, "T1w").metrics
    ghosted = ph.image + 0.3 * np.roll(ph.clean, ph.clean.shape[1] // 2, axis=1)
    g = measure(ghosted, "T1w").metrics
    assert g["qi_1"] > base["qi_1"] + 0.01
    assert g["fber"] < base["fber"]
    # MRQy's foreground is the convex hull of the bright pixels: it swallows a bright ghost,
    # leaving little air, so MRQy's SNR1 rises instead of falling (MRQy 0.0.3's behaviour).
    assert g["mrqy_SNR1"] > base["mrqy_SNR1"]


def test_blank_image_is_a_clear_error():
    with pytest.raises(MeasureError, match="no head"):
        measure(np.full((20, 20, 20), 5.0, np.float32), "T1w")


def test_memory_layout_does_not_change_values(make_sphere):
    # nibabel hands over Fortran-ordered arrays; the fast paths read them in memory order.
    img = np.round(make_sphere(SIGMA).image)
    img[:, :3] = 0  # zero-filled border: exact zeros are excluded from the air
    c = measure(np.ascontiguousarray(img), "T1w")
    f = measure(np.asfortranarray(img), "T1w")
    assert np.array_equal(c.head, f.head) and np.array_equal(c.background, f.background)
    assert not c.background[:, :3].any()
    for k, v in c.metrics.items():
        assert f.metrics[k] == pytest.approx(v, rel=1e-5, abs=1e-12), k


def test_fov_edge_is_zero_in_air_and_rises_with_wrap_around():
    from mmrqa_bids.artifacts import wrap_around
    from mmrqa_bids.metrics.anatomical import fov_edge

    grid = np.indices((40, 48, 36))
    head = ((grid[0] - 19.5) ** 2 / 14 ** 2 + (grid[1] - 23.5) ** 2 / 18 ** 2
            + (grid[2] - 17.5) ** 2 / 14 ** 2) < 1
    assert fov_edge(head) == 0.0
    image = head.astype(np.float32)
    shares = [fov_edge(wrap_around(image, f, axis=1) > 0.5) for f in (1.0, 0.9, 0.75, 0.6)]
    assert shares[0] < 0.05 and shares[1] < shares[2] < shares[3]
    assert np.isnan(fov_edge(np.zeros((8, 8, 8), bool)))


def test_head_edge_is_one_for_a_step_and_falls_with_the_point_spread():
    from mmrqa_bids.artifacts import gaussian_blur
    from mmrqa_bids.metrics.anatomical import head_edge

    grid = np.indices((40, 48, 36))
    head = ((grid[0] - 19.5) ** 2 / 14 ** 2 + (grid[1] - 23.5) ** 2 / 18 ** 2
            + (grid[2] - 17.5) ** 2 / 14 ** 2) < 1
    image = head.astype(np.float32)
    assert head_edge(image, head, 0.0) == pytest.approx(1.0)
    values = [head_edge(gaussian_blur(image, s, (1.0,) * 3), head, 0.0)
              for s in (0.5, 1.0, 2.0)]
    assert 1.0 > values[0] > values[1] > values[2]
    # The steepest one-voxel step of a unit step blurred by std s is Phi(1/2s) - Phi(-1/2s).
    assert values[1] == pytest.approx(0.3829, rel=0.1)
    # Gain and offset (an air level) do not move it; every 2nd slice measures the same edge.
    noisy = image + np.random.default_rng(0).normal(0, 0.02, image.shape).astype(np.float32)
    ref = head_edge(noisy + 0.1, head, 0.1)
    assert head_edge(37.3 * noisy + 3.73, head, 3.73) == pytest.approx(ref, rel=1e-5)
    assert head_edge(noisy, head, 0.0, z_stride=2) == pytest.approx(ref, rel=0.05)
    assert np.isnan(head_edge(image, np.zeros_like(head), 0.0))
    assert np.isnan(head_edge(image, np.ones_like(head), 0.0))
