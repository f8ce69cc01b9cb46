"""Grade every run of the workflow in batches, with the model loaded once."""
from __future__ import annotations

import logging
import math
import os
import time
import traceback
from pathlib import Path

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, InputMultiObject,
                                    SimpleInterface, TraitedSpec, traits)

from mmrqa_bids.grading import GradeRequest, make_grader
from mmrqa_bids.records import fail_record, failed, read_record, write_record
from mmrqa_bids.settings import Grading

logger = logging.getLogger(__name__)


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
        """Every error but an interrupt fails the runs it concerns, never the whole join:
        the grader's set-up fails every measured run, a batch's error fails that batch."""
        settings = grading_from_dict(self.inputs.grading)
        records = [read_record(p) for p in self.inputs.in_records]
        todo = [r for r in records if not failed(r)]
        start = time.perf_counter()
        grader = None
        try:
            grader = make_grader(settings) if todo else None
        except Exception as exc:  # noqa: BLE001
            _fail_all(todo, exc)
            todo = []
        load_s = time.perf_counter() - start
        contexts = _cohort_contexts(todo, settings)
        for i in range(0, len(todo), max(settings.batch_size, 1)):
            batch = todo[i:i + settings.batch_size]
            t0 = time.perf_counter()
            try:
                grades = grader.grade([grade_request(r, contexts.get(r["run"]["bids_name"]))
                                       for r in batch])
            except Exception as exc:  # noqa: BLE001
                _fail_all(batch, exc)
                continue
            per_run = (time.perf_counter() - t0) / len(batch)
            for record, grade in zip(batch, grades):
                record["grade"] = grade.to_dict()
                record["timings"]["grade"] = per_run
        try:
            provenance = grader.provenance() if grader else {"backend": settings.grader}
        except Exception as exc:  # noqa: BLE001
            provenance = {"backend": settings.grader,
                          "provenance_error": f"{type(exc).__name__}: {exc}"}
        outs = []
        for i, record in enumerate(records):
            record["grader"] = provenance
            record["timings"]["grader_load"] = load_s
            outs.append(write_record(record, os.path.join(runtime.cwd), f"record_{i:05d}.json"))
        self._results["out_records"] = outs
        return runtime


def grade_request(record: dict, cohort_context: str | None = None) -> GradeRequest:
    """The grader's view of a measured run; a null (non-finite) metric is passed as NaN,
    which every grader treats as missing."""
    metrics = {k: (math.nan if v is None else v) for k, v in record["metrics"].items()}
    return GradeRequest(bids_name=record["run"]["bids_name"], suffix=record["run"]["suffix"],
                        metrics=metrics,
                        mosaic=Path(record["mosaics"]["mllm"]) if record.get("mosaics") else None,
                        entities=record["run"]["entities"], cohort_context=cohort_context)


def _cohort_contexts(records: list[dict], settings: Grading) -> dict[str, str]:
    """With ``--reference`` and a multimodal grader, each run's standing in its stored
    cohort for the prompt (the metric classifier reads no prompt). A run that cannot be
    compared is graded without it, and the console says so."""
    if not settings.reference or settings.grader == "classifier" or not records:
        return {}
    from mmrqa_bids.reference_grades import prompt_contexts
    try:
        return prompt_contexts(records, Path(settings.reference))
    except Exception as exc:  # noqa: BLE001 (a prompt detail must not fail the grades)
        logger.warning(f"WARNING the prompts carry no cohort context: {exc}")
        return {}


def _fail_all(records: list[dict], exc: Exception) -> None:
    reason = f"grading failed ({type(exc).__name__}: {' '.join(str(exc).split())})"
    trace = traceback.format_exc()
    for record in records:
        fail_record(record, "grade", reason, trace)
