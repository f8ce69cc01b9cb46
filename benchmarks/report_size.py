"""Report sizes: an individual report for a 1 mm T1w, a group report for 100 runs.

Targets: individual < 2 MB, group (100 runs) < 2 MB. The 1 mm T1w is the MNI152 head (nilearn) with
Rician noise, measured and rendered by the same code as the participant level; the 100
runs of the group report are that run's metrics with per-run multiplicative jitter. The
group report inlines plotly.js once: the vendored cartesian bundle, where plotly.py's own
full bundle (maps, 3-D, ...) made a 100-run report about 6 MB; both bundle sizes are printed.

    PYTHONPATH=. python benchmarks/report_size.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import plotly

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.grading.base import LABELS
from mmrqa_bids.metrics import measure
from mmrqa_bids.derivatives import DerivativesLayout, derivative_document
from mmrqa_bids.reports import mosaics
from mmrqa_bids.reports.group import plotly_js, render_group
from mmrqa_bids.reports.individual import render_individual
from mmrqa_bids.phantom import load_head, rician

MB = 1024 * 1024


def main() -> int:
    rng = np.random.default_rng(0)
    head = load_head(1.0)
    clean = head.render("T1w") * 1000
    vol = rician(clean, 0.012 * 1000, rng).astype(np.float32)
    t0 = time.perf_counter()
    m = measure(vol, "T1w")
    t1 = time.perf_counter()
    pngs = {v: mosaics.report_mosaic(m.reference, m.head, v, background=m.background)
            for v in mosaics.VIEWS}
    pngs["background"] = mosaics.background_mosaic(m.reference, m.head)
    t2 = time.perf_counter()
    run = RunSpec(path=Path("/data/sub-01/anat/sub-01_T1w.nii.gz"), suffix="T1w", datatype="anat",
                  entities={"subject": "01"})
    probs = {"Good": 0.8, "Medium": 0.15, "Bad": 0.05}
    narrative = {k: "A sentence of narrative of typical length for this section. " * 4
                 for k in ("classification", "artifact", "analysis")}
    record = {"run": run.to_dict(), "metrics": m.metrics, "checksum": "sha256:" + "0" * 64,
              "shape": list(vol.shape), "zooms": [1.0, 1.0, 1.0],
              "grade": {"label": "Good", "probabilities": probs, "confidence": 0.8,
                        "artifacts": [{"type": "noise", "likelihood": 0.2}], "narrative": narrative},
              "grader": {"backend": "classifier", "model_id": "benchmark"}, "timings": {}}
    doc = derivative_document(record, {"grading": {"grader": "classifier"}})
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, png in pngs.items():
            paths[name] = str(Path(tmp) / f"{name}.png")
            Path(paths[name]).write_bytes(png)
        t3 = time.perf_counter()
        individual = render_individual(doc, paths).encode()
        t4 = time.perf_counter()

    rows = []
    for i in range(100):
        p = rng.dirichlet([3, 1, 1])
        rows.append({"bids_name": f"sub-{i:03d}_T1w", "subject": f"{i:03d}", "session": "n/a",
                     "task": "n/a", "acquisition": "n/a", "run": "n/a", "status": "ok",
                     "grade": LABELS[int(np.argmax(p))], "p_good": float(p[0]), "p_medium": float(p[1]),
                     "p_bad": float(p[2]), "confidence": float(p.max()), "artifact": "noise",
                     "grader": "classifier", "error": "n/a",
                     **{k: float(v * rng.lognormal(0, 0.1)) for k, v in m.metrics.items()}})
    t5 = time.perf_counter()
    href = DerivativesLayout(Path("OUT")).report_href
    group = render_group("T1w", rows, report_href=href).encode()
    t6 = time.perf_counter()
    # The full MRQy + MRIQC set is ~40 metrics: pad with jittered copies to see that size.
    wide = [{**r, **{f"{k}_{j}": r[k] * float(rng.lognormal(0, 0.05)) for k in m.metrics
                     for j in range(1, -(-40 // len(m.metrics)))}} for r in rows]
    n_wide = sum(isinstance(v, float) for v in wide[0].values()) - 4
    t7 = time.perf_counter()
    group_wide = render_group("T1w", wide, report_href=href).encode()
    t8 = time.perf_counter()
    if len(sys.argv) > 1:  # write the reports for a look in a browser
        Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
        Path(sys.argv[1], "individual_1mm.html").write_bytes(individual)
        Path(sys.argv[1], "group_100.html").write_bytes(group_wide)

    png_total = sum(len(b) for b in pngs.values())
    print(f"volume: {vol.shape} at 1 mm, {len(m.metrics)} metrics")
    print(f"{'report':<34}{'size':>10}{'target':>10}{'render s':>10}  ok")
    print(f"{'individual, 1 mm T1w':<34}{len(individual) / MB:>8.2f}MB{'< 2 MB':>10}{t4 - t3:>10.2f}  "
          f"{len(individual) < 2 * MB}")
    print(f"{'  of which mosaics (PNG, raw)':<34}{png_total / MB:>8.2f}MB{'':>10}{t2 - t1:>10.2f}")
    print(f"{'group, 100 runs':<34}{len(group) / MB:>8.2f}MB{'< 2 MB':>10}{t6 - t5:>10.2f}  "
          f"{len(group) < 2 * MB}")
    print(f"{f'group, 100 runs x {n_wide} metrics':<34}{len(group_wide) / MB:>8.2f}MB{'< 2 MB':>10}"
          f"{t8 - t7:>10.2f}  {len(group_wide) < 2 * MB}")
    full = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    print(f"{'  plotly.js inlined (cartesian)':<34}{len(plotly_js().encode()) / MB:>8.2f}MB")
    print(f"{'  plotly.py full bundle (before)':<34}{full.stat().st_size / MB:>8.2f}MB")
    print(f"(measure: {t1 - t0:.2f} s)")
    return 0 if len(individual) < 2 * MB and len(group_wide) < 2 * MB else 1


if __name__ == "__main__":
    sys.exit(main())
