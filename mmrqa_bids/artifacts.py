"""Simulated MRI artifacts with graded severity (none / mild / moderate / severe).

The augmentation MMRQA uses against the scarcity of rated scans: a clean (noise-free) image
is degraded by one artifact at a chosen severity, then Rician noise is added, because thermal
noise enters the receiver after the object has been encoded (moved, ghosted, wrapped,
spiked, shaded by the coil). The noise artifact is the exception that proves the rule: its
severity *is* the Rician noise level.

k-space and intensity artifacts use TorchIO (Pérez-García et al., Comput Methods Programs
Biomed 2021): :class:`torchio.RandomMotion`, :class:`~torchio.RandomGhosting`,
:class:`~torchio.RandomSpike`, and TorchIO's bias-field model (rescaled to a target
strength, :func:`bias_field`); blur (a Gaussian k-space apodisation, exact for sub-voxel
widths, :func:`gaussian_blur`) and wrap-around (aliasing) are written here. Every draw
comes from a seed, in a forked torch RNG state, so a (seed, artifact, severity) triple
always gives the same image and the caller's random state is left untouched. torch and
torchio are imported lazily (``[train]`` extra).

Intensities are relative: the clean image's brightest tissue is about 1 (as rendered by
:mod:`mmrqa_bids.phantom`); noise sigma is relative to that.

**Severity is a measured degradation, not a parameter range.** The same blur (in mm) is
invisible on a smooth template at 4 mm and obvious on a real subject at 3 mm; a severity named
by its parameters alone labels invisible artifacts "moderate" (label noise). Here every
severity is a band of the *relative RMS error* the artifact causes (:func:`degradation`)

    d = sqrt( sum_all (y - r)^2 / N_head ) / mean_head(r)

with ``y`` the noise-free degraded image, ``r`` the clean image in the same geometry
(:func:`reference_for`) and ``head`` the clean head (:func:`head_of`): the artifact's error
energy (also what it throws into the air: ghosts, spikes, wrap-around) per head voxel,
relative to the head's mean signal. For thermal noise, d = sigma / mean_head(r). The
artifact's strength is scaled (:func:`calibrate`) until ``d`` reaches a target drawn
log-uniformly from the severity's band in :data:`SEVERITY_BANDS`; the parameters in
:data:`SEVERITY_RANGES` are only the starting points. The grade is then read from the
measured ``d`` with fixed cuts (:data:`GRADE_CUTS`, :func:`grade_of`), which lie in the gaps
between the bands:

=========  ============  =============================================================
none       d = 0         no artifact beyond the scanner's ordinary noise floor. -> Good
mild       0.02 - 0.05   visible on close inspection only; quantitative analysis
                         unaffected.                                             -> Good
moderate   0.10 - 0.18   clearly visible; anatomy readable, but segmentation and
                         morphometry are biased; usable with care.              -> Medium
severe     0.28 - 0.45   dominates the image; anatomy or contrast compromised;
                         re-acquire.                                              -> Bad
=========  ============  =============================================================

(The ordinary noise floor, :data:`BASE_NOISE`, is d = 0.01 - 0.03.) Bold head motion is the
exception: its severity is the displacement in mm (:data:`SEVERITY_RANGES`), the unit of
framewise displacement that fMRI QC thresholds, not an image error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from mmrqa_bids.vocabulary import ARTIFACTS

SEVERITIES = ("none", "mild", "moderate", "severe")
SEVERITY_TO_LABEL = {"none": "Good", "mild": "Good", "moderate": "Medium", "severe": "Bad"}

#: severity -> (low, high) relative RMS error d (:func:`degradation`) the artifact is scaled to.
SEVERITY_BANDS: dict[str, tuple[float, float]] = {
    "mild": (0.02, 0.05), "moderate": (0.10, 0.18), "severe": (0.28, 0.45)}
#: d below the first cut is Good, below the second Medium, else Bad (in the bands' gaps).
GRADE_CUTS = (0.075, 0.22)
#: Most artifact evaluations :func:`calibrate` spends to reach its target.
CALIBRATION_STEPS = 4
#: Relative tolerance on the target d (the band, not the target, defines the severity).
CALIBRATION_TOL = 0.12

#: Rician noise sigma (relative to the brightest tissue) used when the artifact is not noise:
#: the noise floor of ordinary, good acquisitions.
BASE_NOISE = (0.006, 0.016)

#: artifact -> severity -> parameter -> (low, high). Units in the comments.
SEVERITY_RANGES: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    # Rigid head movements during the acquisition (TorchIO RandomMotion: k-space segments
    # from moved copies). degrees (rotation), translation (mm), num_transforms (movements).
    "motion": {
        "mild": {"degrees": (0.4, 0.8), "translation": (0.4, 0.8), "num_transforms": (1, 1)},
        "moderate": {"degrees": (3.0, 5.0), "translation": (3.0, 5.0), "num_transforms": (2, 3)},
        "severe": {"degrees": (8.0, 12.0), "translation": (8.0, 12.0), "num_transforms": (3, 5)},
    },
    # Periodic k-space line inconsistencies (TorchIO RandomGhosting) along the phase-encoding
    # axis: intensity (fraction of the k-space lines' energy moved into the ghosts), ghosts.
    "ghosting": {
        "mild": {"intensity": (0.08, 0.15), "num_ghosts": (2, 3)},
        "moderate": {"intensity": (0.35, 0.5), "num_ghosts": (2, 4)},
        "severe": {"intensity": (0.8, 1.0), "num_ghosts": (2, 6)},
    },
    # RF spikes (TorchIO RandomSpike): herringbone stripes. intensity (spike amplitude
    # relative to the k-space spectrum), num_spikes.
    "spike": {
        "mild": {"intensity": (0.05, 0.1), "num_spikes": (1, 1)},
        "moderate": {"intensity": (0.25, 0.4), "num_spikes": (1, 2)},
        "severe": {"intensity": (0.8, 1.2), "num_spikes": (2, 3)},
    },
    # Smooth multiplicative receive-field shading: a random order-3 polynomial log field
    # (TorchIO's BiasField model) rescaled so that its standard deviation over the head is
    # log_std (0.15 = about +-15% shading across the head).
    "inhomogeneity": {
        "mild": {"log_std": (0.03, 0.05)},
        "moderate": {"log_std": (0.12, 0.16)},
        "severe": {"log_std": (0.26, 0.34)},
    },
    # Loss of resolution: Gaussian point-spread function, std in mm (:func:`gaussian_blur`).
    "blur": {
        "mild": {"std": (0.3, 0.6)},
        "moderate": {"std": (1.2, 1.6)},
        "severe": {"std": (2.5, 3.5)},
    },
    # Thermal noise: Rician sigma relative to the brightest tissue.
    "noise": {
        "mild": {"sigma": (0.02, 0.03)},
        "moderate": {"sigma": (0.05, 0.07)},
        "severe": {"sigma": (0.11, 0.16)},
    },
    # Wrap-around: field of view along the phase-encoding axis shortened to a fraction of the
    # object's extent; what falls outside folds back onto the opposite side.
    "aliasing": {
        "mild": {"fov_fraction": (0.95, 0.97)},
        "moderate": {"fov_fraction": (0.82, 0.87)},
        "severe": {"fov_fraction": (0.65, 0.72)},
    },
}


class ArtifactError(ValueError):
    """Unknown artifact or severity, or an image the simulation cannot use."""


@dataclass(frozen=True)
class Simulated:
    """One degraded image and how it was made."""

    data: np.ndarray  # float32, same number of dimensions as the input
    artifact: str  # one of ARTIFACTS, or "none"
    severity: str  # one of SEVERITIES
    params: dict[str, Any] = field(default_factory=dict)
    #: measured relative RMS error (:func:`degradation`); None where the severity is not an
    #: image error (bold head motion, in mm).
    degradation: float | None = None

    @property
    def label(self) -> str:
        """Good / Medium / Bad: :func:`grade_of` the measured degradation, else
        :data:`SEVERITY_TO_LABEL` of the severity."""
        if self.degradation is not None:
            return grade_of(self.degradation)
        return SEVERITY_TO_LABEL[self.severity]


def grade_of(d: float) -> str:
    """The grade of a measured degradation ``d`` (:data:`GRADE_CUTS`)."""
    return "Good" if d < GRADE_CUTS[0] else "Medium" if d < GRADE_CUTS[1] else "Bad"


def head_of(reference: np.ndarray) -> np.ndarray:
    """The clean head: holes-filled ``reference > 0.1 max(reference)``."""
    from scipy import ndimage as ndi

    return ndi.binary_fill_holes(reference > 0.1 * float(reference.max()))


def degradation(image: np.ndarray, reference: np.ndarray) -> float:
    """Relative RMS error of an artifact: sqrt(sum_all (y - r)^2 / N_head) / mean_head(r).

    Summed over the whole field of view (ghosts and spikes in the air count) but normalised
    per head voxel, so it does not depend on how much air the field of view holds.
    """
    if image.shape != reference.shape:
        raise ArtifactError(f"image {image.shape} and reference {reference.shape} differ")
    head = head_of(reference)
    if not head.any():
        raise ArtifactError("the reference image has no head")
    err = np.asarray(image, dtype=np.float64) - reference
    return float(np.sqrt(np.sum(err * err) / head.sum()) / float(reference[head].mean()))


def noise_degradation(sigma: float, reference: np.ndarray) -> float:
    """d of Rician noise sigma: sigma / mean_head(r) (Rician ~ Gaussian in the head)."""
    return float(sigma) / float(reference[head_of(reference)].mean())


def draw_target(severity: str, rng: np.random.Generator) -> float:
    """A target d, log-uniform in the severity's band (:data:`SEVERITY_BANDS`)."""
    lo, hi = SEVERITY_BANDS[severity]
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def scale_params(artifact: str, params: dict[str, Any], s: float) -> dict[str, Any]:
    """The artifact's strength times ``s``: motion degrees and translation, ghosting and
    spike intensity (ghosting at most 2: every n-th line's phase inverted), bias log_std,
    blur std, and the part of the object outside the field of view (1 - fov_fraction,
    fov_fraction >= 0.3)."""
    out = dict(params)
    if artifact == "motion":
        out["degrees"], out["translation"] = params["degrees"] * s, params["translation"] * s
    elif artifact == "ghosting":
        out["intensity"] = min(2.0, params["intensity"] * s)
    elif artifact == "spike":
        out["intensity"] = params["intensity"] * s
    elif artifact == "inhomogeneity":
        out["log_std"] = params["log_std"] * s
    elif artifact == "blur":
        out["std"] = params["std"] * s
    elif artifact == "aliasing":
        out["fov_fraction"] = max(0.3, 1.0 - (1.0 - params["fov_fraction"]) * s)
    return out


def reference_for(clean: np.ndarray, artifact: str, params: dict[str, Any],
                  pe_axis: int = 1) -> np.ndarray:
    """The clean image in the degraded image's geometry: for aliasing, the field of view
    :func:`wrap_around` keeps, without the folded tails; otherwise the clean image."""
    if artifact != "aliasing" or not params:
        return clean
    return wrap_around(clean, params["fov_fraction"], axis=pe_axis, fold=False)


def calibrate(clean: np.ndarray, artifact: str, params: dict[str, Any], target: float, *,
              seed: int, voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
              pe_axis: int = 1) -> tuple[np.ndarray, dict[str, Any], float]:
    """Scale the artifact's strength (:func:`scale_params`) until its :func:`degradation`
    is within :data:`CALIBRATION_TOL` of ``target``: secant steps on log d vs log s (at most
    :data:`CALIBRATION_STEPS` evaluations; the same seed, so only the strength changes).
    Returns the degraded image, its parameters and its measured d (the closest evaluated)."""
    log_s, tried = 0.0, []
    for _ in range(CALIBRATION_STEPS):
        p = scale_params(artifact, params, float(np.exp(log_s)))
        img = apply_artifact(clean, artifact, p, seed=seed, voxel_size=voxel_size,
                             pe_axis=pe_axis)
        d = degradation(img, reference_for(clean, artifact, p, pe_axis))
        tried.append((abs(np.log(max(d, 1e-6) / target)), log_s, d, img, p))
        if abs(d / target - 1.0) <= CALIBRATION_TOL:
            break
        if d <= 1e-6:
            step = np.log(4.0)
        else:
            slope = 1.0  # d ~ s for ghosting, spikes and bias; the secant learns the rest
            if len(tried) > 1:
                (_, s0, d0, *_), (_, s1, d1, *_) = tried[-2], tried[-1]
                if s1 != s0 and d0 > 1e-6 and d1 > 1e-6:
                    slope = float(np.clip((np.log(d1) - np.log(d0)) / (s1 - s0), 0.3, 4.0))
            step = (np.log(target) - np.log(d)) / slope
        log_s = float(np.clip(log_s + step, np.log(1 / 40), np.log(40)))
    _, _, d, img, p = min(tried, key=lambda t: t[0])
    return img, p, float(d)


def check(artifact: str, severity: str) -> None:
    if artifact not in ARTIFACTS and artifact != "none":
        raise ArtifactError(f"unknown artifact {artifact!r} (choose from {', '.join(ARTIFACTS)})")
    if severity not in SEVERITIES:
        raise ArtifactError(f"unknown severity {severity!r} (choose from {', '.join(SEVERITIES)})")


def draw_params(artifact: str, severity: str, rng: np.random.Generator) -> dict[str, Any]:
    """Uniform draws within :data:`SEVERITY_RANGES` (integers for counts)."""
    check(artifact, severity)
    if artifact == "none" or severity == "none":
        return {}
    out: dict[str, Any] = {}
    for name, (lo, hi) in SEVERITY_RANGES[artifact][severity].items():
        if name.startswith("num_"):
            out[name] = int(rng.integers(int(lo), int(hi) + 1))
        else:
            out[name] = float(rng.uniform(lo, hi))
    return out


def rician(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the complex signal with N(0, sigma^2) noise on both channels:
    |(s + n_re) + i n_im| (Gudbjartsson & Patz, Magn Reson Med 1995)."""
    re = clean + rng.normal(0.0, sigma, clean.shape).astype(np.float32)
    im = rng.normal(0.0, sigma, clean.shape).astype(np.float32)
    return np.sqrt(re * re + im * im).astype(np.float32)


def wrap_around(clean: np.ndarray, fov_fraction: float, axis: int = 1,
                fold: bool = True) -> np.ndarray:
    """Aliasing from a field of view shorter than the object along ``axis``.

    With the FOV reduced to M = round(fov_fraction * N) samples, centred on the object's
    centre of mass, sampling k-space at 1/M makes the image periodic with period M:
    out[i] = sum_k in[c0 + i + k M] over every k with a valid index (the tails fold back onto
    the opposite edge). The output has M samples along ``axis``. ``fold=False`` gives the
    same field of view without the folded tails (the alias-free reference).
    """
    if not 0.3 <= fov_fraction <= 1.0:
        raise ArtifactError(f"fov_fraction must be in [0.3, 1], got {fov_fraction}")
    n = clean.shape[axis]
    support = np.flatnonzero(np.moveaxis(clean, axis, 0).reshape(n, -1).max(axis=1)
                             > 0.02 * float(clean.max()))
    if support.size == 0:
        return clean.astype(np.float32)
    extent = support[-1] - support[0] + 1
    m = max(8, min(n, int(round(fov_fraction * extent))))
    centre = (support[0] + support[-1]) / 2.0
    start = int(round(centre - m / 2.0))
    moved = np.moveaxis(clean.astype(np.float32), axis, 0)
    out = np.zeros((m,) + moved.shape[1:], dtype=np.float32)
    idx = np.arange(n)
    if not fold:
        inside = (idx >= start) & (idx < start + m)
        out[idx[inside] - start] = moved[inside]
        return np.moveaxis(out, 0, axis)
    np.add.at(out, (idx - start) % m, moved)
    return np.moveaxis(out, 0, axis)


def gaussian_blur(clean: np.ndarray, std_mm: float,
                  voxel_size: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Convolution with an isotropic Gaussian of ``std_mm``, as a k-space apodisation:
    F[out](k) = F[in](k) exp(-2 pi^2 sigma^2 k^2), sigma in voxels per axis, k in cycles per
    voxel (periodic boundary). Unlike a truncated spatial kernel it is continuous in sigma
    down to sub-voxel widths (a 0.1-voxel blur is not rounded to nothing)."""
    spectrum = np.fft.rfftn(clean.astype(np.float64))
    gain = np.ones(spectrum.shape)
    for axis, n in enumerate(clean.shape):
        k = np.fft.rfftfreq(n) if axis == clean.ndim - 1 else np.fft.fftfreq(n)
        sigma = std_mm / float(voxel_size[axis])
        shape = [1] * clean.ndim
        shape[axis] = k.size
        gain = gain * np.exp(-2.0 * np.pi ** 2 * sigma ** 2 * k ** 2).reshape(shape)
    return np.fft.irfftn(spectrum * gain, s=clean.shape).astype(np.float32)


def bias_field(clean: np.ndarray, log_std: float, seed: int, order: int = 3) -> np.ndarray:
    """A multiplicative bias field exp(sum_ijk c_ijk x^i y^j z^k), i + j + k <= ``order``
    (TorchIO's :meth:`torchio.BiasField.generate_bias_field`), with random coefficients
    (no constant term) rescaled so that std(log field) over the head equals ``log_std``."""
    import torchio as tio

    rng = np.random.default_rng(seed)
    n_terms = sum(1 for i in range(order + 1) for j in range(order + 1 - i)
                  for _ in range(order + 1 - i - j))
    coefs = rng.uniform(-1.0, 1.0, n_terms)
    coefs[0] = 0.0  # the constant term is a global gain
    log_field = np.log(tio.BiasField.generate_bias_field(clean[None], order, coefs.tolist()))
    head = clean > 0.1 * float(clean.max())
    spread = float(log_field[head].std()) if head.any() else float(log_field.std())
    return np.exp(log_field * (log_std / max(spread, 1e-12))).astype(np.float32)


def _torchio_apply(clean: np.ndarray, artifact: str, params: dict[str, Any], seed: int,
                   voxel_size: Sequence[float], pe_axis: int) -> np.ndarray:
    import torch
    import torchio as tio

    # Degenerate (v, v) ranges make TorchIO use exactly the drawn value.
    fixed = {k: (v, v) for k, v in params.items() if not k.startswith("num_")}
    if artifact == "motion":
        transform = tio.RandomMotion(degrees=fixed["degrees"], translation=fixed["translation"],
                                     num_transforms=params["num_transforms"])
    elif artifact == "ghosting":
        transform = tio.RandomGhosting(num_ghosts=(params["num_ghosts"],) * 2, axes=(pe_axis,),
                                       intensity=fixed["intensity"])
    elif artifact == "spike":
        transform = tio.RandomSpike(num_spikes=(params["num_spikes"],) * 2,
                                    intensity=fixed["intensity"])
    elif artifact == "inhomogeneity":
        return bias_field(clean, params["log_std"], seed) * clean
    else:  # pragma: no cover - guarded by the caller
        raise ArtifactError(f"{artifact!r} is not a TorchIO artifact")
    affine = np.diag([*map(float, voxel_size), 1.0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image = tio.ScalarImage(tensor=torch.from_numpy(np.ascontiguousarray(clean,
                                                                           dtype=np.float32))[None],
                                affine=affine)
        out = transform(image).data[0].numpy()
    return np.abs(out).astype(np.float32)


def apply_artifact(clean: np.ndarray, artifact: str, params: dict[str, Any], *, seed: int,
                   voxel_size: Sequence[float] = (1.0, 1.0, 1.0), pe_axis: int = 1) -> np.ndarray:
    """Apply one artifact with explicit parameters to a noise-free 3-D image (no noise)."""
    if clean.ndim != 3:
        raise ArtifactError(f"expected a 3-D image, got shape {clean.shape}")
    if artifact in ("none", "noise") or not params:
        return clean.astype(np.float32)
    if artifact == "aliasing":
        return wrap_around(clean, params["fov_fraction"], axis=pe_axis)
    if artifact == "blur":
        return np.clip(gaussian_blur(clean, params["std"], voxel_size), 0, None)
    return _torchio_apply(clean, artifact, params, seed, voxel_size, pe_axis)


def simulate(clean: np.ndarray, artifact: str, severity: str, *, seed: int,
             voxel_size: Sequence[float] = (1.0, 1.0, 1.0), pe_axis: int = 1,
             noise_sigma: float | None = None, calibrated: bool = True) -> Simulated:
    """Degrade a noise-free 3-D image: the artifact first, then Rician noise.

    With ``calibrated`` (the default) the artifact's strength is scaled until its measured
    :func:`degradation` reaches a target in the severity's band (:func:`calibrate`);
    otherwise the parameters drawn from :data:`SEVERITY_RANGES` are used as they are (d is
    still measured). ``noise_sigma`` fixes the noise floor (relative to the brightest
    tissue) for artifacts other than noise; by default it is drawn from :data:`BASE_NOISE`.
    For ``artifact="noise"`` the severity sets sigma (``none`` falls back to the floor).
    """
    check(artifact, severity)
    if clean.ndim != 3:
        raise ArtifactError(f"expected a 3-D image, got shape {clean.shape}")
    rng = np.random.default_rng(seed)
    params = draw_params(artifact, severity, rng)
    floor = float(rng.uniform(*BASE_NOISE)) if noise_sigma is None else float(noise_sigma)
    target = draw_target(severity, rng) if params else 0.0
    if not params:
        degraded, d = clean.astype(np.float32), 0.0
    elif artifact == "noise":
        d = _noise(clean, params, target, calibrated)
        degraded = clean.astype(np.float32)
    else:
        degraded, params, d = _static(clean, artifact, params, target, calibrated=calibrated,
                                      seed=seed, voxel_size=voxel_size, pe_axis=pe_axis)
    sigma = params.get("sigma", floor)
    params = {**params, "noise_sigma": sigma}
    return Simulated(rician(degraded, sigma, rng), artifact, severity, params, d)


def _noise(clean: np.ndarray, params: dict[str, Any], target: float, calibrated: bool) -> float:
    """d of the Rician noise; with ``calibrated``, first set ``params["sigma"]`` to the
    target d relative to the head's mean signal."""
    if calibrated:
        params["sigma"] = target * float(clean[head_of(clean)].mean())
    return noise_degradation(params["sigma"], clean)


def _static(clean: np.ndarray, artifact: str, params: dict[str, Any], target: float, *,
            calibrated: bool, seed: int, voxel_size: Sequence[float],
            pe_axis: int) -> tuple[np.ndarray, dict[str, Any], float]:
    """(degraded image, parameters, d) of one artifact applied to the clean image: scaled
    into the target d with ``calibrated``, else with the drawn parameters as they are."""
    if calibrated:
        return calibrate(clean, artifact, params, target, seed=seed, voxel_size=voxel_size,
                         pe_axis=pe_axis)
    degraded = apply_artifact(clean, artifact, params, seed=seed, voxel_size=voxel_size,
                              pe_axis=pe_axis)
    return degraded, params, degradation(degraded, reference_for(clean, artifact, params, pe_axis))


def simulate_series(clean: np.ndarray, artifact: str, severity: str, *, n_volumes: int,
                    seed: int, voxel_size: Sequence[float] = (3.0, 3.0, 3.0), pe_axis: int = 1,
                    noise_sigma: float | None = None,
                    physio: float = 0.01, calibrated: bool = True) -> Simulated:
    """A 4-D (bold-like) series from a noise-free 3-D image, with one artifact.

    Per volume: a global signal fluctuation and tissue-proportional physiological noise
    (``physio``, relative), then the artifact, then Rician noise. Temporal behaviour of each
    artifact: ``motion`` = rigid in-plane head jerks at random volumes (translation and
    rotation on the scale of :data:`SEVERITY_RANGES`, held until the next jerk) plus k-space
    motion within the jerk's volume; ``spike`` = RF spikes in one volume in six;
    ``ghosting``, ``inhomogeneity``, ``blur``, ``aliasing`` = the same in every volume
    (applied once to the clean image: they are linear or multiplicative); ``noise`` = the
    Rician sigma.

    Severity (with ``calibrated``, see :func:`simulate`): the static artifacts and noise are
    scaled to the band's d on the clean volume, a spike to the band's d of one spiked
    volume (the worst volumes of the run); head motion keeps the displacements of
    :data:`SEVERITY_RANGES` (mm, as framewise displacement is judged) and has no d.
    """
    from scipy import ndimage as ndi

    check(artifact, severity)
    if n_volumes < 3:
        raise ArtifactError(f"a series needs at least 3 volumes, got {n_volumes}")
    rng = np.random.default_rng(seed)
    params = draw_params(artifact, severity, rng)
    floor = float(rng.uniform(*BASE_NOISE)) if noise_sigma is None else float(noise_sigma)
    target = draw_target(severity, rng) if params else 0.0
    d: float | None = 0.0
    if artifact == "noise" and params:
        d = _noise(clean, params, target, calibrated)
    elif artifact == "motion" and params:
        d = None
    elif params:
        static, params, d = _static(clean, artifact, params, target, calibrated=calibrated,
                                    seed=seed, voxel_size=voxel_size, pe_axis=pe_axis)
    sigma = params.get("sigma", floor)
    tissue = clean > 0.05 * float(clean.max())
    hit: set[int] = set()
    if artifact == "motion" and params:
        hit = set(rng.choice(np.arange(1, n_volumes), size=min(n_volumes - 1,
                                                                 params["num_transforms"] + 1),
                             replace=False).tolist())
    elif artifact == "spike" and params:
        hit = set(rng.choice(n_volumes, size=max(1, n_volumes // 6), replace=False).tolist())
    # Static artifacts are linear in the image (ghosting, blur, aliasing) or multiplicative
    # (bias field): applied once to the clean image, they equal the per-volume application
    # up to the small physiological fluctuations.
    if artifact in ("ghosting", "inhomogeneity", "blur", "aliasing") and params:
        clean = static
        tissue = clean > 0.05 * float(clean.max())
    pose = np.zeros(3)  # in-plane shift (voxels, 2) and rotation (degrees), held until the next jerk
    vols = []
    for t in range(n_volumes):
        vol = clean * (1.0 + 0.005 * rng.standard_normal())
        vol = vol + physio * clean * rng.standard_normal(clean.shape).astype(np.float32) * tissue
        vol = vol.astype(np.float32)
        if artifact == "motion" and t in hit:
            step_vox = params["translation"] / float(voxel_size[0])
            pose = pose + np.array([*(rng.uniform(-1, 1, 2) * step_vox),
                                    rng.uniform(-1, 1) * params["degrees"]])
        if artifact == "motion" and np.any(pose):
            vol = ndi.rotate(vol, float(pose[2]), axes=(0, 1), reshape=False, order=1)
            vol = ndi.shift(vol, (pose[0], pose[1], 0.0), order=1)
        if artifact == "motion" and t in hit:  # the jerk itself happens during this volume
            vol = apply_artifact(vol, "motion", {**params, "num_transforms": 1}, seed=seed + t,
                                 voxel_size=voxel_size, pe_axis=pe_axis)
        if artifact == "spike" and t in hit:
            vol = apply_artifact(vol, "spike", params, seed=seed + t, voxel_size=voxel_size,
                                 pe_axis=pe_axis)
        vols.append(rician(np.clip(vol, 0, None), sigma, rng))
    params = {**params, "noise_sigma": sigma, "affected_volumes": sorted(hit)}
    return Simulated(np.stack(vols, axis=-1), artifact, severity, params, d)
