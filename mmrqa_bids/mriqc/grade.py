"""Grade an MRIQC IQM table with the IQM model: rows for ``group_<suffix>.tsv`` and the report."""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from mmrqa_bids.mriqc.iqms import IqmRecord
from mmrqa_bids.mriqc.model import LABELS, IqmModel, decide

FIXED_COLUMNS = ("bids_name", "grade", "p_good", "p_medium", "p_bad", "confidence",
                 "basis", "cohort", "cohort_size", "model_grade", "drivers", "missing_iqms")


@dataclass
class GradedTable:
    suffix: str
    rows: list[dict[str, Any]]
    missing_features: list[str]  # model features absent from the whole table
    renamed: dict[str, str]  # legacy IQM names met, and their current names
    versions: list[str]  # MRIQC versions that wrote the inputs (where recorded)
    errors: list[str] = field(default_factory=list)  # unusable input files, skipped

    def counts(self) -> dict[str, int]:
        c = Counter(r["grade"] for r in self.rows)
        return {label: c.get(label, 0) for label in ("Good", "Medium", "Bad")}


def grade_records(records: Sequence[IqmRecord], model: IqmModel, suffix: str, source: str,
                  errors: Sequence[str] = ()) -> GradedTable:
    """Grade every run of one site's table (raises ``ModelInputError`` on unusable tables)."""
    present = sorted({name for r in records for name in r.iqms})
    missing = model.check_features(present, source)
    X = model.design([r.iqms for r in records])
    Z = model.scale(X)  # one site; a site block refuses fewer than model.min_site_runs runs
    proba = model.proba_from_scaled(Z)
    rows = []
    for record, p, z, x, label in zip(records, proba, Z, X, decide(proba, model.thresholds)):
        probs = dict(zip(LABELS, (float(v) for v in p)))
        drivers = model.drivers(z, label)
        row: dict[str, Any] = {
            "bids_name": record.bids_name, "grade": label, "p_good": probs["Good"],
            "p_medium": probs["Medium"], "p_bad": probs["Bad"], "confidence": probs[label],
            "drivers": "; ".join(f"{name}={record.iqms[name]:.4g}" for name, _ in drivers)
            or "none",
            "missing_iqms": int(np.isnan(x).sum()),
        }
        row.update({f: record.iqms[f] for f in model.features if f in record.iqms})
        rows.append(row)
    renamed: dict[str, str] = {}
    for r in records:
        renamed.update(r.renamed)
    versions = sorted({r.mriqc_version for r in records if r.mriqc_version})
    return GradedTable(suffix=suffix, rows=rows, missing_features=missing, renamed=renamed,
                       versions=versions, errors=list(errors))


def to_tsv(rows: Sequence[dict[str, Any]], features: Sequence[str]) -> str:
    columns = list(FIXED_COLUMNS) + [f for f in features if any(f in r for r in rows)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, delimiter="\t", lineterminator="\n",
                            restval="n/a", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    return buf.getvalue()
