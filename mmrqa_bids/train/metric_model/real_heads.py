"""Real heads as acquired in the metric classifier's training set (recipe 11).

The renderings of :mod:`.sources` have no real scan's background, texture, noise floor or
vessels, so a model fitted on them alone read every clean real acquisition as degraded
(ROBEX's good T1w graded Bad). The cohort simulation (:mod:`mmrqa_bids.cohorts.simulate`)
already varies real volumes as acquired into subjects of one scanner (deformation, head size,
contrast, shading, noise floor, gain) and degrades some with one artifact at a graded
severity, labelled by the same measured degradation as the renderings. Those runs, measured
once and cached by the cohort pools, join the classifier's fit here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from mmrqa_bids.train.metric_model.sources import TrainingError


def real_head_runs(family: str, settings: dict[str, Any], cache_dir: Path | None,
                   n_jobs: int = 1, verbose: bool = True) -> list[dict[str, Any]]:
    """Measured pool runs (:func:`~mmrqa_bids.cohorts.simulate.measure_pool`) of the real
    sources ``settings["sources"]``: ``settings["n_clean"]`` clean subjects and every artifact
    at mild/moderate/severe ``settings["per_artifact_severity"]`` times per source. Measured
    with the current metrics code (a cached record of another code is measured again)."""
    from mmrqa_bids.cohorts.simulate import measure_pool, plan_pool, source_by_name

    runs = []
    for name in settings["sources"]:
        src = source_by_name(name)
        if src.family != family or src.kind != "real":
            raise TrainingError(f"{name} is not a real {family} source")
        runs += plan_pool(name, n_clean=int(settings["n_clean"]),
                          per_artifact_severity=int(settings["per_artifact_severity"]))
    return measure_pool(runs, cache_dir, n_jobs=n_jobs, verbose=verbose)


def as_training_rows(records: Sequence[dict[str, Any]]) -> dict[str, list]:
    """The records as the classifier's training rows: metrics, measured labels, artifact
    labels ("none" for a clean run; a mild artifact keeps its type, as for the renderings),
    clean flags and source names."""
    return {"rows": [r["metrics"] for r in records],
            "labels": [r["label"] for r in records],
            "artifact_labels": ["none" if r["severity"] == "none" else r["artifact"]
                                for r in records],
            "clean": [r["severity"] == "none" for r in records],
            "sources": [r["source"] for r in records]}


def anatomy_of(source: str) -> str:
    """The head behind a training source: ``rendered-<anatomy>`` for a rendering (the MNI
    template's hard-label rendering is the MNI head), else a real cohort source's anatomy."""
    from mmrqa_bids.cohorts.simulate import source_by_name

    if source.startswith("rendered-"):
        anatomy = source[len("rendered-"):]
        return "mni" if anatomy == "mnihard" else anatomy
    return source_by_name(source).anatomy
