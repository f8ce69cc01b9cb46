"""Render the slice mosaics of one run to PNG files (called inside ``MeasureRun``)."""
from __future__ import annotations

import os

import numpy as np

from mmrqa_bids.io import atomic_write_bytes
from mmrqa_bids.reports import mosaics


def render_mosaics(vol: np.ndarray, head: np.ndarray, background: np.ndarray,
                   out_dir: str, report_views: bool = True) -> dict[str, str]:
    """Write the MLLM input mosaic and, when ``report_views``, the report mosaics (one per
    view in ``mosaics.VIEWS`` and the background/air mosaic) as ``out_dir/<name>.png``.

    Returns ``{name: path}``; ``"mllm"`` is always present.
    """
    images = {"mllm": mosaics.mllm_mosaic(vol, head)}
    if report_views:
        for view in mosaics.VIEWS:
            images[view] = mosaics.report_mosaic(vol, head, view, background=background)
        images["background"] = mosaics.background_mosaic(vol, head)
    paths = {}
    for name, png in images.items():
        path = os.path.join(out_dir, f"{name}.png")
        atomic_write_bytes(path, png)
        paths[name] = path
    return paths
