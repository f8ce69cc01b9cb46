"""Rendering the metric classifier's examples: domain randomisation, elastic deformation,
the scanner's field of view and bias field (mmrqa_bids/train/metric_model/rendering.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torchio")

from mmrqa_bids.train.metric_model import rendering  # noqa: E402
from mmrqa_bids.train.metric_model.recipe import Example  # noqa: E402
from mmrqa_bids.train.metric_model.sources import TrainingError  # noqa: E402


def _box_head(n: int = 24):
    """A small synthetic head: WM core, GM shell, CSF shell, skull and scalp (no template)."""
    from mmrqa_bids.phantom import Head

    r = np.linalg.norm(np.indices((n,) * 3) - (n - 1) / 2, axis=0)
    shells = [(r < 4), (r >= 4) & (r < 6), (r >= 6) & (r < 7), (r >= 7) & (r < 8),
              (r >= 8) & (r < 9)]
    wm, gm, csf, skull, scalp = (s.astype(np.float32) for s in shells)
    return Head(csf=csf, gm=gm, wm=wm, skull=skull, scalp=scalp, affine=np.eye(4))


def _render(**kw):
    ex = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=5, **kw)
    return rendering._render_clean(_box_head(), ex, np.random.default_rng(11))


def test_cubic_zoom_keeps_edges_sharper_than_linear():
    """Mean absolute gradient of the zoomed head: linear interpolation smooths it."""
    def sharpness(img):
        return float(np.mean(np.abs(np.diff(img, axis=0))))
    linear, cubic = _render(zoom_jitter=0.15), _render(zoom_jitter=0.15, zoom_order=3)
    assert linear.shape == cubic.shape  # same draw of the zoom
    assert cubic.min() >= 0
    assert sharpness(cubic) > 1.03 * sharpness(linear)


def test_native_zoom_resizes_the_head_and_keeps_its_outline_sharp(monkeypatch):
    """zoom_native zooms the tissue maps on their own (finer) grid: the head changes size as
    with the image zoom, but its outline stays as sharp as a plain rendering's."""
    from mmrqa_bids.metrics.anatomical import head_edge
    from mmrqa_bids.phantom import Head
    from mmrqa_bids.train.metric_model import sources

    r = np.linalg.norm(np.indices((72,) * 3) - 35.5, axis=0)
    shells = [(r < 12), (r >= 12) & (r < 18), (r >= 18) & (r < 21), (r >= 21) & (r < 24),
              (r >= 24) & (r < 27)]
    wm, gm, csf, skull, scalp = (x.astype(np.float32) for x in shells)
    fine = Head(csf=csf, gm=gm, wm=wm, skull=skull, scalp=scalp, affine=np.eye(4))
    monkeypatch.setattr(sources, "load_native_head", lambda anatomy: (fine, 1.0))
    coarse = sources.resample_head(fine, 1.0, (3.0, 3.0, 3.0))
    assert coarse.csf.shape == (24, 24, 24)

    def render(**kw):
        ex = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=5, **kw)
        return rendering._render_clean(coarse, ex, np.random.default_rng(11))

    def edge(img):
        head = img > 0.05 * img.max()
        return head_edge(img, head, 0.0)

    plain = render()
    image_zoom = render(zoom_jitter=0.15, zoom_order=3)
    native_zoom = render(zoom_jitter=0.15, zoom_order=3, zoom_native=True)
    assert native_zoom.shape != plain.shape and image_zoom.shape != plain.shape
    assert edge(native_zoom) > edge(image_zoom)
    assert edge(native_zoom) == pytest.approx(edge(plain), abs=0.1)
    key = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=5).key()
    assert Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=5,
                   zoom_native=False).key() == key


def test_plain_share_and_texture():
    plain = _render()
    assert np.array_equal(_render(zoom_jitter=0.15, smooth_jitter=0.5, contrast_jitter=0.5,
                                  plain=1.0), plain)
    textured = _render(texture=0.3)
    head = _box_head()
    core = head.wm > 0.5
    assert np.ptp(plain[core]) == 0  # a template tissue is uniform ...
    assert textured[core].std() / textured[core].mean() > 0.01  # ... a textured one is not
    assert abs(textured[core].mean() / plain[core].mean() - 1) < 0.2


def test_elastic_deform_moves_by_at_most_the_largest_shift():
    """On a ramp along x the intensity change is the x displacement: bounded by max_shift,
    and reaching a good part of it (the field is scaled to its largest vector norm)."""
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32)[:, None, None] + 100,
                           (40, 36, 32)).copy()
    out = rendering.elastic_deform(ramp, 2.0, 5.0, np.random.default_rng(0))
    inner = (slice(4, -4),) * 3
    shift = np.abs(out - ramp)[inner]
    assert shift.max() <= 2.0 + 1e-3 and shift.max() > 0.5
    assert np.array_equal(rendering.elastic_deform(ramp, 0.0, 5.0, np.random.default_rng(0)), ramp)
    again = rendering.elastic_deform(ramp, 2.0, 5.0, np.random.default_rng(0))
    assert np.array_equal(out, again)


def test_scanner_nuisance_pads_the_field_of_view_and_adds_a_bias_field():
    clean = _render()
    ex = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=1, scanner=1.0)
    out = rendering._scanner_nuisance(clean, ex, np.random.default_rng(0))
    lo, hi = (int(round(mm / 3.0)) for mm in rendering.SCANNER_FOV_MM)
    assert all(lo <= n <= hi for n in out.shape[:2]) and out.shape[2] == clean.shape[2]
    # The same head, moved by the padding and multiplied by a smooth, non-constant field.
    def nonzero_box(a):
        return a[tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(a))]

    head, moved = nonzero_box(clean), nonzero_box(out)
    assert moved.shape == head.shape
    field = moved[head > 0] / head[head > 0]
    assert 0.5 < field.min() and field.max() < 2 and field.std() > 1e-3
    plain = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=1)
    assert np.array_equal(
        rendering._scanner_nuisance(clean, plain, np.random.default_rng(0)), clean)
    assert np.array_equal(rendering._scanner_nuisance(clean, ex, np.random.default_rng(0)), out)


def test_shell_only_random_contrast_keeps_the_brain_signals_near_the_named_contrast():
    from mmrqa_bids.phantom import CONTRASTS, Head

    maps = {t: np.zeros((5, 1, 1), np.float32) for t in ("csf", "gm", "wm", "skull", "scalp")}
    for i, t in enumerate(maps):
        maps[t][i] = 1.0  # one voxel per tissue: the rendering is the tissue signals
    head = Head(**maps, affine=np.eye(4))
    ex = Example(family="bold", split="train", anatomy="mni", contrast="bold", voxel_size=4.0,
                 artifact="noise", severity="none", seed=0, contrast_jitter=0.5,
                 random_contrast=1.0, random_tissues="shell")
    base = np.array(CONTRASTS["bold"])
    brain, shell = [], []
    for seed in range(40):
        img = rendering._render_clean(head, ex, np.random.default_rng(seed)).ravel()
        brain.append(img[:3] / base[:3])
        shell.append(img[3:])
    brain, shell = np.array(brain), np.array(shell)
    # Brain tissues: the named signals times exp(U(-0.5, 0.5)) (clipped at 1); shell: U(0.03, 1).
    assert np.all(brain >= np.exp(-0.5) - 1e-6) and np.all(brain <= np.exp(0.5) + 1e-6)
    assert brain.std(axis=0).min() > 0.1  # jittered, not fixed
    assert shell.min() >= 0.03 and shell.max() <= 1.0 and shell[:, 1].std() > 0.15
    assert Example(**{**ex.__dict__, "random_tissues": "all"}).key() != ex.key()
    with pytest.raises(TrainingError, match="random_tissues"):
        rendering._render_clean(head, Example(**{**ex.__dict__, "random_tissues": "brain"}),
                                np.random.default_rng(0))
