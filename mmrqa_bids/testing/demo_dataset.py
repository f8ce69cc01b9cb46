"""Build a small BIDS dataset from the MNI152 head, with Rician noise and simple artifacts.

    python -m mmrqa_bids.testing.demo_dataset OUT_DIR [--voxel-size 1.0] [--small]

Used by ``make demo`` and by the end-to-end tests. The artifacts here are deliberately
simple (k-space line replacement, a ghost copy, noise, blur) so that the demo grades differ;
graded, physically-modelled artifacts for training live in :mod:`mmrqa_bids.artifacts`.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nibabel as nb
import numpy as np
from scipy import ndimage as ndi

from mmrqa_bids.phantom import Head, load_head, rician


@dataclass(frozen=True)
class RunPlan:
    subject: str
    suffix: str
    session: str | None = None
    run: int | None = None
    task: str | None = None
    noise: float = 0.012  # Rician sigma relative to the brightest tissue
    artifact: str | None = None  # motion | ghost | blur | None
    severity: float = 0.0  # 0..1
    gain: float = 1000.0
    n_volumes: int = 24  # bold only

    @property
    def datatype(self) -> str:
        return "func" if self.suffix == "bold" else "anat"

    @property
    def filename(self) -> str:
        parts = [f"sub-{self.subject}"]
        if self.session:
            parts.append(f"ses-{self.session}")
        if self.task:
            parts.append(f"task-{self.task}")
        if self.run is not None:
            parts.append(f"run-{self.run:02d}")
        return "_".join(parts + [self.suffix]) + ".nii.gz"

    def relpath(self) -> Path:
        folder = Path(f"sub-{self.subject}")
        if self.session:
            folder /= f"ses-{self.session}"
        return folder / self.datatype / self.filename


DEMO_PLANS: tuple[RunPlan, ...] = (
    RunPlan("01", "T1w", session="1"),
    RunPlan("01", "T1w", session="2", run=1),
    RunPlan("01", "T1w", session="2", run=2, artifact="motion", severity=0.5),
    RunPlan("01", "bold", session="1", task="rest"),
    RunPlan("02", "T1w"),
    RunPlan("02", "T2w"),
    RunPlan("02", "bold", task="rest", artifact="motion", severity=0.8),
    RunPlan("03", "T1w", noise=0.05),
    RunPlan("03", "T1w", run=2, artifact="ghost", severity=0.6),
    RunPlan("04", "T1w", artifact="motion", severity=1.0, noise=0.08),
    # More runs of the same protocols (clean, each participant with its own gain and noise
    # floor), so that the T1w and bold cohorts are large enough for dataset grades
    # (mmrqa_bids.cohorts.relative.MIN_COHORT_SIZE); the lone T2w run keeps the absolute
    # model's grade, flagged.
    RunPlan("05", "T1w", noise=0.010, gain=900.0),
    RunPlan("06", "T1w", noise=0.014, gain=1150.0),
    RunPlan("07", "T1w", noise=0.012, gain=1050.0),
    RunPlan("03", "bold", task="rest", noise=0.010, gain=900.0),
    RunPlan("04", "bold", task="rest", noise=0.014, gain=1100.0),
    RunPlan("05", "bold", task="rest", noise=0.012, gain=950.0),
    RunPlan("06", "bold", task="rest", noise=0.011, gain=1050.0),
    RunPlan("07", "bold", task="rest", noise=0.013, gain=1000.0),
    RunPlan("08", "bold", task="rest", noise=0.012, gain=1200.0),
)


def kspace_motion(img: np.ndarray, severity: float, rng: np.random.Generator,
                  axis: int = 1) -> np.ndarray:
    """Replace a share of phase-encoding lines with those of a moved copy of the image."""
    if severity <= 0:
        return img
    moved = ndi.shift(ndi.rotate(img, 3.0 * severity + 1.0, axes=(0, 1), reshape=False, order=1),
                      (2.0 * severity, 3.0 * severity, 0), order=1)
    k = np.fft.fftn(img)
    km = np.fft.fftn(moved)
    n = img.shape[axis]
    lines = rng.random(n) < 0.15 + 0.35 * severity
    sel = [slice(None)] * img.ndim
    sel[axis] = lines
    k[tuple(sel)] = km[tuple(sel)]
    return np.abs(np.fft.ifftn(k)).astype(np.float32)


def ghost(img: np.ndarray, severity: float, axis: int = 1) -> np.ndarray:
    """N/2 (Nyquist) ghost: a shifted, attenuated copy along the phase-encoding axis."""
    return (img + 0.25 * severity * np.roll(img, img.shape[axis] // 2, axis=axis)).astype(np.float32)


def degrade(clean: np.ndarray, plan: RunPlan, rng: np.random.Generator) -> np.ndarray:
    img = clean
    if plan.artifact == "motion":
        img = kspace_motion(img, plan.severity, rng)
    elif plan.artifact == "ghost":
        img = ghost(img, plan.severity)
    elif plan.artifact == "blur":
        img = ndi.gaussian_filter(img, 0.5 + 2.0 * plan.severity).astype(np.float32)
    elif plan.artifact is not None:
        raise ValueError(f"unknown demo artifact {plan.artifact!r}")
    return rician(img, plan.noise, rng)


def _bold_series(head: Head, plan: RunPlan, rng: np.random.Generator) -> np.ndarray:
    return bold_series(head.render("bold"), plan, rng)


def bold_series(base: np.ndarray, plan: RunPlan, rng: np.random.Generator) -> np.ndarray:
    """A short EPI series from one rendered volume: global drift, 1% physiological noise in
    the head, Rician noise, and with ``artifact="motion"`` a head jerk in the second half."""
    mask = base > 0.2
    vols = []
    for t in range(plan.n_volumes):
        vol = base * (1 + 0.01 * rng.standard_normal() + 0.004 * np.sin(t / 3.0))
        if plan.artifact == "motion" and t >= plan.n_volumes // 2:
            # A head jerk in the second half of the run.
            vol = ndi.shift(vol, (0.0, 1.5 * plan.severity * (1 + t % 3), 0.0), order=1)
        vol = vol + 0.01 * rng.standard_normal(vol.shape).astype(np.float32) * mask
        vols.append(rician(vol.astype(np.float32), plan.noise, rng))
    return np.stack(vols, axis=-1)


def build_dataset(root: str | Path, plans: Sequence[RunPlan] = DEMO_PLANS,
                  voxel_size: float = 1.0, bold_voxel_size: float = 3.0,
                  seed: int = 0) -> list[Path]:
    """Write a BIDS dataset; returns the written image paths."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "mmrqa demo (MNI152 with simulated noise and artifacts)",
         "BIDSVersion": "1.9.0", "DatasetType": "raw"}, indent=2))
    subjects = sorted({p.subject for p in plans})
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"sub-{s}\n" for s in subjects))
    anat_head = load_head(voxel_size)
    bold_head = load_head(bold_voxel_size) if any(p.suffix == "bold" for p in plans) else None
    written = []
    clean: dict[str, np.ndarray] = {}  # one rendering per contrast (degrade() copies)
    for i, plan in enumerate(plans):
        rng = np.random.default_rng(seed + i)
        if plan.suffix == "bold":
            assert bold_head is not None
            data = _bold_series(bold_head, plan, rng)
            affine = bold_head.affine
        else:
            if plan.suffix not in clean:
                clean[plan.suffix] = anat_head.render(plan.suffix)
            data = degrade(clean[plan.suffix], plan, rng)
            affine = anat_head.affine
        written.append(write_run(root, plan, data, affine))
    return written


def write_run(root: Path, plan: RunPlan, data: np.ndarray, affine: np.ndarray) -> Path:
    """Save one run as int16 NIfTI (``plan.gain`` applied; TR 2 s for bold) with its BIDS
    sidecar under ``root``; returns the image path."""
    img = nb.Nifti1Image(np.clip(data * plan.gain, 0, 32767).astype(np.int16), affine)
    img.header.set_xyzt_units("mm", "sec")
    if plan.suffix == "bold":
        img.header["pixdim"][4] = 2.0
    path = root / plan.relpath()
    path.parent.mkdir(parents=True, exist_ok=True)
    nb.save(img, str(path))
    sidecar = {"RepetitionTime": 2.0, "TaskName": plan.task} if plan.suffix == "bold" else {}
    path.with_name(plan.filename.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--voxel-size", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = build_dataset(args.out_dir, voxel_size=args.voxel_size, seed=args.seed)
    print(f"wrote {len(paths)} runs to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
