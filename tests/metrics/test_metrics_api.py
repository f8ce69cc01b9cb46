"""compute(img, suffix) on the MNI152 head: every name, orientation/dtype invariance, and each
demo artifact moving its metric the right way."""
from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest

from mmrqa_bids.metrics import ANAT_FEATURES, ANAT_METRICS, compute
from mmrqa_bids.testing.demo_dataset import ghost, kspace_motion
from mmrqa_bids.phantom import load_head, rician


@pytest.fixture(scope="module")
def head():
    return load_head(3.0)


def _t1(head, noise=0.02, artifact=None, seed=0):
    rng = np.random.default_rng(seed)
    clean = head.render("T1w")
    if artifact == "motion":
        clean = kspace_motion(clean, 0.8, np.random.default_rng(42))
    elif artifact == "ghost":
        clean = ghost(clean, 0.6)
    return rician(clean, noise, rng) * 1000


def test_compute_returns_every_name_and_ignores_orientation_and_dtype(head):
    data = np.round(_t1(head)).astype(np.int16)
    img = nb.Nifti1Image(data, head.affine)
    m = compute(img, "T1w")
    assert set(m) == set(ANAT_METRICS)
    assert all(np.isfinite(m[k]) for k in ANAT_FEATURES)
    # The same image stored flipped (LAS) and as float32 gives the same numbers.
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = data.shape[0] - 1
    las = nb.Nifti1Image(data[::-1].astype(np.float32), head.affine @ flip)
    m2 = compute(las, "T1w")
    for k in ANAT_FEATURES:
        assert m2[k] == pytest.approx(m[k], rel=1e-4, abs=1e-9), k


def test_demo_artifacts_move_their_metrics(head):
    base = compute(nb.Nifti1Image(_t1(head), head.affine), "T1w")
    motion = compute(nb.Nifti1Image(_t1(head, artifact="motion"), head.affine), "T1w")
    ghosted = compute(nb.Nifti1Image(_t1(head, artifact="ghost"), head.affine), "T1w")
    noisy = compute(nb.Nifti1Image(_t1(head, noise=0.06), head.affine), "T1w")
    # Motion: k-space ripples spread energy into the air and blur the tissue contrast.
    assert motion["qi_1"] > base["qi_1"]
    assert motion["efc"] > base["efc"]
    assert motion["cjv"] > base["cjv"]
    # Ghost: a shifted copy of the head lands in the air.
    assert ghosted["qi_1"] > base["qi_1"] + 0.001
    assert ghosted["snrd_total"] < base["snrd_total"]
    assert ghosted["fber"] < base["fber"]
    # Noise lowers every SNR. (Not mrqy_PSNR on this 3 mm head: its peak is the slice maximum,
    # which rises with the noise, while its median-filter residual is dominated by anatomy.)
    for k in ("snr_total", "snr_wm", "snrd_total", "cnr", "mrqy_SNR1", "mrqy_SNR2"):
        assert noisy[k] < base[k], k
