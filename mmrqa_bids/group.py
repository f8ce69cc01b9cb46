"""Group level: gather every run's derivative into ``group_<suffix>.tsv`` and its report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrqa_bids.bids import DatasetError
from mmrqa_bids.derivatives import DerivativesLayout, collect_documents, group_tables, to_tsv
from mmrqa_bids.io import atomic_write_text


def run_group(output_dir: Path, modalities: tuple[str, ...], reports: bool = True) -> dict[str, Path]:
    """Write ``group_<suffix>.tsv`` (and ``.html``) for each suffix with runs; with reports,
    also show each run's percentiles within the dataset in its individual report."""
    layout = DerivativesLayout(output_dir)
    docs = collect_documents(layout)
    tables = {s: rows for s, rows in group_tables(layout, docs).items() if s in modalities}
    if not tables:
        raise DatasetError(f"{output_dir}: no participant-level outputs found; run the participant level first")
    written = {}
    for suffix, rows in tables.items():
        tsv = atomic_write_text(layout.group_table(suffix), to_tsv(rows))
        written[f"{suffix}.tsv"] = tsv
        if reports:
            written[f"{suffix}.html"] = _write_reports(layout, suffix, rows,
                                                       [d for d in docs if d["bids_meta"]["suffix"] == suffix])
    return written


def _write_reports(layout: DerivativesLayout, suffix: str, rows: list[dict[str, Any]],
                   docs: list[dict[str, Any]]) -> Path:
    """The group report, and the dataset context injected into each individual report."""
    from mmrqa_bids.reports import stats
    from mmrqa_bids.reports.group import NON_METRIC_COLUMNS, write_group_report
    from mmrqa_bids.reports.individual import inject_dataset_context

    measured = [r for r in rows if r.get("status") != "failed"]
    context = stats.dataset_context(measured, stats.metric_names(measured, exclude=NON_METRIC_COLUMNS))
    path = write_group_report(layout.group_report(suffix), suffix, rows, context,
                              report_href=layout.report_href)
    for doc in docs:
        report = layout.run_report(doc["bids_meta"]["bids_name"])
        if not inject_dataset_context(report, doc, context.get(doc["bids_meta"]["bids_name"], {})):
            print(f"[mmrqa] WARNING {report}: no individual report to update "
                  "with dataset percentiles (participant level run with --no-reports?)", flush=True)
    return path
