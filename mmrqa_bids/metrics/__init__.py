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

from mmrqa_bids.metrics import anatomical, functional
from mmrqa_bids.metrics.masks import compute_masks
from mmrqa_bids.metrics.mrqy import mrqy_metrics
from mmrqa_bids.metrics.names import (ANAT_FEATURES, ANAT_METRICS, FUNC_FEATURES,  # noqa: F401
                                      FUNC_METRICS)
from mmrqa_bids.metrics.tissues import TISSUE_CODES

__all__ = ["ANAT_FEATURES", "ANAT_METRICS", "FUNC_FEATURES", "FUNC_METRICS", "MeasureError",
           "Measured", "compute", "measure"]


class MeasureError(Exception):
    """An array no metric can be computed on (wrong dimensionality, no head): one-line message.
    The metrics know no files; the caller names the run."""


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


_RAS = np.array([[0, 1], [1, 1], [2, 1]])


def _as_stored(ref: np.ndarray, source: nb.Nifti1Image | None) -> tuple[np.ndarray, bool | None]:
    """The RAS volume ``ref`` back in the voxel order of the file ``source`` (flips and
    transposes: views), and whether MRQy bins it per grey level (an integer-typed, unscaled
    file; None = decide from the values). Without ``source``: ``ref`` itself, decided from
    the values."""
    if source is None:
        return ref, None
    to_stored = nb.orientations.ornt_transform(_RAS, nb.orientations.io_orientation(source.affine))
    slope, inter = (source.header.get_slope_inter()
                    if hasattr(source.header, "get_slope_inter") else (None, None))
    scaled = slope is not None and (slope != 1 or (inter or 0) != 0)
    integer = not scaled and np.issubdtype(source.get_data_dtype(), np.integer)
    return nb.orientations.apply_orientation(ref, to_stored), integer


def measure(data: np.ndarray, suffix: str,
            zooms: tuple[float, ...] | None = None, inu: str = "polynomial",
            source: nb.Nifti1Image | None = None) -> Measured:
    """Masks once per volume, then every metric for the run.

    ``data``: float array in canonical (RAS) orientation, 3-D, or 4-D (x, y, z, t) for bold.
    ``zooms``: voxel sizes in mm (x, y, z[, t]); FWHM and FD are in voxels when omitted.
    ``inu``: bias-field estimator of anatomical runs, ``"polynomial"`` (default) or ``"n4"``
    (:mod:`mmrqa_bids.metrics.inu`; slower, and its ``inu_*`` values differ).
    ``source``: the run's image as stored (only its header is read). MRQy slices the file's
    third voxel axis and bins integer-typed files per grey level; with ``source`` the
    ``mrqy_*`` metrics do the same (as MRQy would on that file), without it they slice the
    RAS volume's third (inferior-superior) axis and bin per grey level when every value is
    a whole number. For bold runs they are taken on the temporal mean.
    Raises :class:`MeasureError` when no head can be told from the air.
    """
    data = np.asarray(data, dtype=np.float32)
    vox = tuple(float(z) for z in (zooms or (1.0, 1.0, 1.0))[:3])
    if suffix == "bold" or data.ndim == 4:
        if data.ndim != 4:
            raise MeasureError(f"a bold run must be 4-D, got shape {data.shape}")
        ref = data.mean(axis=3)
    else:
        if data.ndim != 3:
            raise MeasureError(f"an anatomical run must be 3-D, got shape {data.shape}")
        ref = data
    masks = compute_masks(ref)  # bold too: its inu_* are fitted on the brain of the mean EPI
    if not masks.head_small.any() or masks.head_small.all():
        raise MeasureError("no head found: the image has no foreground distinct from air")
    labels = None
    if data.ndim == 4:
        metrics = functional.functional_metrics(data, ref, masks, vox)
    else:
        metrics, labels = anatomical.anatomical_metrics(data, masks, suffix, vox,
                                                         return_tissues=True, inu=inu)
    stored, integer = _as_stored(ref, source)
    if data.ndim == 4:
        integer = None  # the temporal mean is not the file's integers
    metrics.update({f"mrqy_{k}": v for k, v in mrqy_metrics(stored, integer=integer).items()})
    return Measured(metrics=metrics, head=masks.head, background=masks.background,
                    reference=ref, tissue_labels=labels)


def compute(img: nb.Nifti1Image, suffix: str, inu: str = "polynomial") -> dict[str, float]:
    """Every metric of a run, keyed by name (the image is first brought to RAS+; the MRQy set
    follows the file's voxel order and type, see :func:`measure`); ``inu`` as in
    :func:`measure`."""
    ras = nb.as_closest_canonical(img)
    data = np.asarray(ras.dataobj, dtype=np.float32)
    if data.ndim == 4 and suffix != "bold" and data.shape[3] == 1:
        data = data[..., 0]
    return measure(data, suffix, tuple(ras.header.get_zooms()), inu=inu, source=img).metrics
