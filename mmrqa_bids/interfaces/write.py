"""Write one run's derivatives: the JSON document and the individual report."""
from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface,
                                    TraitedSpec, traits)

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.io import atomic_write_json
from mmrqa_bids.outputs import derivative_document, failure_path
from mmrqa_bids.records import failed, read_record
from mmrqa_bids.reports.individual import write_individual


class _WriteRunInputSpec(BaseInterfaceInputSpec):
    in_record = File(exists=True, mandatory=True)
    output_dir = traits.Str(mandatory=True)
    settings = traits.Dict(mandatory=True, desc="run settings, recorded in provenance")
    reports = traits.Bool(True, usedefault=True)


class _WriteRunOutputSpec(TraitedSpec):
    out_json = traits.Str(desc="derivative JSON, or the failure record")
    status = traits.Str(desc="label, 'unparsed' or 'failed'")


class WriteRun(SimpleInterface):
    input_spec = _WriteRunInputSpec
    output_spec = _WriteRunOutputSpec

    def _run_interface(self, runtime):
        record = read_record(self.inputs.in_record)
        run = RunSpec.from_dict(record["run"])
        out = Path(self.inputs.output_dir)
        fail_json = failure_path(out, run.bids_name)
        if failed(record):
            atomic_write_json(fail_json, {"bids_name": run.bids_name, "suffix": run.suffix,
                                          "source": str(run.path), "error": record["error"],
                                          **{k: v for k, v in run.entities.items()}})
            # Outputs of an earlier successful run of this file would now be stale.
            run.derivative_json(out).unlink(missing_ok=True)
            run.report_html(out).unlink(missing_ok=True)
            print(f"[mmrqa] FAILED {run.path}: {record['error']}", flush=True)
            self._results.update(out_json=str(fail_json), status="failed")
            return runtime
        doc = derivative_document(record, self.inputs.settings)
        target = run.derivative_json(out)
        atomic_write_json(target, doc)
        fail_json.unlink(missing_ok=True)
        if self.inputs.reports:
            write_individual(run.report_html(out), doc, record.get("mosaics", {}))
        label = doc["grade"]["label"] or "unparsed"
        print(f"[mmrqa] {run.bids_name}: {label} (confidence {doc['grade']['confidence']:.2f})",
              flush=True)
        self._results.update(out_json=str(target), status=label)
        return runtime
