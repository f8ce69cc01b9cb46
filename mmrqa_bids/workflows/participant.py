"""The participant-level workflow: one branch per run, grading joined across runs."""
from __future__ import annotations

from typing import Sequence

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.interfaces.grade import GradeRuns
from mmrqa_bids.interfaces.measure import MeasureRun
from mmrqa_bids.interfaces.mosaics import RenderMosaics
from mmrqa_bids.interfaces.write import WriteRun
from mmrqa_bids.settings import Settings


def init_run_wf(reports: bool, name: str = "run_wf", mriqc_dir: str | None = None) -> pe.Workflow:
    """Per-run branch: load + validate + metrics (+ MRIQC's IQMs from ``mriqc_dir``), then mosaics.

    inputnode.run (RunSpec dict) -> outputnode.out_record (run record JSON).
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["run"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["out_record"]), name="outputnode")
    measure = pe.Node(MeasureRun(**({"mriqc_dir": mriqc_dir} if mriqc_dir else {})),
                      name="measure")
    render = pe.Node(RenderMosaics(report_views=reports), name="mosaics")
    wf.connect([
        (inputnode, measure, [("run", "run")]),
        (measure, render, [("out_record", "in_record")]),
        (render, outputnode, [("out_record", "out_record")]),
    ])
    return wf


def init_participant_wf(runs: Sequence[RunSpec], settings: Settings,
                        name: str = "mmrqa_participant_wf") -> pe.Workflow:
    """All runs: a branch each (``init_run_wf``), one grading JoinNode (model loaded once,
    batched), then the derivatives of each run written by a MapNode.

    outputnode.out_json / outputnode.status: one entry per run.
    """
    ex = settings.execution
    wf = pe.Workflow(name=name, base_dir=str(ex.work_dir))
    inputnode = pe.Node(IdentityInterface(fields=["run"]), name="inputnode")
    inputnode.iterables = [("run", [r.to_dict() for r in runs])]
    run_wf = init_run_wf(reports=ex.reports,
                         mriqc_dir=str(ex.mriqc_dir) if ex.mriqc_dir else None)
    grade = pe.JoinNode(GradeRuns(grading=settings.to_dict()["grading"]), name="grade",
                        joinsource="inputnode", joinfield=["in_records"])
    write = pe.MapNode(WriteRun(output_dir=str(ex.output_dir), settings=settings.to_dict(),
                                reports=ex.reports),
                       iterfield=["in_record"], name="write")
    outputnode = pe.Node(IdentityInterface(fields=["out_json", "status"]), name="outputnode")
    wf.connect([
        (inputnode, run_wf, [("run", "inputnode.run")]),
        (run_wf, grade, [("outputnode.out_record", "in_records")]),
        (grade, write, [("out_records", "in_record")]),
        (write, outputnode, [("out_json", "out_json"), ("status", "status")]),
    ])
    return wf
