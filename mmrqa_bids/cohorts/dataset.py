"""The group level's dataset grades: each run graded against the other runs of its cohort.

    docs --assign_cohorts--> cohorts --grade_cohorts--> outcomes (reference, relative grades,
    warnings) --regraded_documents--> docs with grade.basis

A cohort of at least ``MIN_COHORT_SIZE`` runs gets a robust reference
(:func:`~mmrqa_bids.cohorts.reference.build_reference`) and a dataset grade for each member
(:func:`~mmrqa_bids.cohorts.relative.grade_cohort`); a smaller one keeps the absolute
model's grades, flagged. Guard rails (:func:`~mmrqa_bids.cohorts.relative.cohort_warnings`)
are returned with each outcome, to be shown in the group report and on the console.

The dataset grade is read by the shipped cohort model of each family, or by the one a model
folder holds (``train --labels`` writes ``cohort_<family>.json.gz`` beside the metric
classifier): :func:`cohort_models` reads a folder, :func:`model_folder_of_runs` finds the
folder the runs were graded with (their provenance), and each graded run records the model's
id (``grade.model_id``) and where it came from (``grade.cohort.model``).
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmrqa_bids.cohorts.basis import (BASIS_DATASET, BASIS_MODEL, cohort_record, model_grade,
                                      small_cohort_reason, with_dataset_basis, with_model_basis)
from mmrqa_bids.cohorts.grouping import Cohort, describe_protocol
from mmrqa_bids.cohorts.reference import CohortReference, build_reference
from mmrqa_bids.cohorts.relative import (FAMILIES, MIN_COHORT_SIZE, MODEL_FILES, CohortModel,
                                         RelativeGrade, cohort_warnings, grade_cohort,
                                         load_cohort_model, read_model_file)
from mmrqa_bids.grading.narrative import family_of

#: Members named on the console per cohort (the rest are in the group table and the reference).
MAX_NAMES_SHOWN = 6


def metric_row(doc: Mapping[str, Any]) -> dict[str, float]:
    """A run's metrics that are finite numbers (``null`` and text values dropped)."""
    return {k: float(v) for k, v in (doc.get("metrics") or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


#: ``grade.cohort.model`` of a run graded by the cohort model shipped with mmrqa.
SHIPPED = "shipped"


@dataclass(frozen=True)
class CohortModels:
    """The cohort model of each family for one invocation, and where each came from: the
    file of a model folder, or :data:`SHIPPED`. ``lines``: what to say on the console."""

    models: dict[str, CohortModel]
    sources: dict[str, str]
    lines: tuple[str, ...] = field(default=())

    def model(self, family: str) -> CohortModel:
        return self.models.get(family) or load_cohort_model(family)

    def source(self, family: str) -> str:
        return self.sources.get(family, SHIPPED)

    def log(self, log: logging.Logger) -> None:
        """Say :attr:`lines` on ``log``: a line starting with WARNING as a warning."""
        for line in self.lines:
            (log.warning if line.startswith("WARNING") else log.info)("%s", line)


def shipped_cohort_models() -> CohortModels:
    """The cohort models shipped with mmrqa, one console line naming them."""
    models = {f: load_cohort_model(f) for f in FAMILIES}
    return CohortModels(models, {f: SHIPPED for f in FAMILIES}, (
        "dataset grades by the shipped cohort models: "
        + ", ".join(f"{m.model_id} ({f})" for f, m in models.items()),))


def cohort_models(model_dir: str | Path | None) -> CohortModels:
    """The cohort models of a model folder (``cohort_<family>.json.gz``, written by ``train
    --labels``), the shipped one for each family the folder lacks (a warning line says so);
    the shipped models when ``model_dir`` is None. CohortGradeError (one line naming the
    file) for a folder that is not one or a model file that cannot be read."""
    from mmrqa_bids.cohorts.relative import CohortGradeError

    if model_dir is None:
        return shipped_cohort_models()
    folder = Path(model_dir)
    if not folder.is_dir():
        raise CohortGradeError(f"{folder}: --model is not a folder (the dataset grade reads "
                               f"{' and '.join(MODEL_FILES.values())} from a model folder "
                               "that train --labels wrote)")
    models, sources, lines = {}, {}, []
    for family in FAMILIES:
        path = folder / MODEL_FILES[family]
        if path.is_file():
            models[family], sources[family] = read_model_file(path), str(path)
            lines.append(f"dataset grades of {family} cohorts by cohort model "
                         f"{models[family].model_id} from {path}")
        else:
            models[family], sources[family] = load_cohort_model(family), SHIPPED
            lines.append(f"WARNING {folder} has no {MODEL_FILES[family]} (train --labels writes "
                         f"it): {family} cohorts are graded by the shipped cohort model "
                         f"{models[family].model_id}")
    return CohortModels(models, sources, tuple(lines))


def classifier_model_folder(grader: str | None, model: Any) -> str | None:
    """``--model`` when it names the metric classifier's folder (grader ``classifier``, the
    default), else None: the shipped classifier, or another grader, whose ``--model`` is a
    multimodal model, not a folder of metric models."""
    return str(model) if model and (grader or "classifier") == "classifier" else None


def run_model_folder(doc: Mapping[str, Any]) -> str | None:
    """The metric classifier's model folder a run was graded with (``--model`` as its
    participant level recorded it; :func:`classifier_model_folder`)."""
    grading = ((doc.get("provenance") or {}).get("settings") or {}).get("grading") or {}
    return classifier_model_folder(grading.get("grader"), grading.get("model"))


def model_folder_of_runs(docs: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(the model folder the runs were graded with, a warning line or None). One folder
    for every run: that folder. Runs graded with different folders (or some with the shipped
    classifier): None (the shipped cohort models) and one line saying so, with the counts."""
    counts = Counter(run_model_folder(d) for d in docs)
    if len(counts) <= 1:
        return (next(iter(counts)) if counts else None), None
    listed = ", ".join(f"{folder or 'the shipped classifier'}: {n} run(s)"
                       for folder, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return None, (f"WARNING the runs were graded with different --model folders ({listed}); "
                  "their dataset grades use the shipped cohort models (give the group level "
                  "--model DIR to use one folder's)")


@dataclass(frozen=True)
class CohortOutcome:
    """A cohort after grading: its reference and members' relative grades (aligned with
    ``cohort.docs``) when it is large enough, and its guard-rail warnings."""

    cohort: Cohort
    reference: CohortReference | None  # None below MIN_COHORT_SIZE
    grades: tuple[RelativeGrade, ...]  # one per member; () below MIN_COHORT_SIZE
    warnings: tuple[str, ...]
    minimum: int
    #: why a large-enough cohort has no dataset grade (its runs keep the model's, flagged)
    error: str | None = None
    #: where the cohort model that graded it came from (a model file, or SHIPPED)
    model_source: str = SHIPPED

    @property
    def size(self) -> int:
        return len(self.cohort.docs)

    @property
    def basis(self) -> str:
        return BASIS_DATASET if self.reference is not None else BASIS_MODEL


def grade_cohorts(cohorts: Mapping[str, Cohort], models: CohortModels | None = None
                  ) -> list[CohortOutcome]:
    """Build each large-enough cohort's reference, grade its members against it with its
    family's cohort model (``models``; default the shipped ones), and run the guard rails
    (with the absolute model's labels beside the relative ones)."""
    models = models or CohortModels({}, {})
    outcomes = []
    for cid, cohort in cohorts.items():
        if len(cohort.docs) < MIN_COHORT_SIZE:
            outcomes.append(CohortOutcome(cohort, None, (), (), MIN_COHORT_SIZE))
            continue
        rows = [metric_row(d) for d in cohort.docs]
        try:
            ref = build_reference(rows, cohort_id=cid, protocol=cohort.protocol,
                                  members=cohort.members)
            family = family_of(cohort.suffix)
            grades = grade_cohort(ref, rows, family, model=models.model(family))
        except ValueError as exc:  # CohortGradeError too: e.g. no metric shared by the runs
            outcomes.append(CohortOutcome(cohort, None, (), (), MIN_COHORT_SIZE,
                                          error=" ".join(str(exc).split())))
            continue
        if len(grades) != len(rows):
            raise RuntimeError(f"cohort {cid}: {len(grades)} grades for {len(rows)} runs")
        warnings = cohort_warnings(ref, grades, [model_grade(d).get("label") for d in cohort.docs],
                                   rows=rows, family=family_of(cohort.suffix))
        outcomes.append(CohortOutcome(cohort, ref, tuple(grades), tuple(warnings), MIN_COHORT_SIZE,
                                      model_source=models.source(family)))
    return outcomes


def graded_against_reference(doc: Mapping[str, Any]) -> bool:
    """The run carries a dataset grade from a stored cohort reference."""
    grade = doc.get("grade") or {}
    return grade.get("basis") == BASIS_DATASET and (grade.get("cohort") or {}).get("by") == "reference"


def regraded_documents(outcomes: Sequence[CohortOutcome], by: str) -> dict[str, dict[str, Any]]:
    """bids_name -> the run's document with its basis: ``dataset`` for members of a graded
    cohort, ``model`` (flagged, with the reason) for members of a small one."""
    out: dict[str, dict[str, Any]] = {}
    for oc in outcomes:
        record = cohort_record(oc.cohort.cohort_id, oc.size, oc.cohort.protocol, by,
                               min_size=oc.minimum)
        if oc.reference is None:
            reason = small_cohort_reason(oc.size, oc.minimum) if oc.error is None else \
                f"its cohort of {oc.size} runs could not be used as a reference: {oc.error}"
            for doc in oc.cohort.docs:
                # a run graded against a stored reference (participant --reference) keeps
                # that dataset grade: its cohort there was large enough
                out[doc["bids_meta"]["bids_name"]] = doc if graded_against_reference(doc) \
                    else with_model_basis(doc, reason, record)
            continue
        record = {**record, "model": oc.model_source}
        for doc, rel in zip(oc.cohort.docs, oc.grades):
            out[doc["bids_meta"]["bids_name"]] = with_dataset_basis(
                doc, rel, record, member=True, warnings=oc.warnings)
    return out


def summary_lines(outcomes: Sequence[CohortOutcome]) -> list[str]:
    """Console lines: each cohort, its protocol, its members (the first few) and the grades
    it produced; a small cohort's fallback and every guard-rail warning on their own line."""
    lines = []
    for oc in outcomes:
        names = oc.cohort.members
        shown = ", ".join(names[:MAX_NAMES_SHOWN]) + \
            (f" and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else "")
        count = (f"{oc.size} runs compared with each other" if oc.size != 1
                 else "1 run, nothing to compare it with")
        head = (f"cohort {oc.cohort.cohort_id} ({describe_protocol(oc.cohort.protocol)}): "
                f"{count}: {shown}")
        lines.append(head)
        if oc.error is not None:
            lines.append(f"WARNING cohort {oc.cohort.cohort_id}: no dataset grade ({oc.error}); "
                         "its runs keep the absolute model's grade (basis 'model', flagged)")
        elif oc.reference is None:
            kept = sum(graded_against_reference(d) for d in oc.cohort.docs)
            lines.append(f"WARNING cohort {oc.cohort.cohort_id}: {oc.size} run(s), fewer than "
                         f"{oc.minimum}: no dataset grade; its runs keep the absolute model's "
                         "grade (basis 'model', flagged wherever the grade is shown)"
                         + (f", but for {kept} graded against a stored reference, which keep "
                            "that grade" if kept else ""))
        else:
            counts = Counter(g.label for g in oc.grades)
            lines.append("  dataset grades: " + ", ".join(
                f"{label} {counts.get(label, 0)}" for label in ("Good", "Medium", "Bad")))
        lines.extend(f"WARNING {w}" for w in oc.warnings)
    return lines


def cohort_summaries(outcomes: Sequence[CohortOutcome]) -> list[dict[str, Any]]:
    """Plain records of the cohorts for the group report: id, protocol (one line), size,
    basis, minimum size, members, guard-rail warnings, and the cohort model that gave the
    dataset grades (``model_id``; ``model``: its file or :data:`SHIPPED`; None when none)."""
    return [{"id": oc.cohort.cohort_id, "suffix": oc.cohort.suffix,
             "protocol": describe_protocol(oc.cohort.protocol), "size": oc.size,
             "basis": oc.basis, "minimum": oc.minimum, "members": list(oc.cohort.members),
             "error": oc.error, "warnings": list(oc.warnings),
             "model_id": oc.grades[0].model_id if oc.grades else None,
             "model": oc.model_source if oc.grades else None} for oc in outcomes]
