"""Build a small BIDS dataset from the MNI152 head, with Rician noise and simple artifacts.

    python -m mmrqa_bids.testing.demo_dataset OUT_DIR [--voxel-size 1.0] [--workers 2]

Used by ``make demo`` and by the end-to-end tests. The artifacts here are deliberately
simple (k-space line replacement, a ghost copy, noise, blur) so that the demo grades differ;
graded, physically-modelled artifacts for training live in :mod:`mmrqa_bids.artifacts`.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

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
                  seed: int = 0, workers: int = 1) -> list[Path]:
    """Write a BIDS dataset; returns the written image paths.

    Run i draws its noise from ``default_rng(seed + i)`` alone, so the files do not depend on
    the order the runs are made in: with ``workers`` > 1 (and ``fork``, as on Linux) they are
    made in that many processes, byte-identical to one process (tested)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "mmrqa demo (MNI152 with simulated noise and artifacts)",
         "BIDSVersion": "1.9.0", "DatasetType": "raw"}, indent=2))
    subjects = sorted({p.subject for p in plans})
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"sub-{s}\n" for s in subjects))
    anat = [i for i, p in enumerate(plans) if p.suffix != "bold"]
    bold = [i for i, p in enumerate(plans) if p.suffix == "bold"]
    _BUILD.clear()
    _BUILD.update(root=root, plans=tuple(plans), seed=seed, voxel_size=voxel_size,
                  bold_voxel_size=bold_voxel_size, clean={})
    if anat:  # loaded before any fork, so that the workers share it
        _BUILD["anat_head"] = load_head(voxel_size)
    if workers > 1 and len(plans) > 1 and "fork" in mp.get_all_start_methods():
        # one task makes every bold run (their head is loaded once, in that worker); the
        # anatomical runs are one task each, the k-space motion ones (FFTs) first
        anat.sort(key=lambda i: plans[i].artifact != "motion")
        tasks = ([bold] if bold else []) + [[i] for i in anat]
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            done = dict(kv for part in pool.map(_make_runs, tasks) for kv in part)
    else:
        done = dict(_make_runs(anat) + _make_runs(bold))
    _BUILD.clear()
    return [done[i] for i in range(len(plans))]


#: What the runs of the dataset being built share (set by build_dataset, inherited by its
#: forked workers): the plans, the heads, the clean rendering of each contrast.
_BUILD: dict[str, Any] = {}


def _make_runs(indices: Sequence[int]) -> list[tuple[int, Path]]:
    """Make and write the runs ``indices`` of the dataset in :data:`_BUILD`."""
    b = _BUILD
    written = []
    for i in indices:
        plan = b["plans"][i]
        rng = np.random.default_rng(b["seed"] + i)
        if plan.suffix == "bold":
            if "bold_head" not in b:
                b["bold_head"] = load_head(b["bold_voxel_size"])
            data = _bold_series(b["bold_head"], plan, rng)
            affine = b["bold_head"].affine
        else:
            head = b["anat_head"]
            if plan.suffix not in b["clean"]:  # one rendering per contrast (degrade() copies)
                b["clean"][plan.suffix] = head.render(plan.suffix)
            data = degrade(b["clean"][plan.suffix], plan, rng)
            affine = head.affine
        written.append((i, write_run(b["root"], plan, data, affine)))
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
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes that make the runs (default: 2, or 1 on one CPU)")
    args = parser.parse_args(argv)
    paths = build_dataset(args.out_dir, voxel_size=args.voxel_size, seed=args.seed,
                          workers=args.workers)
    print(f"wrote {len(paths)} runs to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
