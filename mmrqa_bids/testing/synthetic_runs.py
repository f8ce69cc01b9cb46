"""Run JSONs as a participant run writes them, without images or measurement: for tests of
what reads the outputs back (the group level, the join step, the grading lock)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def run_doc(name: str, metrics: dict, label: str = "Good", suffix: str = "T1w",
            zooms: Sequence[float] = (1.0, 1.0, 1.0)) -> dict[str, Any]:
    """One anatomical run JSON as the participant level writes it, graded ``label`` by the
    absolute model (basis not yet set), with the given metrics and voxel size."""
    probs = {"Good": 0.1, "Medium": 0.1, "Bad": 0.1}
    probs[label] = 0.8
    return {
        "bids_meta": {"bids_name": name, "suffix": suffix, "datatype": "anat",
                      "subject": name.split("_")[0][4:], "source": f"/nowhere/{name}.nii.gz",
                      "shape": [176, 256, 256], "voxel_size_mm": list(zooms),
                      "protocol": {"suffix": suffix, "voxel_size_mm": list(zooms),
                                   "matrix": [176, 256, 256], "RepetitionTime": 2.3}},
        "metrics": metrics,
        "grade": {"label": label, "probabilities": probs, "confidence": 0.8,
                  "outside_training": []},
        "artifacts": [{"type": "noise", "likelihood": 0.6}],
        "narrative": {"classification": f"Grade: {label} from the metric model.",
                      "artifact": "model artifact text", "analysis": "model analysis text"},
        "provenance": {"backend": "classifier", "model_id": "absolute-model"},
    }


def synthetic_outputs(out: Path, n_t1w: int = 12, n_t2w: int = 0, seed: int = 0) -> list[Path]:
    """Run JSONs of a participant run (no images): ``n_t1w`` T1w runs of one protocol (two
    degraded), then ``n_t2w`` T2w runs, graded by the absolute model, basis not yet set.
    Returns their paths."""
    from mmrqa_bids.cohorts.relative import family_features

    rng = np.random.default_rng(seed)
    paths = []
    runs = [(i, "T1w") for i in range(n_t1w)] + [(i, "T2w") for i in range(n_t2w)]
    for i, suffix in runs:
        name, shift = f"sub-{i:02d}_{suffix}", 15.0 if suffix == "T1w" and i in (3, 7) else 0.0
        label = "Bad" if shift else ("Good" if suffix == "T1w" else "Medium")
        metrics = {f: float(1.0 + 0.02 * (rng.standard_normal() + shift))
                   for f in family_features("anat")}
        path = out / f"sub-{i:02d}" / "anat" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run_doc(name, metrics, label, suffix)))
        paths.append(path)
    return paths
