"""Head, background and brain masks: robust to noise, gain, zero-filled borders, ghosts."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from metrics_phantoms import make_sphere, sphere_labels  # noqa: F401 (fixtures)
from mmrqa_bids.metrics import masks as M


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_head_mask_of_the_sphere(make_sphere):
    ph = make_sphere(20.0)
    truth = np.zeros_like(ph.labels["wm"])
    for m in ph.labels.values():
        truth |= m
    masks = M.compute_masks(ph.image)
    assert _dice(masks.head, truth) > 0.97
    assert not (masks.background & ndi.binary_dilation(truth, iterations=3)).any()
    brain = ph.labels["wm"] | ph.labels["gm"] | ph.labels["csf"]
    assert _dice(masks.brain, brain) > 0.9


def test_gain_zero_fill_and_ghost(make_sphere):
    ph = make_sphere(20.0)
    ref = M.compute_masks(ph.image)
    assert np.array_equal(M.compute_masks(ph.image * 0.01).head, ref.head)
    zero_filled = ph.image.copy()
    zero_filled[:, :, :4] = 0
    masks = M.compute_masks(zero_filled)
    assert not masks.background[:, :, :4].any()
    assert _dice(masks.head, ref.head) > 0.99
    # A detached bright blob in the air (a ghost, a marker) is not head.
    blob = ph.image.copy()
    blob[2:6, 2:6, 2:6] = 900.0
    assert not M.compute_masks(blob).head[2:6, 2:6, 2:6].any()


def test_head_cut_by_the_field_of_view_is_filled(make_sphere):
    ph = make_sphere(20.0)
    cut = ph.image[:, :, 20:]  # the sphere is open at the bottom slice
    head = M.compute_masks(cut).head
    assert head[36, 36, 0]  # the centre of the cut face is inside, not a hole


def test_downsampled_path_matches_shapes_and_fill_holes():
    rng = np.random.default_rng(0)
    data = rng.random((33, 20, 17)).astype(np.float32)
    small = M.block_mean(data, 2)
    assert small.shape == (16, 10, 8)
    assert small[0, 0, 0] == pytest.approx(data[:2, :2, :2].mean(), rel=1e-6)
    up = M.upsample(small > 0.5, 2, data.shape)
    assert up.shape == data.shape and up[32, 19, 16] == (small[15, 9, 7] > 0.5)
    box = (slice(3, 30), slice(1, 20), slice(0, 17))
    assert np.array_equal(M.upsample_box(small, 2, box), M.upsample(small, 2, data.shape)[box])
    blobs = rng.random((30, 30, 30)) > 0.6
    assert np.array_equal(M.fill_holes(blobs), ndi.binary_fill_holes(blobs))


def test_big_volume_uses_the_2x_grid():
    shape = (140, 140, 120)
    assert M.mask_factor(shape) == 2
    g = np.indices(shape, dtype=np.float32)
    ball = sum((gi - s / 2) ** 2 for gi, s in zip(g, shape)) < 50 ** 2
    rng = np.random.default_rng(0)
    img = np.abs(600.0 * ball + rng.normal(0, 20, shape) + 1j * rng.normal(0, 20, shape))
    masks = M.compute_masks(img.astype(np.float32), with_brain=False)
    assert masks.factor == 2 and masks.head.shape == shape
    assert _dice(masks.head, ball) > 0.97


def test_background_is_the_hat_above_the_brain(make_sphere):
    """A real scan's neck is darker than the head's Otsu threshold (coil shading) and falls
    outside the head mask; the background metrics read only the air above the brain's centre,
    so it does not count as artifact in the air (MRIQC's "hat", Mortamet et al. 2009)."""
    from mmrqa_bids.metrics.anatomical import qi_1

    ph = make_sphere(20.0)
    rng = np.random.default_rng(1)
    # 24 slices of noisy air below the sphere, and a neck through them up into the head.
    below = np.abs(rng.normal(0, 20.0, ph.image.shape[:2] + (24,)) + 1j * rng.normal(
        0, 20.0, ph.image.shape[:2] + (24,))).astype(np.float32)
    necked = np.concatenate([below, ph.image], axis=2)
    grid = np.indices(necked.shape)
    neck = ((grid[0] - 35.5) ** 2 + (grid[1] - 35.5) ** 2 < 12 ** 2) & (grid[2] < 30)
    necked[neck] += 150.0  # far above the noise (sigma 20), below the head's Otsu threshold
    masks = M.compute_masks(necked)
    assert not masks.background[neck].any()
    assert not masks.background[:, :, :50].any() and masks.background[:, :, 60:].any()
    assert qi_1(masks.small, masks.background_small) < 1e-3
    everywhere = ~ndi.binary_dilation(masks.head_small, iterations=4)
    assert qi_1(masks.small, everywhere) > 0.01  # what the whole air would have said


def test_hat_falls_back_to_all_air_when_too_little_lies_above():
    ref = np.zeros((10, 10, 20), bool)
    ref[3:7, 3:7, 14:20] = True  # a head at the top of the field of view
    assert M.hat_mask(ref).all()
    ref[:] = False
    ref[3:7, 3:7, 4:11] = True  # centre z = 7
    hat = M.hat_mask(ref)
    assert not hat[:, :, :7].any() and hat[:, :, 7:].all()
