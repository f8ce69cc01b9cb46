"""Image quality metrics. :func:`measure` (arrays) and :func:`compute` (a nibabel image) are
the entry points; the names they return are listed in :mod:`mmrqa_bids.metrics.names`:

- ``ANAT_FEATURES`` / ``FUNC_FEATURES``: the scale-free metrics the graders use (stable);
- ``ANAT_METRICS`` / ``FUNC_METRICS``: every key returned for an anatomical / bold run.

Volume-wise metrics carry MRIQC names (``snr_total``, ``cjv``, ``efc``, ...); the slice-wise
MRQy set is returned as ``mrqy_<NAME>`` (``mrqy_MEAN``, ``mrqy_SNR1``, ...), see
:mod:`mmrqa_bids.metrics.mrqy` for the documented fixes of MRQy's defects.
"""
from __future__ import annotations

from dataclasses import dataclass

import nibabel as nb
import numpy as np

from mmrqa_bids.io import RunInputError
from mmrqa_bids.metrics import anatomical, functional
from mmrqa_bids.metrics.masks import compute_masks
from mmrqa_bids.metrics.mrqy import mrqy_metrics
from mmrqa_bids.metrics.names import (ANAT_FEATURES, ANAT_METRICS, FUNC_FEATURES,  # noqa: F401
                                      FUNC_METRICS)
from mmrqa_bids.metrics.tissues import TISSUE_CODES

__all__ = ["ANAT_FEATURES", "ANAT_METRICS", "FUNC_FEATURES", "FUNC_METRICS", "Measured",
           "compute", "measure"]


@dataclass(frozen=True)
class Measured:
    metrics: dict[str, float]
    head: np.ndarray
    background: np.ndarray
    reference: np.ndarray  # 3-D volume the masks belong to (mean over time for bold)
    #: tissue label map of anatomical runs (codes in ``tissues.TISSUE_CODES``); None for bold.
    tissue_labels: np.ndarray | None = None

    @property
    def tissues(self) -> dict[str, np.ndarray]:
        """csf/gm/wm masks from :attr:`tissue_labels` (empty for bold)."""
        if self.tissue_labels is None:
            return {}
        return {name: self.tissue_labels == code for name, code in TISSUE_CODES.items()}


def measure(data: np.ndarray, suffix: str,
            zooms: tuple[float, ...] | None = None, inu: str = "polynomial") -> Measured:
    """Masks once per volume, then every metric for the run.

    ``data``: float array in canonical (RAS) orientation, 3-D, or 4-D (x, y, z, t) for bold.
    ``zooms``: voxel sizes in mm (x, y, z[, t]); FWHM and FD are in voxels when omitted.
    ``inu``: bias-field estimator of anatomical runs, ``"polynomial"`` (default) or ``"n4"``
    (:mod:`mmrqa_bids.metrics.inu`; slower, and its ``inu_*`` values differ).
    Raises :class:`~mmrqa_bids.io.RunInputError` when no head can be told from the air.
    """
    data = np.asarray(data, dtype=np.float32)
    vox = tuple(float(z) for z in (zooms or (1.0, 1.0, 1.0))[:3])
    if suffix == "bold" or data.ndim == 4:
        if data.ndim != 4:
            raise RunInputError(f"a bold run must be 4-D, got shape {data.shape}")
        ref = data.mean(axis=3)
    else:
        if data.ndim != 3:
            raise RunInputError(f"an anatomical run must be 3-D, got shape {data.shape}")
        ref = data
    masks = compute_masks(ref)  # bold too: its inu_* are fitted on the brain of the mean EPI
    if not masks.head_small.any() or masks.head_small.all():
        raise RunInputError("no head found: the image has no foreground distinct from air")
    labels = None
    if data.ndim == 4:
        metrics = functional.functional_metrics(data, ref, masks, vox)
    else:
        metrics, labels = anatomical.anatomical_metrics(data, masks, suffix, vox,
                                                         return_tissues=True, inu=inu)
    metrics.update({f"mrqy_{k}": v for k, v in mrqy_metrics(ref, masks.head_like(ref)).items()})
    return Measured(metrics=metrics, head=masks.head, background=masks.background,
                    reference=ref, tissue_labels=labels)


def compute(img: nb.Nifti1Image, suffix: str, inu: str = "polynomial") -> dict[str, float]:
    """Every metric of a run, keyed by name (the image is first brought to RAS+); ``inu`` as
    in :func:`measure`."""
    img = nb.as_closest_canonical(img)
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4 and suffix != "bold" and data.shape[3] == 1:
        data = data[..., 0]
    return measure(data, suffix, tuple(img.header.get_zooms()), inu=inu).metrics
