"""Dataset grades for ``mmrqa-mriqc``: each run against the other runs of its cohort.

MRIQC's tables hold no sidecar, so a run's protocol here is its suffix, its ``acq-``-like
entities (from its name) and the image grid MRIQC measured (``spacing_x/y/z`` rounded as in
:func:`mmrqa_bids.cohorts.grouping.cohort_protocol`, ``size_x/y/z``). One MRIQC folder is
usually one site; to split sites (or anything else), pass ``--cohort-by FILE.tsv`` with the
columns ``bids_name`` and ``cohort``. A cohort of at least ``MIN_COHORT_SIZE`` runs gets the
dataset grade (:mod:`mmrqa_bids.cohorts.relative`, on the IQMs that share mmrqa's names);
smaller ones keep the IQM model's grade, flagged. The IQM model's grade stays in the
``model_grade`` column either way.
"""
from __future__ import annotations

from typing import Any, Sequence

from mmrqa_bids.bids import parse_entities
from mmrqa_bids.cohorts.dataset import grade_cohorts, summary_lines
from mmrqa_bids.cohorts.grouping import (PROTOCOL_ENTITIES, VOXEL_DECIMALS, CohortBy,
                                         assign_cohorts)
from mmrqa_bids.mriqc.iqms import IqmRecord

#: The group-table columns this step adds (after the IQM model's grade columns).
COHORT_COLUMNS = ("basis", "cohort", "cohort_size", "model_grade")


def iqm_protocol(record: IqmRecord, suffix: str) -> dict[str, Any]:
    """The cohort key of an MRIQC run: suffix, protocol entities from its name, voxel size
    (``spacing_*``, to ``VOXEL_DECIMALS`` mm) and matrix (``size_*``) where MRIQC has them."""
    protocol: dict[str, Any] = {"suffix": suffix}
    entities = parse_entities(f"{record.bids_name}.nii.gz")
    protocol.update({k: entities[k] for k in PROTOCOL_ENTITIES if k in entities})
    spacing = [record.iqms.get(f"spacing_{a}") for a in "xyz"]
    if all(v is not None for v in spacing):
        protocol["voxel_size_mm"] = [round(float(v), VOXEL_DECIMALS) + 0.0 for v in spacing]
    size = [record.iqms.get(f"size_{a}") for a in "xyz"]
    if all(v is not None for v in size):
        protocol["matrix"] = [int(round(float(v))) for v in size]
    return protocol


def _doc(record: IqmRecord, row: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The minimal run document the cohort functions read: names, IQMs, the model's grade."""
    return {"bids_meta": {"bids_name": record.bids_name, "suffix": suffix},
            "metrics": dict(record.iqms),
            "grade": {"label": row["grade"], "confidence": row["confidence"],
                      "probabilities": {k: row[f"p_{k.lower()}"] for k in ("Good", "Medium", "Bad")}}}


def apply_dataset_grades(records: Sequence[IqmRecord], rows: list[dict[str, Any]], suffix: str,
                         by: CohortBy = CohortBy()) -> tuple[list[dict[str, Any]], list[str]]:
    """``rows`` (the IQM model's, one per record, same order) with the dataset grade where the
    run's cohort is large enough, and :data:`COHORT_COLUMNS`; plus the console lines (cohorts,
    their members, small-cohort fallbacks and guard-rail warnings)."""
    docs = [_doc(rec, row, suffix) for rec, row in zip(records, rows)]
    protocols = [iqm_protocol(rec, suffix) for rec in records]
    outcomes = grade_cohorts(assign_cohorts(docs, by, protocols if by.mode == "protocol" else None))
    by_name = {r["bids_name"]: dict(r) for r in rows}
    for oc in outcomes:
        for k, doc in enumerate(oc.cohort.docs):
            row = by_name[doc["bids_meta"]["bids_name"]]
            row.update({"basis": oc.basis, "cohort": oc.cohort.cohort_id, "cohort_size": oc.size,
                        "model_grade": row["grade"]})
            if oc.reference is None:
                continue
            rel = oc.grades[k]
            row.update({"grade": rel.label, "confidence": rel.confidence,
                        **{f"p_{lab.lower()}": float(p) for lab, p in rel.probabilities.items()},
                        "drivers": "; ".join(f"{d.metric}={d.value:.4g} (z {d.z:+.1f})"
                                             for d in rel.deviations) or "none"})
    return [by_name[r["bids_name"]] for r in rows], summary_lines(outcomes)


def keep_model_grades(rows: list[dict[str, Any]], suffix: str
                      ) -> tuple[list[dict[str, Any]], list[str]]:
    """``--cohort-by none``: every row keeps the IQM model's grade, with
    :data:`COHORT_COLUMNS` (basis ``model``, no cohort) and one console line. On ABIDE's and
    DS030's ratings the IQM model ranks a site's excluded runs better than the dataset grade
    does (``benchmarks/cohort_mriqc_ratings.py --combine-supervised``)."""
    out = [{**r, "basis": "model", "cohort": "", "cohort_size": "", "model_grade": r["grade"]}
           for r in rows]
    return out, [f"{suffix}: --cohort-by none: {len(out)} run(s) keep the IQM model's grade "
                 "(no dataset grades)"]
