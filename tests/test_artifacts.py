"""Simulated artifacts: reproducible, and each severity step moves its metric one way."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torchio")

from mmrqa_bids.artifacts import (ARTIFACTS, GRADE_CUTS, SEVERITIES, SEVERITY_BANDS,  # noqa: E402
                                  SEVERITY_RANGES, SEVERITY_TO_LABEL, ArtifactError,
                                  degradation, draw_params, gaussian_blur, grade_of, simulate,
                                  simulate_series, wrap_around)
from mmrqa_bids.metrics import measure  # noqa: E402
from mmrqa_bids.train.metric_model.sources import load_tpm_head  # noqa: E402

VOX = 4.0

# artifact -> (metric candidates, direction as severity grows). The first candidate the
# metrics engine computes is used (names follow the engine: MRIQC-style first, MRQy's next).
EXPECTED = {
    "motion": (("snrd_total", "snr1", "mrqy_SNR1", "efc"), -1),
    # FBER: the ghosts' energy in the air (the background is the hat above the brain's
    # centre, where snrd_total saturates between moderate and severe ghosts).
    "ghosting": (("fber", "snrd_total", "mrqy_SNR1"), -1),
    "spike": (("snrd_total", "snr1", "mrqy_SNR1"), -1),
    "noise": (("snr_total", "snr1", "mrqy_SNR1", "cnr"), -1),
    # CJV, the INU proxy of Ganzetti et al. 2016 (inu_range saturates for the strongest
    # fields). MRQy's CV is not used: MRQy's convex-hull foreground holds much air and dark
    # skull, whose share sets its CV more than a smooth field does (it falls slightly here).
    "inhomogeneity": (("cjv",), +1),
    "blur": (("fwhm_avg", "efc"), +1),
    "aliasing": (("efc",), +1),
}


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    img = load_tpm_head(VOX).render("T1w")  # a real subject's tissue maps; loads in < 1 s
    return img / float(img.max())


def _metric(metrics: dict[str, float], candidates: tuple[str, ...]) -> tuple[str, float]:
    for name in candidates:
        if name in metrics:
            return name, metrics[name]
    raise AssertionError(f"none of {candidates} among the metrics {sorted(metrics)}")


def test_every_artifact_has_documented_ranges():
    assert set(SEVERITY_RANGES) == set(ARTIFACTS)
    for artifact, table in SEVERITY_RANGES.items():
        assert list(table) == ["mild", "moderate", "severe"], artifact
        for name in table["mild"]:
            lows = [table[s][name][0] for s in ("mild", "moderate", "severe")]
            highs = [table[s][name][1] for s in ("mild", "moderate", "severe")]
            # Severity bands do not overlap and grow (or shrink, for the field of view).
            if artifact == "aliasing":
                assert lows[0] > highs[1] and lows[1] > highs[2]
            elif not name.startswith("num_"):
                assert highs[0] < lows[1] and highs[1] < lows[2], (artifact, name)
    assert [SEVERITY_TO_LABEL[s] for s in SEVERITIES] == ["Good", "Good", "Medium", "Bad"]


def test_severity_bands_are_ordered_and_the_grade_cuts_lie_in_their_gaps():
    (m_lo, m_hi), (o_lo, o_hi), (s_lo, s_hi) = (SEVERITY_BANDS[s] for s in SEVERITIES[1:])
    assert 0 < m_lo < m_hi < GRADE_CUTS[0] < o_lo < o_hi < GRADE_CUTS[1] < s_lo < s_hi
    for severity in SEVERITIES[1:]:
        lo, hi = SEVERITY_BANDS[severity]
        assert grade_of(lo) == grade_of(hi) == SEVERITY_TO_LABEL[severity]
    assert grade_of(0.0) == "Good"


# Motion is left out: each TorchIO motion evaluation costs about a second.
@pytest.mark.parametrize("artifact", [a for a in ARTIFACTS if a != "motion"])
def test_calibrated_severity_has_the_bands_measured_degradation(clean, artifact):
    for severity in ("mild", "moderate", "severe"):
        sim = simulate(clean, artifact, severity, seed=3, voxel_size=(VOX,) * 3)
        lo, hi = SEVERITY_BANDS[severity]
        # Wrap-around moves in whole rows, so its d can only approach the band in steps.
        slack = 1.6 if artifact == "aliasing" else 1.15
        assert lo / slack <= sim.degradation <= hi * slack, (artifact, severity, sim.params)
        assert sim.label == grade_of(sim.degradation)
        if artifact != "aliasing":
            assert sim.label == SEVERITY_TO_LABEL[severity], (artifact, severity)


def test_degradation_counts_errors_in_the_air_but_not_the_amount_of_air(clean):
    ghosted = simulate(clean, "ghosting", "moderate", seed=1, noise_sigma=0.0).data
    d = degradation(ghosted, clean)
    pad = ((6, 6), (6, 6), (0, 0))
    assert degradation(np.pad(ghosted, pad), np.pad(clean, pad)) == pytest.approx(d, rel=1e-6)
    head = clean > 0.1 * clean.max()
    assert d > degradation(np.where(head, ghosted, clean), clean)  # the ghosts in the air count
    # linear in the error: twice the error, twice d
    assert degradation(clean * 1.2, clean) == pytest.approx(2 * degradation(clean * 1.1, clean))


def test_gaussian_blur_is_continuous_below_a_voxel(clean):
    np.testing.assert_allclose(gaussian_blur(clean, 0.0, (VOX,) * 3), clean, atol=1e-5)
    d = [degradation(gaussian_blur(clean, s, (VOX,) * 3), clean) for s in (0.2, 0.4, 0.8, 1.6)]
    assert 0 < d[0] < d[1] < d[2] < d[3]  # a truncated spatial kernel gives d = 0 at 0.2 mm
    assert gaussian_blur(clean, 1.0, (VOX,) * 3).sum() == pytest.approx(clean.sum(), rel=1e-4)


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_severity_moves_metric_monotonically(clean, artifact):
    candidates, direction = EXPECTED[artifact]
    values = []
    for severity in SEVERITIES:
        # Median over 3 seeds: one draw of a random transform can be atypical. Motion uses
        # the parameter ranges as drawn (each calibration step is a costly TorchIO motion;
        # calibration is tested on the other artifacts).
        per_seed = [measure(simulate(clean, artifact, severity, seed=s, voxel_size=(VOX,) * 3,
                                     noise_sigma=0.01, calibrated=artifact != "motion").data,
                            "T1w", (VOX,) * 3).metrics
                    for s in range(3)]
        name, _ = _metric(per_seed[0], candidates)
        values.append(float(np.median([m[name] for m in per_seed])))
    v = np.asarray(values) * direction
    # Monotone: moderate and severe each move the metric further; a mild artifact may be
    # below what the metric resolves (e.g. sub-voxel blur) but never moves it backwards.
    tol = 0.02 * abs(v[3] - v[0])
    msg = f"{artifact}: {name} over {SEVERITIES} = {values}"
    assert v[1] >= v[0] - tol and v[2] > v[1] and v[3] > v[2] and v[2] > v[0], msg


def test_simulation_is_reproducible_and_leaves_global_rng_alone(clean):
    import torch

    torch.manual_seed(123)
    before = torch.rand(1).item()
    torch.manual_seed(123)
    a = simulate(clean, "spike", "moderate", seed=5, voxel_size=(VOX,) * 3)
    after = torch.rand(1).item()
    b = simulate(clean, "spike", "moderate", seed=5, voxel_size=(VOX,) * 3)
    c = simulate(clean, "spike", "moderate", seed=6, voxel_size=(VOX,) * 3)
    assert before == after
    np.testing.assert_array_equal(a.data, b.data)
    assert a.params == b.params and not np.array_equal(a.data, c.data)
    assert a.degradation == b.degradation and a.label == grade_of(a.degradation)
    assert a.data.dtype == np.float32


def test_params_within_severity_range():
    rng = np.random.default_rng(0)
    for artifact in ARTIFACTS:
        for severity in ("mild", "moderate", "severe"):
            p = draw_params(artifact, severity, rng)
            for name, (lo, hi) in SEVERITY_RANGES[artifact][severity].items():
                assert lo <= p[name] <= hi
    assert draw_params("motion", "none", rng) == {}


def test_wrap_around_folds_energy_back():
    x = np.zeros((10, 20, 4), dtype=np.float32)
    x[:, 2:18, :] = 1.0
    out = wrap_around(x, 0.75, axis=1)
    assert out.shape == (10, 12, 4)
    assert np.isclose(out.sum(), x.sum())  # nothing lost, only folded
    assert out.max() == 2.0  # overlapped rows add up
    ref = wrap_around(x, 0.75, axis=1, fold=False)  # the same field of view, nothing folded
    assert ref.shape == out.shape and ref.max() == 1.0 and ref.sum() == 10 * 12 * 4


def test_noise_is_the_only_change_for_none(clean):
    sim = simulate(clean, "ghosting", "none", seed=1, noise_sigma=0.0)
    np.testing.assert_allclose(sim.data, clean, atol=1e-6)


def test_series_shape_and_temporal_artifacts(clean):
    sim = simulate_series(clean, "spike", "severe", n_volumes=6, seed=2, voxel_size=(VOX,) * 3)
    assert sim.data.shape == clean.shape + (6,)
    assert sim.params["affected_volumes"] and len(sim.params["affected_volumes"]) < 6
    still = simulate_series(clean, "none", "none", n_volumes=6, seed=2, voxel_size=(VOX,) * 3)
    moved = simulate_series(clean, "motion", "severe", n_volumes=6, seed=2, voxel_size=(VOX,) * 3)
    dev = lambda s: float(np.mean(np.std(s.data, axis=3)))  # noqa: E731
    assert dev(moved) > 2 * dev(still)


def test_bad_arguments_raise_clear_errors(clean):
    with pytest.raises(ArtifactError, match="unknown artifact"):
        simulate(clean, "zipper", "mild", seed=0)
    with pytest.raises(ArtifactError, match="unknown severity"):
        simulate(clean, "noise", "extreme", seed=0)
    with pytest.raises(ArtifactError, match="3-D"):
        simulate(clean[..., None], "blur", "mild", seed=0)
