"""The basis of a run's grade, written into its derivative document.

``grade.basis`` is ``"dataset"`` (the run graded against the other runs of its cohort: the
cohort's id, size and protocol are recorded beside the grade) or ``"model"`` (the absolute
metric model's grade; ``grade.basis_reason`` says why: a participant-level job that has not
seen the rest of the dataset, or a cohort smaller than ``MIN_COHORT_SIZE``). The absolute
model's grade is always kept, under ``grade.model_grade`` with its narrative, so that every
regrade starts from it: applying a basis twice gives the same document (idempotent group
reruns).

Pure functions: documents in, new documents out (nothing is modified in place).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping, Sequence

from mmrqa_bids.cohorts.narrative import model_basis_narrative, render_dataset_narrative

BASIS_DATASET, BASIS_MODEL = "dataset", "model"
#: The reason recorded by a participant-level job (it grades runs one subject at a time).
PARTICIPANT_REASON = ("graded at the participant level by the absolute metric model; the group "
                      "level grades each run against the other runs of its cohort")


def model_grade(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The absolute model's grade of a run: the copy kept by an earlier basis
    (``grade.model_grade``), else the participant level's grade and narrative themselves."""
    grade = doc["grade"]
    kept = grade.get("model_grade")
    if isinstance(kept, dict):
        return copy.deepcopy(kept)
    return {"label": grade.get("label"), "probabilities": dict(grade.get("probabilities") or {}),
            "confidence": grade.get("confidence"),
            "outside_training": list(grade.get("outside_training") or []),
            "model_id": (doc.get("provenance") or {}).get("model_id"),
            "narrative": dict(doc.get("narrative") or {})}


def cohort_record(cohort_id: str, size: int, protocol: Mapping[str, Any], by: str,
                  **extra: Any) -> dict[str, Any]:
    """The ``grade.cohort`` block: which runs the grade compares this one with."""
    return {"id": cohort_id, "size": int(size), "by": by, "protocol": dict(protocol), **extra}


def relative_dict(rel: Any) -> dict[str, Any]:
    """A :class:`~mmrqa_bids.cohorts.relative.RelativeGrade` as plain JSON types."""
    return {"label": rel.label, "probabilities": {k: float(v) for k, v in rel.probabilities.items()},
            "confidence": float(rel.confidence), "model_id": rel.model_id,
            "deviations": [{k: (float(v) if isinstance(v, (int, float)) else v)
                            for k, v in dataclasses.asdict(d).items()} for d in rel.deviations]}


def with_dataset_basis(doc: Mapping[str, Any], rel: Any, cohort: Mapping[str, Any],
                       member: bool = True, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """``doc`` graded against its cohort: label, probabilities and confidence from the
    relative grade ``rel``, the metrics that set the run apart (``grade.deviations``), the
    absolute model's grade under ``grade.model_grade``, and a narrative that names the
    deviations; the artifacts (the artifact model's) are unchanged.

    ``member``: the run is one of the cohort's runs (group level) rather than a new run graded
    against a stored reference (``participant --reference``).
    """
    out = dict(doc)  # grade and narrative are replaced; nothing else is touched
    model = model_grade(doc)
    relative = relative_dict(rel)
    out["grade"] = {
        "label": relative["label"], "probabilities": relative["probabilities"],
        "confidence": relative["confidence"],
        "outside_training": [],  # a property of the absolute model: kept in model_grade
        "basis": BASIS_DATASET, "basis_reason": None,
        "cohort": dict(cohort), "model_id": relative["model_id"],
        "deviations": relative["deviations"], "cohort_warnings": list(warnings),
        "model_grade": model,
    }
    suffix = doc["bids_meta"]["suffix"]
    out["narrative"] = render_dataset_narrative(
        label=relative["label"], confidence=relative["confidence"],
        deviations=relative["deviations"], artifacts=doc.get("artifacts") or [], suffix=suffix,
        size=int(cohort["size"]), member=member, cohort_id=str(cohort["id"]),
        model_id=str(relative["model_id"]), model_label=model.get("label"),
        model_confidence=float(model.get("confidence") or 0.0))
    return out


def with_model_basis(doc: Mapping[str, Any], reason: str, cohort: Mapping[str, Any] | None = None,
                     flag_narrative: bool = True, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """``doc`` with the absolute model's grade and narrative, the basis ``model`` and its
    ``reason``; with ``flag_narrative`` the classification section starts by saying so
    (a small cohort's fallback is flagged; a participant-level job's grade is not yet one)."""
    out = dict(doc)  # grade and narrative are replaced; nothing else is touched
    model = model_grade(doc)
    out["grade"] = {
        "label": model.get("label"), "probabilities": dict(model.get("probabilities") or {}),
        "confidence": model.get("confidence"),
        "outside_training": list(model.get("outside_training") or []),
        "basis": BASIS_MODEL, "basis_reason": reason,
        "cohort": dict(cohort) if cohort is not None else None,
        "model_id": model.get("model_id"), "deviations": [],
        "cohort_warnings": list(warnings), "model_grade": model,
    }
    narrative = dict(model.get("narrative") or {})
    out["narrative"] = model_basis_narrative(narrative, reason) if flag_narrative else narrative
    return out


def small_cohort_reason(size: int, minimum: int) -> str:
    """Why a run of a small cohort keeps the absolute model's grade."""
    return (f"its cohort has {size} run{'s' if size != 1 else ''}, fewer than the "
            f"{minimum} a dataset grade needs")
