"""Write every run's derivatives (:func:`mmrqa_bids.derivatives.write_run`) in one node."""
from __future__ import annotations

import logging
import traceback
from typing import Any

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject,
                                    SimpleInterface, TraitedSpec, traits)

from mmrqa_bids.derivatives import DerivativesLayout, write_run
from mmrqa_bids.records import fail_record, read_record

logger = logging.getLogger(__name__)


def write_isolated(record: dict[str, Any], layout: DerivativesLayout, settings: dict[str, Any],
                   reports: bool) -> tuple[str, str]:
    """:func:`write_run`, with any error while writing one run (a folder that cannot be
    created, a full disk) turned into that run's failure record, so the others are written.
    When even the failure record cannot be written the run still counts as failed."""
    try:
        return write_run(record, layout, settings, reports)
    except Exception as exc:  # noqa: BLE001 - one run's outputs, never the batch
        fail_record(record, "write", f"cannot write its outputs ({type(exc).__name__}: {exc})",
                    traceback.format_exc())
    name = record["run"]["bids_name"]
    try:
        return write_run(record, layout, settings, reports)
    except Exception as exc:  # noqa: BLE001
        logger.warning("FAILED %s: cannot write its failure record either (%s)", name, exc)
        return str(layout.failure(name)), "failed"


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
        written = [write_isolated(read_record(p), layout, self.inputs.settings,
                                  self.inputs.reports) for p in self.inputs.in_records]
        self._results["out_json"] = [path for path, _ in written]
        self._results["status"] = [status for _, status in written]
        return runtime
