"""Image quality metrics. :func:`compute` is the one entry point the workflow calls."""
from __future__ import annotations

from dataclasses import dataclass

import nibabel as nb
import numpy as np

from mmrqa_bids.metrics import anatomical, functional
from mmrqa_bids.metrics.masks import background_mask, head_mask
from mmrqa_bids.metrics.names import (ANAT_FEATURES, ANAT_METRICS, FUNC_FEATURES,  # noqa: F401
                                      FUNC_METRICS)


@dataclass(frozen=True)
class Measured:
    metrics: dict[str, float]
    head: np.ndarray
    background: np.ndarray
    reference: np.ndarray  # 3-D volume the masks belong to (mean over time for bold)


def measure(data: np.ndarray, suffix: str) -> Measured:
    """Masks once per volume, then every metric for the run."""
    ref = data.mean(axis=3) if data.ndim == 4 else data
    head = head_mask(ref)
    bg = background_mask(head) & (ref != 0)  # zero-filled borders are not air
    metrics = anatomical.first_set(ref, head, bg)
    if data.ndim == 4:
        metrics["tsnr"] = functional.tsnr(data, head)
        metrics["dvars_std"] = functional.dvars_std(data, head)
    return Measured(metrics=metrics, head=head, background=bg, reference=ref)


def compute(img: nb.Nifti1Image, suffix: str) -> dict[str, float]:
    """Every metric for the run, keyed by name."""
    data = np.asarray(img.dataobj, dtype=np.float32)
    return measure(data, suffix).metrics
