"""Functional (bold) metrics: closed-form series, known motion, known ghost."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from mmrqa_bids.metrics import FUNC_FEATURES, FUNC_METRICS, measure
from mmrqa_bids.metrics import functional as Fn
from mmrqa_bids.metrics.masks import compute_masks


def _blob(shape=(40, 44, 30)) -> np.ndarray:
    """A smooth ellipsoidal 'brain' with internal structure (so that motion is measurable)."""
    g = np.indices(shape, dtype=np.float32)
    c = [(s - 1) / 2 for s in shape]
    r2 = sum(((gi - ci) / (0.35 * s)) ** 2 for gi, ci, s in zip(g, c, shape))
    body = (r2 < 1).astype(np.float32)
    texture = 1 + 0.3 * np.sin(g[0] / 2.5) * np.cos(g[1] / 3.0) + 0.2 * np.sin(g[2] / 2.0)
    return ndi.gaussian_filter(1000 * body * texture, 1.0).astype(np.float32)


def test_tsnr_and_dvars_of_white_noise():
    rng = np.random.default_rng(0)
    ts = 500.0 + rng.normal(0, 10.0, (4000, 200))
    assert Fn.tsnr(ts) == pytest.approx(50.0, rel=0.02)
    nstd, std, vstd = Fn.dvars(ts)
    # nstd in units of 1/1000 of the in-mask median (nipype ComputeDVARS, MRIQC): 1000 / 500
    assert nstd == pytest.approx(2.0 * 10.0 * np.sqrt(2), rel=0.02)
    assert std == pytest.approx(1.0, abs=0.05)
    assert vstd == pytest.approx(1.0, abs=0.05)
    # free of the gain; NaN when the in-mask median is not positive (nothing to scale to)
    assert Fn.dvars(3.1 * ts) == pytest.approx((nstd, std, vstd), rel=1e-9)
    below = Fn.dvars(ts - 1000.0)
    assert np.isnan(below[0]) and below[1:] == pytest.approx((std, vstd), rel=1e-9)


def test_tsnr_counts_constant_voxels_as_zero():
    """As nipype's TSNR map + MRIQC's median: SD <= 1e-3 gives 0, and those voxels count."""
    rng = np.random.default_rng(2)
    noisy = 500.0 + rng.normal(0, 10.0, (300, 50))
    constant = np.full((100, 50), 400.0)
    tsnr_v = np.concatenate([noisy.mean(axis=1) / noisy.std(axis=1), np.zeros(100)])
    assert Fn.tsnr(np.vstack([noisy, constant])) == pytest.approx(np.median(tsnr_v), rel=1e-12)
    assert np.isnan(Fn.tsnr(constant))


def test_fd_perc_is_over_the_number_of_volumes():
    assert Fn.fd_perc(16, 20) == pytest.approx(80.0)  # MRIQC FunctionalQC: 100 num / T


@pytest.mark.parametrize("n_t", [2, 3])
def test_aor_and_gcor_are_nan_on_runs_too_short_for_the_trend(n_t):
    """A quadratic trend fits every series of <= 3 volumes: what is left is rounding residue
    (gcor was 0.98 on nibabel's 2-volume example4d)."""
    rng = np.random.default_rng(3)
    ts = 500.0 + rng.normal(0, 10.0, (1000, n_t))
    assert np.isnan(Fn.gcor(ts)) and np.isnan(Fn.aor(ts))
    assert np.isnan(Fn.gcor(ts, detrended=Fn.detrend(ts))) and np.isnan(Fn.aor(ts, detrended=ts))


def test_gcor_and_aor_leave_out_voxels_constant_up_to_their_trend():
    """A voxel whose detrended series is rounding residue (a constant or a pure quadratic
    drift, in a long run) is left out of gcor instead of being scaled up to unit length, and
    has no aor outlier."""
    rng = np.random.default_rng(4)
    n_t = 60
    t = np.linspace(-1, 1, n_t)
    noisy = 500.0 + rng.normal(0, 10.0, (500, n_t)) + 10.0 * rng.normal(0, 1, n_t)[None, :]
    drifting = 300.0 + 40.0 * t[None, :] ** 2 - 7.0 * t[None, :] + np.zeros((500, 1))
    both = np.vstack([noisy, drifting])
    assert np.abs(Fn.detrend(drifting)).max() > 0  # rounding residue is there
    assert Fn.gcor(both) == pytest.approx(Fn.gcor(noisy), rel=1e-9)
    assert Fn.aor(both) == pytest.approx(Fn.aor(noisy) / 2, rel=1e-9)
    assert np.isnan(Fn.gcor(drifting)) and Fn.aor(drifting) == 0.0


def test_aor_counts_spikes_and_gcor_sees_a_global_signal():
    rng = np.random.default_rng(1)
    ts = 500.0 + rng.normal(0, 10.0, (2000, 100))
    clean_aor = Fn.aor(ts)
    spiky = ts.copy()
    spiky[:, [20, 60]] += 200.0
    assert Fn.aor(spiky) == pytest.approx(clean_aor + 2 / 100, abs=0.005)
    glob = ts + 10.0 * rng.normal(0, 1, 100)[None, :]
    assert Fn.gcor(ts) < 0.01
    assert Fn.gcor(glob) == pytest.approx(0.5, abs=0.05)  # shared variance 1/(1+1)


def test_gsr_of_a_known_ghost():
    shape = (40, 48, 20)
    obj = np.zeros(shape, np.float32)
    obj[12:28, 6:18, 5:15] = 1000.0
    mask = obj > 0
    ghosted = obj + 0.1 * np.roll(obj, shape[1] // 2, axis=1)
    assert Fn.gsr(ghosted, mask, axis=1) == pytest.approx(0.1, rel=1e-6)
    # Along x there is no ghost (the y ghost only raises the mean of the "other air" a bit).
    assert abs(Fn.gsr(ghosted, mask, axis=0)) < 0.01


def test_realign_recovers_translation_and_rotation():
    base = _blob()
    moved = ndi.shift(base, (0.5, -1.0, 0.3), order=3)
    rotated = ndi.rotate(base, 2.0, axes=(0, 1), reshape=False, order=3)
    data = np.stack([base, moved, rotated], axis=-1)
    mask = compute_masks(data.mean(axis=3), with_brain=False).head
    p = Fn.realign(data, mask, (3.0, 3.0, 3.0), reference=0)
    assert p[1, 3:] == pytest.approx([1.5, -3.0, 0.9], abs=0.1)
    assert np.abs(p[1, :3]).max() < 0.003
    assert abs(np.degrees(p[2, 2])) == pytest.approx(2.0, abs=0.1)


def test_framewise_displacement_formula():
    params = np.zeros((3, 6))
    params[1, 3] = 0.3
    params[2, 0] = 0.01
    params[2, 3] = 0.3
    assert Fn.framewise_displacement(params) == pytest.approx([0.3, 0.5])


def _run(motion: float, seed: int = 0, n_t: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = _blob()
    vols = []
    for t in range(n_t):
        vol = ndi.shift(base, (0, motion * (t % 3), 0), order=1) if motion else base
        noisy = np.abs(vol + rng.normal(0, 8.0, vol.shape) + 1j * rng.normal(0, 8.0, vol.shape))
        vols.append(noisy.astype(np.float32))
    return np.stack(vols, axis=-1)


def test_measure_bold_names_motion_and_scale():
    still = measure(_run(0.0), "bold", (3.0, 3.0, 3.0))
    moving = measure(_run(0.8), "bold", (3.0, 3.0, 3.0)).metrics
    m = still.metrics
    assert set(m) == set(FUNC_METRICS)
    assert all(np.isfinite(m[k]) for k in FUNC_FEATURES)
    assert still.reference.ndim == 3 and still.head.shape == still.reference.shape
    assert m["fd_mean"] < 0.1 and m["fd_perc"] == 0
    assert moving["fd_mean"] > 1.0 and moving["fd_perc"] > 50
    assert moving["tsnr"] < m["tsnr"]
    scaled = measure(_run(0.0) * 3.1, "bold", (3.0, 3.0, 3.0)).metrics
    for k in FUNC_FEATURES:
        assert scaled[k] == pytest.approx(m[k], rel=1e-4, abs=1e-6), k


def test_bold_static_metrics_follow_bias_field_and_ghost_severity():
    """inu_range of the mean EPI grows with a simulated bias field, qi_1 with a ghost
    (a real subject's tissue maps, 4 mm)."""
    from mmrqa_bids.artifacts import simulate_series
    from mmrqa_bids.train.metric_model.sources import load_tpm_head

    clean = load_tpm_head(4.0).render("bold")
    clean = clean / clean.max()
    vox = (4.0, 4.0, 4.0)

    def metrics(artifact, severity):
        sim = simulate_series(clean, artifact, severity, n_volumes=6, seed=1, voxel_size=vox)
        return measure(sim.data, "bold", vox).metrics

    inu = [metrics("inhomogeneity", s)["inu_range"] for s in ("none", "mild", "moderate", "severe")]
    qi = [metrics("ghosting", s)["qi_1"] for s in ("none", "moderate", "severe")]
    # A mild field (a few %) is within the fit's anatomy-driven spread; beyond it, monotone.
    assert max(inu[:2]) < 0.05 < inu[2] < inu[3], inu
    assert qi[0] < 0.01 < qi[-1] and qi[1] >= qi[0], qi
