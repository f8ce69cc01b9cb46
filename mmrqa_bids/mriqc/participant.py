"""``mmrqa ... participant --mriqc-dir MRIQC_OUT``: MRIQC's IQMs of a run, next to mmrqa's metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.mriqc.iqms import MriqcError, find_run_iqms

PREFIX = "mriqc_"


def run_iqms(mriqc_dir: str | Path, run: RunSpec) -> tuple[dict[str, float], dict[str, Any]]:
    """(metrics, info) for one run: MRIQC's IQMs as ``mriqc_<iqm>`` metrics, and where they
    came from; when MRIQC did not process the run (or its file is unusable) no metrics and a
    ``note`` saying that mmrqa's own metrics are used alone."""
    try:
        record = find_run_iqms(mriqc_dir, run.bids_name, run.suffix, run.datatype, run.entities)
    except MriqcError as exc:
        return {}, {"source": None, "note": f"MRIQC output unusable, mmrqa metrics only: {exc}"}
    if record is None:
        return {}, {"source": None,
                    "note": f"MRIQC did not process this run (not in {mriqc_dir}); "
                            "mmrqa metrics only"}
    metrics = {f"{PREFIX}{name}": value for name, value in sorted(record.iqms.items())}
    info = {"source": record.source, "mriqc_version": record.mriqc_version,
            "n_iqms": len(metrics), "renamed": record.renamed, "note": None}
    return metrics, info
