"""Grading existing MRIQC outputs, no images needed (``mmrqa-mriqc``, :mod:`mmrqa_bids.cli.mriqc`).

Reads MRIQC's ``group_<suffix>.tsv`` (or its per-run JSONs), grades every run Good / Medium /
Bad with the IQM model (:mod:`mmrqa_bids.mriqc.model`) and writes ``OUTPUT_DIR/group_<suffix>.tsv``
and ``group_<suffix>.html``. A model with a ``site`` feature block scales the runs of one
invocation together as one site (one scanner and protocol): grade each site's MRIQC folder
separately. The shipped model uses the ``global`` block only (IQM levels against ABIDE).
Then each run is graded against the other runs of its cohort (same suffix and image grid, or
``--cohort-by``), the IQM model's grade kept beside it (:mod:`mmrqa_bids.mriqc.cohorts`).

Exit codes: 0 every run graded; 1 some input files were unusable (the others were graded);
2 nothing could be graded (bad folder, too few runs, too few IQMs).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from mmrqa_bids import vocabulary
from mmrqa_bids.derivatives import DerivativesLayout
from mmrqa_bids.cohorts.grouping import CohortError, parse_cohort_by
from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.mriqc.cohorts import apply_dataset_grades, keep_model_grades
from mmrqa_bids.mriqc.grade import grade_records, to_tsv
from mmrqa_bids.mriqc.iqms import MriqcError, available_suffixes, collect_mriqc
from mmrqa_bids.mriqc.model import IqmModel

# MRIQC computes no IQMs for FLAIR.
SUFFIXES = tuple(s for s in vocabulary.SUFFIXES if s != "FLAIR")
EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2
logger = logging.getLogger(__name__)


def run(mriqc_dir: Path, output_dir: Path, modalities: Sequence[str],
        model_path: Path | None = None, reports: bool = True,
        cohort_by: str = "protocol") -> int:
    """Grade every run of the MRIQC folder with the IQM model, then against the other runs
    of its cohort (:mod:`mmrqa_bids.mriqc.cohorts`); write the group TSV (and report) per
    suffix. Returns the exit code; raises MriqcError when nothing can be graded."""
    try:
        by = None if str(cohort_by) == "none" else parse_cohort_by(cohort_by)
    except CohortError as exc:
        raise MriqcError(str(exc)) from exc
    model = IqmModel.load(model_path)
    if not mriqc_dir.is_dir():
        raise MriqcError(f"{mriqc_dir}: MRIQC output folder does not exist")
    found = available_suffixes(mriqc_dir, modalities)
    if not found:
        raise MriqcError(f"{mriqc_dir}: no MRIQC outputs for {', '.join(modalities)}")
    graded, partial = 0, False
    layout = DerivativesLayout(output_dir)
    for suffix in found:
        if suffix != model.suffix:
            logger.info(f"{suffix}: not graded: the model {model.model_id} was trained on "
                        f"{model.suffix} ratings only (no public expert ratings of {suffix} IQMs)")
            continue
        records, errors = collect_mriqc(mriqc_dir, suffix)
        for error in errors:
            logger.warning(f"WARNING {error}; skipped")
        table = grade_records(records, model, suffix, str(mriqc_dir), errors)
        try:
            table.rows, lines = (keep_model_grades(table.rows, suffix) if by is None
                                 else apply_dataset_grades(records, table.rows, suffix, by))
        except CohortError as exc:
            raise MriqcError(str(exc)) from exc
        for line in lines:
            logger.info("%s", line)
        output_dir.mkdir(parents=True, exist_ok=True)
        tsv = atomic_write_text(layout.group_table(suffix),
                                to_tsv(table.rows, model.features))
        logger.info(f"{suffix}: {len(table.rows)} run(s) graded: "
                    + ", ".join(f"{k} {v}" for k, v in table.counts().items()) + f" -> {tsv}")
        if table.missing_features:
            logger.info(f"{suffix}: IQMs absent from these MRIQC outputs (imputed with the "
                        f"median: no contribution): {', '.join(table.missing_features)}")
        if table.renamed:
            logger.info(f"{suffix}: legacy IQM names mapped: "
                        + ", ".join(f"{k}->{v}" for k, v in sorted(table.renamed.items())))
        if reports:
            from mmrqa_bids.mriqc.report import write_report
            html = write_report(layout.group_report(suffix), table, model,
                                str(mriqc_dir))
            logger.info(f"{suffix}: report {html}")
        graded += 1
        partial = partial or bool(errors)
    if not graded:
        raise MriqcError(f"{mriqc_dir}: nothing to grade with the {model.suffix} model "
                         f"(found {', '.join(found)})")
    return EXIT_PARTIAL if partial else EXIT_OK

