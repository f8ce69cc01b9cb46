"""mmrqa's metric engine against MRQy 0.0.3 on the same 1 mm volumes, in one run.

    python benchmarks/metrics_vs_mrqy.py [--venv /tmp/mmrqa-mrqy-venv] [--volumes 2]

MRQy is installed with pip into its own virtualenv (``--venv``; it pulls umap/numba, which
stay out of mmrqa's environment) and run there through its own code path: the volume is read
with medpy (as ``mrqy.QC`` does) and each of the 15 metrics is computed with
``mrqy.QCF.vol`` (as ``mrqy.QCF.BaseVolume_nondicom`` does), slice 1..N-1, one foreground
mask per slice and per metric. mmrqa runs ``mmrqa_bids.metrics.compute`` (every anatomical
metric: masks, tissue classes, INU, MRIQC-style IQMs and the MRQy set).

Each tool runs in a fresh process per volume, with one thread (OMP/BLAS/numba/ITK = 1) and
pinned to one CPU core (``--core``, ``sched_setaffinity`` = ``taskset``), so the CPU time
(``time.process_time``, not wall time) is one core's, and the peak memory is the process's
maximum resident set (``VmHWM``, imports and the loaded volume included; the increment over
the high-water mark after imports and loading is printed too). mmrqa is timed
``--repeats`` times in its process (min / median / max printed; the ratio uses the median
and the worst); the machine's load average is printed with each volume, since a shared
machine slows both tools. ``--with-n4`` also times ``compute(img, "T1w", inu="n4")``.

Values are then compared on the same mask: mmrqa's vectorised MRQy functions are run on the
exact arrays and per-slice convex-hull masks MRQy used, and on mmrqa's own head mask.
MEAN, RNG, VAR, CV, SNR1 and CJV share their definitions and must agree within 2%; the
others differ by the documented defect fixes (mmrqa_bids/metrics/mrqy.py).
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

AGREE = ("MEAN", "RNG", "VAR", "CV", "SNR1", "CJV")
NAMES = ("MEAN", "RNG", "VAR", "CV", "CPP", "PSNR", "SNR1", "SNR2", "SNR3", "SNR4", "CNR",
         "CVP", "CJV", "EFC", "FBER")
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                               "NUMBA_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")}

# Runs inside MRQy's virtualenv: argv = nifti, out.json, out_prefix, core
MRQY_WORKER = textwrap.dedent('''
    import json, os, sys, time, warnings
    os.sched_setaffinity(0, {int(sys.argv[4])})
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
    # Untimed: the per-slice masks MRQy used (slices 1..N-1), for the same-mask comparison.
    hull = np.zeros(image_data.shape, bool)
    for i in range(1, image_data.shape[2]):
        hull[:, :, i] = np.asarray(QCF.foreground(v[0][i], prefix, v, i)[2], bool)
    np.save(prefix + "_data.npy", np.asarray(image_data))
    np.save(prefix + "_hull.npy", hull)
    json.dump({"values": values, "cpu_s": cpu, "peak_mb": rss, "base_mb": rss0,
               "dtype": str(image_data.dtype)}, open(out_json, "w"))
''')

# Runs in mmrqa's environment: argv = nifti, out.json, mrqy_prefix, core, repeats, with_n4
MMRQA_WORKER = textwrap.dedent('''
    import json, os, sys, time
    os.sched_setaffinity(0, {int(sys.argv[4])})
    import nibabel as nb
    import numpy as np
    from mmrqa_bids.metrics import compute
    from mmrqa_bids.metrics.masks import compute_masks
    from mmrqa_bids.metrics.mrqy import mrqy_metrics
    def hwm_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    nifti, out_json, prefix = sys.argv[1:4]
    repeats, with_n4 = int(sys.argv[5]), sys.argv[6] == "1"
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
        metrics = compute(img, "T1w")
        cpus.append(time.process_time() - t0)
    rss = hwm_mb()
    n4_cpu = None
    if with_n4:
        t0 = time.process_time()
        compute(img, "T1w", inu="n4")
        n4_cpu = time.process_time() - t0
    # Untimed: the MRQy set on MRQy's own arrays and masks, and mmrqa's mask alone.
    data = np.load(prefix + "_data.npy").astype(np.float32)
    hull = np.load(prefix + "_hull.npy")
    same_mask = mrqy_metrics(data, hull)
    t1 = time.process_time()
    masks = compute_masks(data)
    t_masks = time.process_time() - t1
    json.dump({"metrics": metrics, "same_mask": same_mask, "cpu_runs": cpus,
               "n4_cpu_s": n4_cpu, "masks_cpu_s": t_masks, "peak_mb": rss, "base_mb": rss0},
              open(out_json, "w"))
''')


def ensure_mrqy(venv: Path) -> Path:
    """A virtualenv with mrqy==0.0.3 (created and filled with pip on first use)."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import mrqy.QCF, medpy.io"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing mrqy==0.0.3 into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "mrqy==0.0.3"], check=True)
    subprocess.run(probe, check=True)
    return python


def make_volumes(out: Path, n: int) -> list[Path]:
    """MNI152 head, 1 mm, T1w contrast, Rician noise, int16 like a scanner's NIfTI."""
    import nibabel as nb
    import numpy as np

    from mmrqa_bids.testing.phantom import load_head, rician

    head = load_head(1.0)
    paths = []
    for i in range(n):
        noise = (0.02, 0.04, 0.06)[i % 3]
        data = rician(head.render("T1w"), noise, np.random.default_rng(i)) * 1000
        path = out / f"mni_T1w_1mm_noise{noise:.2f}.nii.gz"
        nb.save(nb.Nifti1Image(np.clip(np.round(data), 0, 32767).astype(np.int16),
                               head.affine), str(path))
        paths.append(path)
    return paths


def run_worker(python: str, code: str, args: list[str], env: dict) -> dict:
    script = Path(args[1]).with_suffix(".py")
    script.write_text(code)
    subprocess.run([python, str(script), *args], check=True, env=env)
    return json.loads(Path(args[1]).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir())
                        / "mmrqa-mrqy-venv", help="virtualenv for mrqy==0.0.3")
    parser.add_argument("--volumes", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="mmrqa timings per volume")
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)),
                        help="CPU core both tools are pinned to")
    parser.add_argument("--with-n4", action="store_true", help='also time inu="n4"')
    args = parser.parse_args(argv)

    mrqy_python = ensure_mrqy(args.venv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mmrqa-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, **ONE_THREAD}
    env_mmrqa = {**env, "PYTHONPATH": os.pathsep.join(
        p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)}
    env_mrqy = {k: v for k, v in env.items() if k != "PYTHONPATH"}

    vols = make_volumes(work, args.volumes)
    print(f"\n{len(vols)} volume(s), MNI152 head at 1 mm, one thread per tool, both pinned to "
          f"core {args.core}; CPU s = process_time of the metric computation (mmrqa: "
          f"{args.repeats} runs); peak = VmHWM of the process\n")
    failures = 0
    ratios, mm_cpus = [], []
    for path in vols:
        stem = str(work / path.name.replace(".nii.gz", ""))
        load0 = os.getloadavg()[0]
        mq = run_worker(str(mrqy_python), MRQY_WORKER,
                        [str(path), stem + "_mrqy.json", stem, str(args.core)], env_mrqy)
        mm = run_worker(sys.executable, MMRQA_WORKER,
                        [str(path), stem + "_mmrqa.json", stem, str(args.core),
                         str(args.repeats), "1" if args.with_n4 else "0"], env_mmrqa)
        load1 = os.getloadavg()[0]
        import nibabel as nb
        shape = nb.load(str(path)).shape
        runs = sorted(mm["cpu_runs"])
        med = float(np.median(runs))
        ratios += [mq["cpu_s"] / med, mq["cpu_s"] / runs[-1]]
        mm_cpus += runs
        print(f"== {path.name}  shape {shape}  input dtype {mq['dtype']}  "
              f"(load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} CPUs)")
        print(f"{'':26s}{'MRQy 0.0.3':>14s}{'mmrqa':>14s}{'ratio':>10s}")
        print(f"{'CPU time (s, 1 core)':26s}{mq['cpu_s']:14.2f}{med:14.3f}"
              f"{mq['cpu_s'] / med:9.1f}x  (median)")
        print(f"{'  mmrqa runs (s)':26s}{'':14s}{' '.join(f'{c:.3f}' for c in mm['cpu_runs']):>14s}"
              f"{mq['cpu_s'] / runs[-1]:9.1f}x  (worst run)")
        if mm.get("n4_cpu_s") is not None:
            print(f"{'  with inu=n4 (s)':26s}{'':14s}{mm['n4_cpu_s']:14.3f}"
                  f"{mq['cpu_s'] / mm['n4_cpu_s']:9.1f}x")
        print(f"{'peak RSS (MB)':26s}{mq['peak_mb']:14.0f}{mm['peak_mb']:14.0f}"
              f"{mq['peak_mb'] / mm['peak_mb']:9.1f}x")
        print(f"{'  over RSS after load (MB)':26s}{mq['peak_mb'] - mq['base_mb']:14.0f}"
              f"{mm['peak_mb'] - mm['base_mb']:14.0f}")
        print(f"mmrqa metrics computed: {len(mm['metrics'])} (15 MRQy + MRIQC-style IQMs); "
              f"masks alone {mm['masks_cpu_s']:.3f} s")
        print(f"\n{'metric':8s}{'MRQy':>14s}{'mmrqa, MRQy mask':>18s}{'rel diff':>10s}"
              f"{'mmrqa, own mask':>17s}  note")
        for k in NAMES:
            a, b, c = mq["values"][k], mm["same_mask"][k], mm["metrics"][f"mrqy_{k}"]
            rel = abs(b - a) / abs(a) if a else float("inf")
            if k in AGREE:
                ok = rel <= 0.02
                failures += not ok
                note = "agree (<= 2%)" if ok else "DISAGREE (> 2%)"
            else:
                note = "defect fixed in mmrqa (see mrqy.py)"
            print(f"{k:8s}{a:14.4g}{b:18.4g}{100 * rel:9.2f}%{c:17.4g}  {note}")
        iqm = mm["metrics"]
        print("\nmmrqa volume-wise IQMs: " + ", ".join(
            f"{k}={iqm[k]:.3g}" for k in ("snr_total", "snrd_total", "cnr", "cjv", "efc",
                                          "fber", "wm2max", "inu_range", "qi_1", "fwhm_avg")))
        print()
    print("agreement on MEAN, RNG, VAR, CV, SNR1, CJV within 2%:",
          "yes" if failures == 0 else f"NO ({failures} failure(s))")
    fast = min(ratios) >= 50 and max(mm_cpus) < 1.0
    print(f"speed target (every mmrqa run < 1 s and >= 50x less CPU than MRQy): "
          f"{'met' if fast else 'NOT met'} (ratios {min(ratios):.1f}x-{max(ratios):.1f}x, "
          f"mmrqa {min(mm_cpus):.3f}-{max(mm_cpus):.3f} s)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
