"""N4 bias field (opt-in ``inu="n4"``) against a known simulated field."""
from __future__ import annotations

import numpy as np
import pytest

from metrics_phantoms import make_sphere, sphere_labels  # noqa: F401 (fixtures)
from mmrqa_bids.metrics import measure
from mmrqa_bids.metrics.inu import n4_field
from mmrqa_bids.metrics.masks import compute_masks


def _known_field(shape: tuple[int, ...], strength: float) -> np.ndarray:
    x, y, z = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    return np.exp(strength * (x[:, None, None] + 0.5 * z[None, None, :]
                              + 0.6 * y[None, :, None] ** 2))


def test_n4_recovers_a_known_field_better_than_nothing(make_sphere):
    ph = make_sphere(10.0)
    true = _known_field(ph.image.shape, 0.3)
    masks = compute_masks(ph.image * true)
    field = n4_field(masks.small, masks.brain_small, (1.0, 1.0, 1.0))
    brain = masks.brain_small
    log_true = np.log(true[brain]) - np.log(true[brain]).mean()
    log_est = np.log(field[brain]) - np.log(field[brain]).mean()
    rmse_n4 = np.sqrt(np.mean((log_est - log_true) ** 2))
    rmse_flat = np.sqrt(np.mean(log_true ** 2))  # "no correction": a flat field
    assert rmse_n4 < 0.5 * rmse_flat
    assert np.corrcoef(log_est, log_true)[0, 1] > 0.9
    assert field[brain].mean() == pytest.approx(1.0, rel=1e-5)
    assert np.all(field[~brain] == 1.0)


def test_n4_inu_range_grows_with_the_field_and_is_scale_free(make_sphere):
    ph = make_sphere(10.0)
    flat = measure(ph.image, "T1w", inu="n4").metrics
    biased_img = ph.image * _known_field(ph.image.shape, 0.3)
    biased = measure(biased_img, "T1w", inu="n4").metrics
    assert biased["inu_range"] > flat["inu_range"] + 0.1
    scaled = measure(biased_img * 13.7, "T1w", inu="n4").metrics
    assert scaled["inu_range"] == pytest.approx(biased["inu_range"], rel=1e-3)
    # Only inu_* depend on the estimator.
    poly = measure(biased_img, "T1w").metrics
    assert {k for k in poly if poly[k] != biased[k]} <= {"inu_med", "inu_range"}


def test_unknown_inu_method_is_an_error(make_sphere):
    with pytest.raises(ValueError, match="unknown INU method"):
        measure(make_sphere(10.0).image, "T1w", inu="spline")
