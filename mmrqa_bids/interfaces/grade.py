"""Grade every run of the workflow in batches, with the model loaded once."""
from __future__ import annotations

import os
import time
from pathlib import Path

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject,
                                    SimpleInterface, TraitedSpec, traits)

from mmrqa_bids.grading import GradeRequest, make_grader
from mmrqa_bids.records import failed, read_record, write_record
from mmrqa_bids.settings import Grading


class _GradeRunsInputSpec(BaseInterfaceInputSpec):
    in_records = InputMultiObject(File(exists=True), mandatory=True)
    grading = traits.Dict(mandatory=True, desc="Grading settings as a dict")


class _GradeRunsOutputSpec(TraitedSpec):
    out_records = traits.List(File(exists=True))


def grading_from_dict(values: dict) -> Grading:
    values = dict(values)
    if values.get("adapter"):
        values["adapter"] = Path(values["adapter"])
    return Grading(**values)


class GradeRuns(SimpleInterface):
    input_spec = _GradeRunsInputSpec
    output_spec = _GradeRunsOutputSpec

    def _run_interface(self, runtime):
        settings = grading_from_dict(self.inputs.grading)
        records = [read_record(p) for p in self.inputs.in_records]
        todo = [r for r in records if not failed(r)]
        start = time.perf_counter()
        grader = make_grader(settings) if todo else None
        load_s = time.perf_counter() - start
        for i in range(0, len(todo), max(settings.batch_size, 1)):
            batch = todo[i:i + settings.batch_size]
            requests = [GradeRequest(bids_name=r["run"]["bids_name"], suffix=r["run"]["suffix"],
                                     metrics=r["metrics"],
                                     mosaic=Path(r["mosaics"]["mllm"]) if r.get("mosaics") else None,
                                     entities=r["run"]["entities"]) for r in batch]
            t0 = time.perf_counter()
            grades = grader.grade(requests)
            per_run = (time.perf_counter() - t0) / len(batch)
            for record, grade in zip(batch, grades):
                record["grade"] = grade.to_dict()
                record["timings"]["grade"] = per_run
        provenance = grader.provenance() if grader else {"backend": settings.grader}
        outs = []
        for i, record in enumerate(records):
            record["grader"] = provenance
            record["timings"]["grader_load"] = load_s
            outs.append(write_record(record, os.path.join(runtime.cwd), f"record_{i:05d}.json"))
        self._results["out_records"] = outs
        return runtime
