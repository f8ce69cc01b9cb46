import io

import numpy as np
from PIL import Image

from mmrqa_bids.metrics import measure
from mmrqa_bids.reports import mosaics

from reports_helpers import phantom


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_report_mosaic_draws_head_and_air_contours():
    m = measure(phantom(), "T1w")
    rgb = _decode(mosaics.report_mosaic(m.reference, m.head, "axial", n=5, tile=64))
    assert rgb.shape == (64, 5 * 64, 3)
    assert (rgb == mosaics.HEAD_RGB).all(axis=2).sum() > 100
    assert (rgb == mosaics.AIR_RGB).all(axis=2).sum() > 100
    plain = _decode(mosaics.report_mosaic(m.reference, m.head, "axial", n=5, tile=64, contours=False))
    assert not (plain == mosaics.HEAD_RGB).all(axis=2).any()


def test_contour_is_the_one_pixel_inner_boundary():
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    edge = mosaics.contour(mask)
    assert edge.sum() == 16 and not edge[3:6, 3:6].any()
    full = np.ones((5, 5), bool)
    assert mosaics.contour(full).sum() == 16 and not mosaics.contour(full, outside=True).any()


def test_background_view_stretches_the_air():
    vol = phantom(noise=0.02)
    m = measure(vol, "T1w")
    low, high = mosaics.air_window(m.reference, m.head)
    head_low, head_high = mosaics.window(m.reference, m.head)
    assert high < 0.2 * head_high  # the head saturates, the noise spreads over the range
    rgb = _decode(mosaics.background_mosaic(m.reference, m.head, n=4, tile=64))
    assert rgb.shape == (2 * 64, 4 * 64, 3)
    air = ~np.isin(rgb.reshape(-1, 3), np.array([mosaics.HEAD_RGB])).all(axis=1)
    assert len(np.unique(rgb.reshape(-1, 3)[air], axis=0)) > 30  # noise texture, not flat


def test_zero_background_falls_back_to_the_head_window():
    vol = phantom(noise=0.0)
    m = measure(vol + 0, "T1w")
    low, high = mosaics.air_window(m.reference, m.head)
    assert high - low >= 0.01 * (mosaics.window(m.reference, m.head)[1] - mosaics.window(m.reference, m.head)[0]) - 1e-6


def test_near_head_is_the_full_volume_dilation():
    """The dilation on the head's box equals scipy's on the whole volume, heads touching the
    volume's edges and empty ones included."""
    from scipy import ndimage as ndi
    from mmrqa_bids.reports.mosaics import near_head

    rng = np.random.default_rng(0)
    for _ in range(60):
        shape = tuple(int(n) for n in rng.integers(1, 12, size=3))
        head = rng.random(shape) > rng.uniform(0.7, 1.0)
        for iterations in (1, 2, 3):
            assert np.array_equal(near_head(head, iterations),
                                  ndi.binary_dilation(head, iterations=iterations))


def test_png_keeps_the_pixels_and_palette():
    from PIL import Image
    from mmrqa_bids.reports.mosaics import HEAD_RGB, noise_colours, overlay, png_bytes

    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, size=(40, 70), dtype=np.uint8)
    img = overlay(grey, [(grey > 250, HEAD_RGB)], colours=noise_colours())
    back = Image.open(io.BytesIO(png_bytes(img)))
    assert np.array_equal(np.asarray(back), np.asarray(img))
    assert back.getpalette() == img.getpalette()
