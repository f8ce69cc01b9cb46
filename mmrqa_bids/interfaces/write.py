"""Write every run's derivatives: the JSON document and the individual report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject,
                                    SimpleInterface, TraitedSpec, traits)

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.io import atomic_write_json
from mmrqa_bids.outputs import derivative_document, failure_path
from mmrqa_bids.records import failed, read_record
from mmrqa_bids.reports.individual import write_individual


def write_run(record: dict[str, Any], output_dir: Path, settings: dict[str, Any],
              reports: bool) -> tuple[str, str]:
    """Write one graded run's derivative JSON (and report), or its failure record.

    Returns ``(path written, status)``; status is the grade label, ``"unparsed"`` or
    ``"failed"``.
    """
    run = RunSpec.from_dict(record["run"])
    fail_json = failure_path(output_dir, run.bids_name)
    if failed(record):
        atomic_write_json(fail_json, {"bids_name": run.bids_name, "suffix": run.suffix,
                                      "source": str(run.path), "error": record["error"],
                                      **{k: v for k, v in run.entities.items()}})
        # Outputs of an earlier successful run of this file would now be stale.
        run.derivative_json(output_dir).unlink(missing_ok=True)
        run.report_html(output_dir).unlink(missing_ok=True)
        print(f"[mmrqa] FAILED {run.path}: {record['error']}", flush=True)
        return str(fail_json), "failed"
    doc = derivative_document(record, settings)
    target = run.derivative_json(output_dir)
    atomic_write_json(target, doc)
    fail_json.unlink(missing_ok=True)
    if reports:
        write_individual(run.report_html(output_dir), doc, record.get("mosaics", {}))
    label = doc["grade"]["label"] or "unparsed"
    print(f"[mmrqa] {run.bids_name}: {label} (confidence {doc['grade']['confidence']:.2f})",
          flush=True)
    return str(target), label


class _WriteRunsInputSpec(BaseInterfaceInputSpec):
    in_records = InputMultiObject(File(exists=True), mandatory=True)
    output_dir = traits.Str(mandatory=True)
    settings = traits.Dict(mandatory=True, desc="run settings, recorded in provenance")
    reports = traits.Bool(True, usedefault=True)


class _WriteRunsOutputSpec(TraitedSpec):
    out_json = traits.List(traits.Str, desc="derivative JSON, or the failure record, per run")
    status = traits.List(traits.Str, desc="label, 'unparsed' or 'failed', per run")


class WriteRuns(SimpleInterface):
    """All runs in one node: writing a run takes milliseconds, less than scheduling a node
    for it (a MapNode cost one scheduler round per pair of runs on two processes)."""

    input_spec = _WriteRunsInputSpec
    output_spec = _WriteRunsOutputSpec

    def _run_interface(self, runtime):
        out = Path(self.inputs.output_dir)
        written = [write_run(read_record(p), out, self.inputs.settings, self.inputs.reports)
                   for p in self.inputs.in_records]
        self._results["out_json"] = [path for path, _ in written]
        self._results["status"] = [status for _, status in written]
        return runtime
