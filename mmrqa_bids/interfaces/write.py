"""Write every run's derivatives (:func:`mmrqa_bids.derivatives.write_run`) in one node."""
from __future__ import annotations

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject,
                                    SimpleInterface, TraitedSpec, traits)

from mmrqa_bids.derivatives import DerivativesLayout, write_run
from mmrqa_bids.records import read_record


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
        layout = DerivativesLayout(self.inputs.output_dir)
        written = [write_run(read_record(p), layout, self.inputs.settings, self.inputs.reports)
                   for p in self.inputs.in_records]
        self._results["out_json"] = [path for path, _ in written]
        self._results["status"] = [status for _, status in written]
        return runtime
