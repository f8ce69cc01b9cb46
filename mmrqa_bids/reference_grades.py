"""``participant --reference``: grade new runs at once against stored cohort references.

Before any run is measured, each run's protocol is read from its NIfTI header and BIDS
sidecar and matched to a stored reference (:func:`match_runs`): a run that matches none stops
the invocation with a one-line error, before hours of work. After the participant workflow
has written each run's JSON (the absolute model's grade), :func:`apply_references` grades the
run against its reference and rewrites its JSON and report (atomic), basis ``dataset``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import nibabel as nb

from mmrqa_bids.bids import DatasetError, RunSpec
from mmrqa_bids.derivatives import DerivativesLayout, read_derivative

if TYPE_CHECKING:  # the cohort modules load the metrics: imported where they are used
    from mmrqa_bids.cohorts.dataset import CohortModels
    from mmrqa_bids.settings import Grading

logger = logging.getLogger(__name__)


def image_protocol(run: RunSpec, bids_dir: Path) -> dict[str, Any]:
    """A run's cohort protocol from its header (canonical orientation, as the participant
    level loads it) and its sidecars, without reading a voxel."""
    from mmrqa_bids.cohorts.grouping import cohort_protocol, read_sidecar

    try:
        img = nb.as_closest_canonical(nb.load(str(run.path)))
    except Exception as exc:  # nibabel raises many types for a bad header
        raise DatasetError(f"{run.path}: cannot read the image header "
                           f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
    doc = {"bids_meta": {"bids_name": run.bids_name, "suffix": run.suffix, **run.entities,
                         "shape": list(img.shape),
                         "voxel_size_mm": [float(z) for z in img.header.get_zooms()[:3]]}}
    return cohort_protocol(doc, read_sidecar(run.path, bids_dir))


def load_stored_references(reference: Path) -> list[tuple[Any, Path]]:
    """(reference, its file) for ``--reference`` (an output folder or one file)."""
    from mmrqa_bids.cohorts.grouping import CohortError
    from mmrqa_bids.cohorts.matching import load_references, reference_files

    reference = Path(reference)
    try:
        found = DerivativesLayout(reference).cohort_references() if reference.is_dir() else None
        files = reference_files(reference, found)
        return list(zip(load_references(files), files))
    except CohortError as exc:
        raise DatasetError(str(exc)) from exc


def match_runs(runs: Sequence[RunSpec], stored: Sequence[tuple[Any, Path]], bids_dir: Path
               ) -> dict[str, tuple[Any, Path]]:
    """bids_name -> (reference, file) for every run; DatasetError naming the first run whose
    protocol matches no reference (and how many others do not either)."""
    from mmrqa_bids.cohorts.grouping import CohortError
    from mmrqa_bids.cohorts.matching import match_reference

    refs = [r for r, _ in stored]
    files = {id(r): f for r, f in stored}
    matched, errors = {}, []
    for run in runs:
        try:
            ref = match_reference(image_protocol(run, bids_dir), refs, run.bids_name)
        except CohortError as exc:
            errors.append(str(exc))
            continue
        matched[run.bids_name] = (ref, files[id(ref)])
    if errors:
        more = f" ({len(errors) - 1} more run(s) match no reference either)" if len(errors) > 1 else ""
        raise DatasetError(errors[0] + more)
    return matched


def reference_cohort_models(grading: "Grading") -> "CohortModels":
    """The cohort models of ``participant --reference``: those of the classifier's ``--model``
    folder (``train --labels`` writes them beside the metric classifier; the shipped one for
    a family the folder lacks, with a warning line), else the shipped ones. The other
    graders' ``--model`` is a multimodal model, not a folder of metric models.
    DatasetError (one line) for an unreadable cohort model file."""
    from mmrqa_bids.cohorts.dataset import (classifier_model_folder, cohort_models,
                                            shipped_cohort_models)

    folder = classifier_model_folder(grading.grader, grading.model)
    if folder is None:
        return shipped_cohort_models()
    try:
        return cohort_models(folder)
    except ValueError as exc:  # CohortGradeError
        raise DatasetError(" ".join(str(exc).split())) from exc


def apply_references(layout: DerivativesLayout, runs: Sequence[RunSpec],
                     matched: dict[str, tuple[Any, Path]], reports: bool,
                     models: "CohortModels | None" = None) -> int:
    """Grade every written run against its matched reference with its family's cohort model
    (``models``, a :class:`~mmrqa_bids.cohorts.dataset.CohortModels`; default the shipped
    ones); rewrite its JSON (and report). Returns how many runs were graded (failed runs
    have no JSON and are skipped)."""
    from mmrqa_bids.cohorts.basis import cohort_record, with_dataset_basis, with_model_basis
    from mmrqa_bids.cohorts.dataset import CohortModels, metric_row
    from mmrqa_bids.cohorts.relative import grade_against
    from mmrqa_bids.grading.narrative import family_of
    from mmrqa_bids.io import atomic_write_json
    from mmrqa_bids.reports.individual import inject_grade

    models = models or CohortModels({}, {})
    graded = 0
    for run in runs:
        path = layout.run_json(run)
        if not path.is_file() or run.bids_name not in matched:
            continue
        doc = read_derivative(path)
        if doc is None:
            continue
        ref, file = matched[run.bids_name]
        family = family_of(run.suffix)
        record = cohort_record(ref.cohort_id, ref.n, ref.protocol, "reference", reference=str(file),
                               model=models.source(family))
        try:
            rel = grade_against(ref, metric_row(doc), family, model=models.model(family))
        except ValueError as exc:  # e.g. no metric shared with the reference: flagged, kept
            reason = f"not graded against reference {ref.cohort_id}: {' '.join(str(exc).split())}"
            new = with_model_basis(doc, reason, record)
            logger.warning("WARNING %s: %s; it keeps the absolute model's grade", run.bids_name,
                           reason)
        else:
            new = with_dataset_basis(doc, rel, record, member=False)
            logger.info("%s: %s against reference %s (%d runs; cohort model %s; absolute "
                        "model: %s)", run.bids_name, rel.label, ref.cohort_id, ref.n,
                        rel.model_id, new["grade"]["model_grade"].get("label"))
            graded += 1
        atomic_write_json(path, new)
        if reports:
            inject_grade(layout.run_report(run.bids_name), new)
    return graded


def prompt_contexts(records: Sequence[dict[str, Any]], reference: Path) -> dict[str, str]:
    """bids_name -> the cohort sentence of a multimodal grader's prompt
    (:func:`mmrqa_bids.cohorts.narrative.prompt_context`) for measured run records, each
    against its stored reference (the same match the participant level checked up front),
    read by the shipped cohort models (a multimodal grader's ``--model`` is not a folder of
    metric models)."""
    from mmrqa_bids.cohorts.dataset import metric_row
    from mmrqa_bids.cohorts.grouping import cohort_protocol, dataset_root, read_sidecar
    from mmrqa_bids.cohorts.matching import match_reference
    from mmrqa_bids.cohorts.narrative import prompt_context
    from mmrqa_bids.cohorts.relative import grade_against
    from mmrqa_bids.grading.narrative import family_of

    refs = [r for r, _ in load_stored_references(reference)]
    out = {}
    for record in records:
        run = RunSpec.from_dict(record["run"])
        doc = {"bids_meta": {"bids_name": run.bids_name, "suffix": run.suffix, **run.entities,
                             "shape": record.get("shape"), "voxel_size_mm": record.get("zooms")},
               "metrics": record.get("metrics") or {}}
        protocol = cohort_protocol(doc, read_sidecar(run.path, dataset_root(run.path) or run.path.parent))
        ref = match_reference(protocol, refs, run.bids_name)
        family = family_of(run.suffix)
        rel = grade_against(ref, metric_row(doc), family)  # the shipped model of the family
        out[run.bids_name] = prompt_context([d.__dict__ for d in rel.deviations], run.suffix, ref.n)
    return out
