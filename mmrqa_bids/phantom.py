"""A realistic head from the MNI152 template that ships with nilearn.

The template is brain-only; a scalp/fat shell, a dark skull and air are added so that masks,
background noise and ghosts behave as on a scanner image. Intensities are noise-free and
are degraded afterwards (noise, artifacts) by the dataset builder.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

# Relative signal of each tissue, per contrast (CSF, GM, WM, skull, scalp/fat).
CONTRASTS = {
    "T1w": (0.25, 0.55, 0.80, 0.08, 0.90),
    "T2w": (0.95, 0.60, 0.40, 0.06, 0.55),
    "FLAIR": (0.08, 0.70, 0.50, 0.05, 0.60),
    "bold": (0.90, 0.70, 0.55, 0.05, 0.35),
}


@dataclass(frozen=True)
class Head:
    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    skull: np.ndarray
    scalp: np.ndarray
    affine: np.ndarray

    def render(self, suffix: str) -> np.ndarray:
        c = CONTRASTS[suffix]
        img = (c[0] * self.csf + c[1] * self.gm + c[2] * self.wm
               + c[3] * self.skull + c[4] * self.scalp)
        return img.astype(np.float32)


def load_head(voxel_size: float = 1.0) -> Head:
    """Tissue fractions of a whole head on a grid of ``voxel_size`` mm (1 mm = the template).

    Every size is zoomed from the same 1 mm head, built once per process (its skull's
    distance transform is most of the cost); each call returns arrays of its own."""
    *tissues, affine = _head_1mm()
    affine = affine.copy()
    if voxel_size == 1.0:
        csf, gm, wm, skull, scalp = (a.copy() for a in tissues)
    else:  # the zoom writes new arrays: no copy of the cached ones
        csf, gm, wm, skull, scalp = (ndi.zoom(a, 1.0 / voxel_size, order=1) for a in tissues)
        affine[:3, :3] *= voxel_size
    return Head(csf=csf, gm=gm, wm=wm, skull=skull, scalp=scalp, affine=affine)


@lru_cache(maxsize=1)
def _head_1mm() -> tuple[np.ndarray, ...]:
    """(csf, gm, wm, skull, scalp, affine) of the padded 1 mm template head (read-only)."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=1)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    brain = np.asarray(t1.dataobj, dtype=np.float32) > 0.05
    affine = t1.affine.copy()
    # Pad so the head does not touch the field of view.
    pad = 12
    gm, wm, brain = (np.pad(a, pad) for a in (gm, wm, brain))
    affine[:3, 3] -= affine[:3, :3] @ np.full(3, pad)
    gm = np.clip(gm, 0, 1)
    wm = np.clip(wm, 0, 1 - gm)
    csf = np.where(brain, 1.0 - gm - wm, 0.0).clip(0, 1)
    dist = ndi.distance_transform_edt(~ndi.binary_fill_holes(brain))
    skull = ((dist > 0) & (dist <= 5)).astype(np.float32)
    scalp = ((dist > 5) & (dist <= 10)).astype(np.float32)
    out = (csf, gm, wm, skull, scalp, affine)
    for a in out:
        a.flags.writeable = False
    return out


def rician(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise on both channels."""
    re = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
    im = rng.normal(0, sigma, clean.shape).astype(np.float32)
    return np.sqrt(re * re + im * im)
