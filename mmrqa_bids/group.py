"""Group level: gather every run's derivative into ``group_<suffix>.tsv`` and its report."""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrqa_bids.bids import DatasetError
from mmrqa_bids.derivatives import (DerivativesLayout, collect_documents, group_tables,
                                    to_tsv, unreadable_outputs)
from mmrqa_bids.io import atomic_write_json, atomic_write_text
from mmrqa_bids.output_lock import grading_lock

if TYPE_CHECKING:  # the cohort modules load the metrics: imported where they are used
    from mmrqa_bids.cohorts.dataset import CohortModels

logger = logging.getLogger(__name__)

#: Run JSONs rewritten at once. Each atomic write ends in an fsync that waits on the disk
#: (most of the group level's time on 1,000 runs); threads overlap those waits, and the
#: filesystem can commit several in one journal flush.
WRITE_THREADS = 8


def run_group(output_dir: Path, modalities: tuple[str, ...], reports: bool = True,
              cohort_by: str = "protocol", bids_dir: Path | None = None,
              model_dir: Path | None = None) -> dict[str, Path]:
    """Grade every run against its cohort (dataset grades, written back into each run JSON;
    each graded cohort's reference stored), then write ``group_<suffix>.tsv`` (and ``.html``)
    for each suffix with runs; with reports, also show each run's grade basis and percentiles
    within the dataset in its individual report. Returns what was written
    (:func:`group_level` also returns the unreadable outputs it tabulated).

    The cohort models: those of ``model_dir`` (the group level's ``--model``), else those of
    the model folder the runs were graded with (:func:`group_cohort_models`)."""
    return group_level(output_dir, modalities, reports, cohort_by, bids_dir, model_dir)[0]


def group_level(output_dir: Path, modalities: tuple[str, ...], reports: bool = True,
                cohort_by: str = "protocol", bids_dir: Path | None = None,
                model_dir: Path | None = None
                ) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """:func:`run_group`, and the rows of the ``modalities``' run JSONs and failure records
    that could not be read (:func:`~mmrqa_bids.derivatives.unreadable_outputs`, in its
    order: the same rows the group tables hold with status ``unreadable``), so that the
    command line reports them without parsing every run JSON again.

    Under the output folder's grading lock (:func:`~mmrqa_bids.output_lock.grading_lock`),
    from reading the run JSONs to the last report: another group level or join step into
    the same folder waits."""
    layout = DerivativesLayout(output_dir)
    with grading_lock(output_dir):
        every, docs, outcomes = _grade(layout, modalities, cohort_by, bids_dir, model_dir)
        unreadable, tables = _tabulate(layout, modalities, docs, every)
        if not tables:
            raise DatasetError(f"{output_dir}: no participant-level outputs found; "
                               "run the participant level first")
        written = {}
        for suffix, rows in tables.items():
            tsv = atomic_write_text(layout.group_table(suffix), to_tsv(rows))
            written[f"{suffix}.tsv"] = tsv
            if reports:
                written[f"{suffix}.html"] = _write_reports(
                    layout, suffix, rows,
                    [d for d in docs if d["bids_meta"]["suffix"] == suffix],
                    [o for o in outcomes if o.cohort.suffix == suffix])
    return written, unreadable


def join_grades(output_dir: Path, modalities: tuple[str, ...], reports: bool = True,
                cohort_by: str = "protocol", bids_dir: Path | None = None,
                model_dir: Path | None = None) -> list[dict[str, Any]]:
    """The participant level's join step, for an invocation that selected the whole dataset:
    the same dataset grades as :func:`group_level` (:func:`dataset_grades`: run JSONs and
    cohort references), and with ``reports`` the same update of each individual report;
    no group TSV or report. Returns the run documents of the ``modalities`` as graded.

    The group tables serve only the reports' percentiles: without ``reports`` they are not
    built (nor the unreadable outputs looked for). Under the output folder's grading lock,
    as :func:`group_level`."""
    layout = DerivativesLayout(output_dir)
    with grading_lock(output_dir):
        every, docs, _ = _grade(layout, modalities, cohort_by, bids_dir, model_dir)
        if reports:
            for suffix, rows in _tabulate(layout, modalities, docs, every)[1].items():
                update_run_reports(layout, rows,
                                   [d for d in docs if d["bids_meta"]["suffix"] == suffix])
    return docs


def _grade(layout: DerivativesLayout, modalities: tuple[str, ...], cohort_by: str,
           bids_dir: Path | None, model_dir: Path | None
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """Every valid run document as read, those of ``modalities`` graded against their
    cohorts (:func:`dataset_grades`: written back) and the outcomes."""
    every = collect_documents(layout)
    docs = [d for d in every if d["bids_meta"]["suffix"] in modalities]
    docs, outcomes = dataset_grades(layout, docs, cohort_by, bids_dir, model_dir)
    return every, docs, outcomes


def _tabulate(layout: DerivativesLayout, modalities: tuple[str, ...],
              docs: list[dict[str, Any]], every: list[dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The unreadable rows of ``modalities`` and their group tables, of the graded ``docs``."""
    # every run JSON was read once (``every``): only the ones that did not read as valid
    # documents are parsed again (the rewritten ones stay valid documents)
    unreadable = unreadable_outputs(layout, modalities, known=[d["_path"] for d in every])
    tables = {s: rows for s, rows in group_tables(layout, docs, unreadable).items()
              if s in modalities}
    return unreadable, tables


def group_cohort_models(docs: list[dict[str, Any]], model_dir: Path | None
                        ) -> "CohortModels":
    """The :class:`~mmrqa_bids.cohorts.dataset.CohortModels` of the group level: ``--model``'s
    folder when given; else the folder every run was graded with (``participant --model``,
    from their provenance); else the shipped ones: runs graded with different folders, or a
    recorded folder that is gone, each with one warning line. DatasetError for a ``--model``
    that is not a folder or an unreadable cohort model file."""
    from mmrqa_bids.cohorts.dataset import (CohortModels, cohort_models, model_folder_of_runs,
                                            shipped_cohort_models)

    lines: list[str] = []
    folder: str | Path | None = model_dir
    if folder is None:
        folder, mixed = model_folder_of_runs(docs)
        lines += [mixed] if mixed else []
        if folder is not None and not Path(folder).is_dir():
            lines.append(f"WARNING the runs were graded with --model {folder}, which is not a "
                         "folder here; their dataset grades use the shipped cohort models "
                         "(give the group level --model DIR)")
            folder = None
        elif folder is not None:
            lines.append(f"cohort models from {folder}, the --model the runs were graded with")
    try:
        models = cohort_models(folder) if folder is not None else shipped_cohort_models()
    except ValueError as exc:  # CohortGradeError: not a folder, unreadable model file
        raise DatasetError(" ".join(str(exc).split())) from exc
    return CohortModels(models.models, models.sources, (*lines, *models.lines))


def dataset_grades(layout: DerivativesLayout, docs: list[dict[str, Any]], cohort_by: str,
                    bids_dir: Path | None, model_dir: Path | None = None
                    ) -> tuple[list[dict[str, Any]], list[Any]]:
    """Cohorts, their references and the dataset grades: every run JSON rewritten (atomic)
    with its grade basis, stale references of the graded suffixes removed, a summary printed."""
    from mmrqa_bids.cohorts.dataset import grade_cohorts, regraded_documents, summary_lines
    from mmrqa_bids.cohorts.grouping import CohortError, assign_cohorts, parse_cohort_by

    notes: list[str] = []
    models = group_cohort_models(docs, model_dir)
    try:
        by = parse_cohort_by(cohort_by)
        outcomes = grade_cohorts(assign_cohorts(docs, by, bids_dir=bids_dir, notes=notes),
                                 models)
    except CohortError as exc:
        raise DatasetError(str(exc)) from exc
    for note in notes:
        logger.warning("WARNING %s", note)
    models.log(logger)
    regraded = regraded_documents(outcomes, by.describe())
    out, writes = [], []
    for doc in docs:
        new = regraded[doc["bids_meta"]["bids_name"]]
        content = {k: v for k, v in new.items() if not k.startswith("_")}
        if content != {k: v for k, v in doc.items() if not k.startswith("_")}:  # reruns: no write
            writes.append((Path(doc["_path"]), content))
        out.append(new)
    write_json_files(writes)
    kept = set()
    for oc in outcomes:
        if oc.reference is not None:
            path = layout.cohort_reference(oc.cohort.suffix, oc.cohort.cohort_id)
            if _read_json(path) != oc.reference.to_dict():
                atomic_write_json(path, oc.reference.to_dict())
            kept.add(path)
    for suffix in {d["bids_meta"]["suffix"] for d in docs}:
        for path in layout.cohort_references(suffix):
            if path not in kept:  # a cohort of an earlier run that no longer exists
                path.unlink(missing_ok=True)
    for line in summary_lines(outcomes):
        logger.info("%s", line)
    return out, outcomes


def write_json_files(items: list[tuple[Path, Any]], threads: int | None = None) -> None:
    """:func:`~mmrqa_bids.io.atomic_write_json` of every ``(path, content)``, ``threads``
    (default :data:`WRITE_THREADS`) at a time; each write stays atomic, and the first error
    is raised once the others are done. An interrupt (a ``BaseException`` such as
    :class:`~mmrqa_bids.cli.interrupts.Interrupted`) is raised once the writes in progress
    end; those not begun are dropped (their files keep their old content)."""
    threads = WRITE_THREADS if threads is None else threads
    if len(items) < 2 or threads < 2:
        for path, content in items:
            atomic_write_json(path, content)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(atomic_write_json, path, content) for path, content in items]
        try:
            for future in futures:
                future.result()
        except BaseException as exc:
            if not isinstance(exc, Exception):  # an interrupt: the writes not begun are dropped
                for future in futures:
                    future.cancel()
            raise


def _read_json(path: Path) -> Any:
    """The JSON at ``path``, or None when it is missing or unreadable (then rewritten)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_reports(layout: DerivativesLayout, suffix: str, rows: list[dict[str, Any]],
                   docs: list[dict[str, Any]], outcomes: list[Any]) -> Path:
    """The group report, and the grade basis and dataset context injected into each
    individual report."""
    from mmrqa_bids.cohorts.dataset import cohort_summaries
    from mmrqa_bids.reports.group import write_group_report

    context = update_run_reports(layout, rows, docs)
    return write_group_report(layout.group_report(suffix), suffix, rows, context,
                              report_href=layout.report_href, cohorts=cohort_summaries(outcomes))


def update_run_reports(layout: DerivativesLayout, rows: list[dict[str, Any]],
                       docs: list[dict[str, Any]]) -> Any:
    """The grade basis and dataset context (percentiles among ``rows``, one suffix's group
    table) injected into the individual report of each run of ``docs``. Returns the context."""
    from mmrqa_bids.reports import stats
    from mmrqa_bids.reports.group import NON_METRIC_COLUMNS
    from mmrqa_bids.reports.individual import inject_grade

    measured = [r for r in rows if r.get("status") != "failed"]
    context = stats.dataset_context(measured,
                                    stats.metric_names(measured, exclude=NON_METRIC_COLUMNS))
    for doc in docs:
        report = layout.run_report(doc["bids_meta"]["bids_name"])
        if not inject_grade(report, doc, context.get(doc["bids_meta"]["bids_name"], {})):
            logger.warning("WARNING %s: no individual report to update with the dataset grade and "
                           "percentiles (participant level run with --no-reports?)", report)
    return context
