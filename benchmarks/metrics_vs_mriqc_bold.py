"""mmrqa's bold IQMs against MRIQC 24.0.2's own definitions, fed the same inputs, on real runs.

    python benchmarks/metrics_vs_mriqc_bold.py [--only ds003 ...] [--workdir DIR]

Series (every real 4-D EPI the project's environment ships): nibabel's ``example4d``
(128 x 96 x 24, 2 volumes of a real fMRI run), nipype's ``ds003_sub-01_mc`` (16 x 16 x 9,
20 volumes: OpenNeuro ds003, subject 01, motion-corrected and downsampled, the file nipype's
own DVARS test uses) and nibabel's ``functional.nii`` (17 x 21 x 3, 20 volumes). Left out:
fslpy's FEAT ``filtered_func_data`` (4 x 4 x 5 voxels: MRIQC's FunctionalQC refuses a mask under
100 voxels) and dipy's 4-D files (diffusion series, not bold).

mmrqa runs ``mmrqa_bids.metrics.measure(data, "bold", zooms)`` on the RAS series. Each
reference is then fed mmrqa's inputs (the RAS series, its temporal mean, its head mask, its air
mask and, for FD, mmrqa's own realignment parameters), so a difference is one of formula:

- ``tsnr``: nipype's ``TSNR`` interface (what MRIQC's ``compute_tsnr`` node runs), then
  ``median(tsnr[mask])`` as ``mriqc.interfaces.functional.FunctionalQC``;
- ``dvars_std/nstd/vstd``: nipype's ``ComputeDVARS(save_all=True)`` as MRIQC calls it (its
  defaults: voxels of robust SD <= 1e-7 removed, intensities scaled to an in-mask median of
  1000), mean of each column as ``FunctionalQC``;
- ``fd_mean/num/perc``: nipype's ``FramewiseDisplacement`` (``parameter_source="FSL"``:
  rotations in rad, then translations in mm, mmrqa's order) on mmrqa's own parameters, then
  ``FunctionalQC``'s count and percentage (the realignment itself is AFNI's 3dvolreg in MRIQC:
  not run here);
- ``gsr_x/y``: ``mriqc.qc.functional.gsr``; ``efc``, ``fber``, ``snr``, ``summary_*``:
  ``mriqc.qc.anatomical`` on the mean EPI (negatives set to 0, as ``FunctionalQC``);
- ``gcor``: MRIQC runs AFNI's ``@compute_gcor`` (not installed here); the reference is that
  script's documented steps in numpy (each voxel's series demeaned, scaled to unit length,
  averaged over the mask; GCOR = squared length of the average).

Verdict (#20 item 2, after the bold fix): every comparable bold IQM agrees within 1% on the
three series, ``tsnr``, ``dvars_nstd`` and ``fd_perc`` included (they now follow nipype's TSNR
zero-SD rule, ComputeDVARS' median-1000 scaling and FunctionalQC's division by T). Two
deliberate departures remain, both documented in ``mmrqa_bids/metrics/functional.py``:
``gcor`` and ``aor`` are taken after a quadratic detrend (MRIQC's ``@compute_gcor`` only
demeans, its 3dToutcount call removes the median only), and so both are NaN
on runs of 3 volumes or fewer (nothing is left after the trend: example4d's 2 volumes gave
0.98 from rounding residue before); and the bold ``fber`` background is mmrqa's air mask.

MRIQC's files come from its PyPI wheel and nipype/nitime from PyPI, in a small virtualenv
(``--venv``), with ``mriqc.config`` replaced by a logger stub (helpers shared with
``metrics_vs_mrqy.py``). Not comparable here: ``aor`` and ``aqi`` (AFNI 3dToutcount and
3dTqual), ``fwhm_*`` (AFNI 3dFWHMx -ACF), the realignment under ``fd_*`` (AFNI 3dvolreg).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_vs_mrqy import ONE_THREAD, ensure_mriqc_source, ensure_venv, run_worker  # noqa: E402

TOLERANCE = 0.01
VENV_PACKAGES = ["numpy", "scipy", "statsmodels", "nibabel", "nipype==1.11.0", "nitime"]
#: Deliberate departures (reported, not held to 1%), keyed by row name.
DEPARTURES = {
    "gcor": "MRIQC's @compute_gcor only demeans; mmrqa removes a quadratic trend first "
            "(its docstring: 'detrended'); the detrended row is the same formula",
    "gcor (T <= 3)": "mmrqa's gcor is NaN on runs of 3 volumes or fewer: its quadratic trend "
                     "fits every series, only rounding residue is left (max |x| {res:.1g}); "
                     "MRIQC's demeaned value is defined",
    "fber (MRIQC's bg)": "MRIQC's bold FBER takes every non-head voxel as background; mmrqa "
                         "its air mask (the hat beyond a margin), as for anatomical runs",
}
ROUNDING = ("MRIQC's summary_stats rounds the image to integers first (rprec_data=0); "
            "without that rounding")
QUANTILE_TIE = ("MRIQC's weighted quantile runs over the whole image, weight 0 outside the "
                "region: when p n is whole (here {pn:g}) it averages y_(pn) with the next value "
                "of the whole image, not of the region (mmrqa: SAS definition 5 on the region)")
PROBS = {"median": 0.5, "p05": 0.05, "p95": 0.95}
#: Disagreements with MRIQC's definition that mmrqa's docstrings do not state: reported to
#: the lead (mmrqa_bids/metrics/ is not edited by the benchmark), counted as not met. None
#: since the bold fix (tsnr, dvars_nstd and fd_perc follow nipype / MRIQC).
DISAGREEMENTS: dict[str, str] = {}
NOT_COMPARABLE = {
    "aor": "AFNI 3dToutcount (-fraction) in MRIQC; AFNI is not installed (mmrqa's aor "
           "re-implements its outlier rule in numpy after a quadratic detrend, where MRIQC's "
           "call removes the median only: a deliberate departure)",
    "aqi": "AFNI 3dTqual in MRIQC; mmrqa does not compute it",
    "fwhm_*": "AFNI 3dFWHMx -ACF in MRIQC; mmrqa's fwhm is its own Gaussian estimate",
    "fd_* realignment": "AFNI 3dvolreg in MRIQC; only the FD formula on mmrqa's parameters is "
                        "compared",
}

# Runs in the bold reference virtualenv: argv = mriqc_root, out.json, inputs.npz
REFERENCE_WORKER = textwrap.dedent('''
    import importlib.util, json, logging, os, sys, types, warnings
    warnings.filterwarnings("ignore")
    import nibabel as nb
    import numpy as np
    root, out_json, npz = sys.argv[1:4]
    config = types.ModuleType("mriqc.config")
    config.loggers = types.SimpleNamespace(interface=logging.getLogger("mriqc"))
    pkg = types.ModuleType("mriqc"); pkg.__path__ = [root + "/mriqc"]; pkg.config = config
    sys.modules.update({"mriqc": pkg, "mriqc.config": config})
    def load(name):
        spec = importlib.util.spec_from_file_location("mriqc.qc." + name,
                                                      f"{root}/mriqc/qc/{name}.py")
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        return mod
    qa, qf = load("anatomical"), load("functional")
    from nipype.algorithms.confounds import TSNR, ComputeDVARS, FramewiseDisplacement
    z = np.load(npz)
    data, head, air, params = z["data"], z["head"], z["air"], z["params"]
    stem = os.path.abspath(os.path.splitext(out_json)[0])
    os.chdir(os.path.dirname(stem))  # nipype writes its outputs in the working directory
    bold, mask = stem + "_bold.nii.gz", stem + "_mask.nii.gz"
    nb.save(nb.Nifti1Image(data, np.eye(4)), bold)
    nb.save(nb.Nifti1Image(head.astype(np.uint8), np.eye(4)), mask)
    out, n_t = {}, data.shape[3]
    # tSNR: MRIQC's compute_tsnr node, then FunctionalQC's median over the mask
    res = TSNR(in_file=[bold], tsnr_file=stem + "_tsnr.nii.gz", mean_file=stem + "_mean.nii.gz",
               stddev_file=stem + "_sd.nii.gz").run()
    tsnr = nb.load(res.outputs.tsnr_file).get_fdata()[head]
    sd = nb.load(res.outputs.stddev_file).get_fdata()[head]
    out["tsnr"] = float(np.median(tsnr))
    notes = {"zero_sd": int((sd <= 1e-3).sum()), "n_head": int(head.sum())}
    extra = {}
    if n_t >= 3:  # 2 volumes: every voxel's IQR is 0 and nipype's AR fit has no lag
        res = ComputeDVARS(in_file=bold, in_mask=mask, save_all=True, save_plot=False).run()
        cols = np.atleast_2d(np.loadtxt(res.outputs.out_all, skiprows=1, usecols=range(3)))
        out["dvars_std"], out["dvars_nstd"], out["dvars_vstd"] = map(float, cols.mean(axis=0))
    np.savetxt(stem + "_par.txt", params)
    res = FramewiseDisplacement(in_file=stem + "_par.txt", parameter_source="FSL",
                                out_file=stem + "_fd.txt", save_plot=False).run()
    fd = np.atleast_1d(np.loadtxt(res.outputs.out_file, skiprows=1))
    num = int((fd > 0.2).sum())
    out.update(fd_mean=float(fd.mean()), fd_num=float(num), fd_perc=num * 100 / (len(fd) + 1))
    epi = np.nan_to_num(z["mean"].astype(np.float32)); epi[epi < 0] = 0  # as FunctionalQC
    for axis in ("x", "y"):
        out["gsr_" + axis] = qf.gsr(epi, head.astype(np.uint8), axis)
    out["efc"] = qa.efc(epi)
    out["fber"] = qa.fber(epi, head.astype(np.uint8), (~head & ~air).astype(np.uint8))
    out["fber (MRIQC's bg)"] = qa.fber(epi, head.astype(np.uint8))
    stats = qa.summary_stats(epi, {"fg": head.astype(np.uint8), "bg": air.astype(np.uint8)})
    out["snr"] = qa.snr(stats["fg"]["median"], stats["fg"]["stdv"], stats["fg"]["n"])
    fine = qa.summary_stats(epi, {"fg": head.astype(np.uint8), "bg": air.astype(np.uint8)},
                            rprec_data=6, decimals=8)
    for region, s in fine.items():
        for k, v in s.items():
            extra[f"summary_{region}_{k} (unrounded)"] = float(v)
    for region, s in stats.items():
        for k, v in s.items():
            out[f"summary_{region}_{k}"] = float(v)
    # @compute_gcor: demean, unit length, mean over the mask, squared length
    ts = data[head].astype(np.float64)
    def gcor(x):
        n = np.linalg.norm(x, axis=1)
        g = (x[n > 0] / n[n > 0, None]).mean(axis=0)
        return float(g @ g)
    out["gcor"] = gcor(ts - ts.mean(axis=1, keepdims=True))
    q, _ = np.linalg.qr(np.polynomial.legendre.legvander(np.linspace(-1, 1, n_t), 2))
    out["gcor (quadratic detrend)"] = gcor(ts - (ts @ q) @ q.T)
    notes.update(n_t=n_t, detrended_max=float(np.abs(ts - (ts @ q) @ q.T).max()))
    json.dump({"ref": out, "extra": extra, "notes": notes}, open(out_json, "w"))
''')


def series() -> list[tuple[str, Path, str]]:
    """(name, path, origin) of every real 4-D EPI series the environment ships."""
    import nibabel
    import nipype

    from mmrqa_bids.train.metric_model.sources import epi_path

    nib_data = Path(nibabel.__file__).parent / "tests" / "data"
    return [("example4d", epi_path(), "nibabel example4d: real fMRI, 2 volumes, int16"),
            ("ds003", Path(nipype.__file__).parent / "testing" / "data"
             / "ds003_sub-01_mc.nii.gz",
             "nipype ds003_sub-01_mc: OpenNeuro ds003 sub-01, motion-corrected, 20 volumes"),
            ("functional", nib_data / "functional.nii",
             "nibabel functional.nii: 17 x 21 x 3, 20 volumes, int16")]


def mmrqa_inputs(path: Path, npz: Path) -> dict[str, float]:
    """mmrqa's bold metrics of the series at ``path``; its inputs saved to ``npz``."""
    import nibabel as nb

    from mmrqa_bids.metrics import functional, measure

    ras = nb.as_closest_canonical(nb.load(str(path)))
    data = np.asarray(ras.dataobj, dtype=np.float32)
    zooms = tuple(float(z) for z in ras.header.get_zooms()[:3])
    m = measure(data, "bold", zooms)
    params = functional.realign(data, m.head, zooms)  # deterministic: as inside measure
    np.savez(npz, data=data, head=m.head, air=m.background, mean=m.reference, params=params)
    return m.metrics


def _rel(ref: float, val: float) -> float:
    if ref == val or (math.isnan(ref) and math.isnan(val)):
        return 0.0
    return abs(val - ref) / abs(ref) if ref else float("inf")


def _row(name: str, ref: float, val: float, verdict: str) -> str:
    return f"{name:30s}{ref:14.6g}{val:14.6g}{100 * _rel(ref, val):8.2f}%  {verdict}"


def _tie(name: str, ref: dict) -> float | None:
    """p n of a summary quantile row when it is a whole number, else None."""
    parts = name.split("_")
    if name.startswith("summary_") and len(parts) == 3 and parts[2] in PROBS:
        pn = PROBS[parts[2]] * ref[f"summary_{parts[1]}_n"]
        if abs(pn - round(pn)) < 1e-9:
            return pn
    return None


def table(out: dict, mm: dict) -> tuple[list[str], int]:
    """Rows (IQM, MRIQC's definition, mmrqa, difference, verdict); returns (lines, misses)."""
    ref, extra, notes = out["ref"], out["extra"], out["notes"]
    lines = [f"{'IQM':30s}{'MRIQC def.':>14s}{'mmrqa':>14s}{'diff':>9s}  verdict"]
    bad = 0
    for name, r in ref.items():
        val = mm.get(name.split(" (")[0], float("nan"))
        alt = extra.get(f"{name} (unrounded)")
        if name.startswith("gcor") and notes["n_t"] <= 3:
            if name == "gcor" and math.isnan(val):
                lines.append(_row(name, r, val, "departure: " + DEPARTURES["gcor (T <= 3)"]
                                  .format(res=notes["detrended_max"])))
            elif name == "gcor":  # a value from rounding residue: noise
                lines.append(_row(name, r, val, f"NOT met: with {notes['n_t']} volumes a "
                                  "quadratic trend fits every series: the value is noise"))
                bad += 1
            else:
                lines.append(_row(name, r, val, "not defined (mmrqa NaN): the quadratic "
                                  "residual is rounding residue, the reference value is noise"))
        elif _rel(r, val) <= TOLERANCE:
            lines.append(_row(name, r, val, "met"))
        elif name in DEPARTURES:
            lines.append(_row(name, r, val, "departure: " + DEPARTURES[name]))
        elif _tie(name, ref) is not None:
            lines.append(_row(name, r, val, "departure: "
                              + QUANTILE_TIE.format(pn=_tie(name, ref))))
        elif alt is not None and _rel(alt, val) <= TOLERANCE:
            lines.append(_row(name, r, val, f"departure: {ROUNDING} {alt:.6g}"))
        else:
            why = DISAGREEMENTS.get(name, "")
            lines.append(_row(name, r, val, "NOT met" + (": " + why if why else "")))
            bad += 1
    if notes["zero_sd"]:
        lines.append(f"  (tsnr: {notes['zero_sd']} of {notes['n_head']} head voxels have "
                     "SD <= 1e-3 and count as 0 in both)")
    if "dvars_std" not in ref:
        lines.append(f"{'dvars_*':30s}{'':14s}{mm['dvars_std']:14.6g}{'':9s}  not defined "
                     "with 2 volumes (every voxel's IQR is 0: mmrqa NaN; nipype not run)")
    return lines, bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    tmp = Path(tempfile.gettempdir())
    parser.add_argument("--venv", type=Path, default=tmp / "mmrqa-mriqc-bold-venv",
                        help="virtualenv for nipype, nitime and MRIQC's qc modules")
    parser.add_argument("--mriqc-source", type=Path, default=tmp / "mmrqa-mriqc-wheel")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="series names to run")
    args = parser.parse_args(argv)
    python = ensure_venv(args.venv, VENV_PACKAGES,
                         "import nipype.algorithms.confounds, nitime, statsmodels")
    root = ensure_mriqc_source(args.mriqc_source)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mmrqa-bold-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in {**__import__("os").environ, **ONE_THREAD}.items()
           if k != "PYTHONPATH"}
    total = 0
    for name, path, origin in series():
        if args.only is not None and name not in args.only:
            continue
        stem = str(work / name)
        mm = mmrqa_inputs(path, Path(stem + "_inputs.npz"))
        ref = run_worker(str(python), REFERENCE_WORKER,
                         [str(root), stem + "_ref.json", stem + "_inputs.npz"], env)
        import nibabel as nb
        print(f"== {name}: {origin}; shape {nb.load(str(path)).shape}")
        lines, bad = table(ref, mm)
        print("\n".join(lines) + "\n")
        total += bad
    print("not comparable here:")
    for k, why in NOT_COMPARABLE.items():
        print(f"  {k}: {why}")
    print(f"\nMRIQC bold agreement (same inputs, within 1%, departures listed): "
          f"{'met' if total == 0 else 'NOT met'} ({total} outside)")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
