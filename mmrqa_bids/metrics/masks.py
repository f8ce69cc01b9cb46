"""Head (foreground) and background masks, computed once per volume."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: maximise the between-class variance of the histogram."""
    hist, edges = np.histogram(values, bins=bins)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between))])


def head_mask(data: np.ndarray) -> np.ndarray:
    """Foreground (head) mask of a 3-D volume.

    Otsu on a lightly smoothed copy (robust to Rician noise and gain), largest connected
    component (drops noise specks and ghosts outside the head), hole filling (dark CSF and
    bone inside the head stay foreground).
    """
    smooth = ndi.gaussian_filter(data.astype(np.float32, copy=False), sigma=1.0)
    positive = smooth[smooth > 0]
    thr = otsu_threshold(positive if positive.size else smooth.ravel())
    mask = ndi.binary_closing(smooth > thr, iterations=2)
    # Fill before keeping the largest component: the scalp shell encloses the dark skull.
    mask = ndi.binary_fill_holes(mask)
    labels, n = ndi.label(mask)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    # Slice-wise filling closes heads that are open at the neck (cut by the field of view).
    for z in range(mask.shape[2]):
        mask[:, :, z] = ndi.binary_fill_holes(mask[:, :, z])
    return mask


def background_mask(head: np.ndarray, margin_vox: int = 4) -> np.ndarray:
    """Air: voxels farther than ``margin_vox`` from the head (excludes the ghost-free margin
    around the scalp where partial volume and blur would inflate the noise estimate)."""
    return ~ndi.binary_dilation(head, iterations=margin_vox)
