"""Simulated artifacts: reproducible, and each severity step moves its metric one way."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torchio")

from mmrqa_bids.artifacts import (ARTIFACTS, SEVERITIES, SEVERITY_RANGES, SEVERITY_TO_LABEL,  # noqa: E402
                                  ArtifactError, draw_params, simulate, simulate_series,
                                  wrap_around)
from mmrqa_bids.metrics import measure  # noqa: E402
from mmrqa_bids.train.classifier import load_tpm_head  # noqa: E402

VOX = 4.0

# artifact -> (metric candidates, direction as severity grows). The first candidate the
# metrics engine computes is used (names follow the engine: MRIQC-style first, MRQy's next).
EXPECTED = {
    "motion": (("snrd_total", "snr1", "mrqy_SNR1", "efc"), -1),
    "ghosting": (("snrd_total", "snr1", "mrqy_SNR1"), -1),
    "spike": (("snrd_total", "snr1", "mrqy_SNR1"), -1),
    "noise": (("snr_total", "snr1", "mrqy_SNR1", "cnr"), -1),
    # inu_range (N4) is not used: its estimate saturates for the strongest fields.
    "inhomogeneity": (("cv", "mrqy_CV"), +1),
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


@pytest.mark.parametrize("artifact", ARTIFACTS)
def test_severity_moves_metric_monotonically(clean, artifact):
    candidates, direction = EXPECTED[artifact]
    values = []
    for severity in SEVERITIES:
        # Median over 3 seeds: one draw of a random transform can be atypical.
        per_seed = [measure(simulate(clean, artifact, severity, seed=s, voxel_size=(VOX,) * 3,
                                     noise_sigma=0.01).data, "T1w", (VOX,) * 3).metrics
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
    a = simulate(clean, "motion", "moderate", seed=5, voxel_size=(VOX,) * 3)
    after = torch.rand(1).item()
    b = simulate(clean, "motion", "moderate", seed=5, voxel_size=(VOX,) * 3)
    c = simulate(clean, "motion", "moderate", seed=6, voxel_size=(VOX,) * 3)
    assert before == after
    np.testing.assert_array_equal(a.data, b.data)
    assert a.params == b.params and not np.array_equal(a.data, c.data)
    assert a.label == "Medium" and a.data.dtype == np.float32


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
