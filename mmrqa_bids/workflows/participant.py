"""The participant-level workflow: one node per run, grading joined across runs.

Granularity (benchmarks/scaling.py): Nipype's MultiProc scheduler looks for finished nodes
once per ``poll_sleep_duration``, so each node costs its worker up to one poll interval of
idleness, plus hashing and result pickling. A run is therefore one node (metrics and mosaics
share the reference volume and masks in memory), and the derivatives of all runs are written
by one node after the grading JoinNode.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.interfaces.grade import GradeRuns
from mmrqa_bids.interfaces.measure import MeasureRun
from mmrqa_bids.interfaces.write import WriteRuns
from mmrqa_bids.io import memory_limit_bytes
from mmrqa_bids.records import read_record
from mmrqa_bids.redaction import redact
from mmrqa_bids.settings import Settings


def init_run_wf(reports: bool, name: str = "run_wf", mriqc_dir: str | None = None,
                omp_nthreads: int = 1, inu_method: str = "polynomial",
                memory_limit: int = 0) -> pe.Workflow:
    """Per-run branch: load + validate + metrics (+ MRIQC's IQMs from ``mriqc_dir``) + mosaics.

    inputnode.run (RunSpec dict) -> outputnode.out_record (run record JSON).
    ``omp_nthreads`` is the node's ``n_procs``: MultiProc runs at most
    ``nprocs // omp_nthreads`` runs at once, each with that many BLAS/OpenMP threads.
    ``memory_limit`` (bytes, 0: none): an image whose header implies more is refused before
    any voxel is read (:func:`mmrqa_bids.io.check_header`).
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["run"]), name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=["out_record"]), name="outputnode")
    measure = pe.Node(MeasureRun(report_views=reports, inu_method=inu_method,
                                 memory_limit=memory_limit,
                                 **({"mriqc_dir": mriqc_dir} if mriqc_dir else {})),
                      name="measure", n_procs=omp_nthreads)
    wf.connect([
        (inputnode, measure, [("run", "run")]),
        (measure, outputnode, [("out_record", "out_record")]),
    ])
    return wf


def init_participant_wf(runs: Sequence[RunSpec], settings: Settings,
                        name: str = "mmrqa_participant_wf") -> pe.Workflow:
    """All runs: a branch each (``init_run_wf``), one grading JoinNode (model loaded once,
    batched), then one node writing the derivatives of every run (in the scheduler's process).

    outputnode.out_json / outputnode.status: one entry per run, in the order of ``runs``.
    """
    ex = settings.execution
    wf = pe.Workflow(name=name, base_dir=str(ex.work_dir))
    inputnode = pe.Node(IdentityInterface(fields=["run"]), name="inputnode")
    inputnode.iterables = [("run", [r.to_dict() for r in runs])]
    run_wf = init_run_wf(reports=ex.reports,
                         mriqc_dir=str(ex.mriqc_dir) if ex.mriqc_dir else None,
                         omp_nthreads=min(ex.omp_nthreads, max(ex.nprocs, 1)),
                         inu_method=ex.inu_method,
                         memory_limit=memory_limit_bytes(ex.mem_gb))
    grade = pe.JoinNode(GradeRuns(grading=settings.to_dict()["grading"]), name="grade",
                        joinsource="inputnode", joinfield=["in_records"])
    # Writing takes milliseconds per run: the scheduler's own process does it as soon as
    # grading is done, with no round trip to a worker (or a batch job on a cluster).
    # The settings recorded in every run's provenance pass through the redaction step.
    write = pe.Node(WriteRuns(output_dir=str(ex.output_dir), settings=redact(settings.to_dict()),
                              reports=ex.reports), name="write", run_without_submitting=True)
    outputnode = pe.Node(IdentityInterface(fields=["out_json", "status"]), name="outputnode")
    wf.connect([
        (inputnode, run_wf, [("run", "inputnode.run")]),
        (run_wf, grade, [("outputnode.out_record", "in_records")]),
        (grade, write, [("out_records", "in_records")]),
        (write, outputnode, [("out_json", "out_json"), ("status", "status")]),
    ])
    return wf


def measured_records(wf_dir: Path, names: Iterable[str]) -> list[str]:
    """Records of the measure nodes that finished in ``wf_dir`` (their Nipype result file
    exists), one per run named in ``names`` (the latest when a resumed work dir has several)."""
    wanted, latest = set(names), {}
    for result in Path(wf_dir).glob("run_wf/*/measure/result_measure.pklz"):
        record = result.with_name("record.json")
        try:
            name = read_record(record)["run"]["bids_name"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a node interrupted while writing: not finished
        if name in wanted and (name not in latest
                               or record.stat().st_mtime > latest[name].stat().st_mtime):
            latest[name] = record
    return [str(latest[n]) for n in sorted(latest)]


def graded_records(wf_dir: Path) -> list[str]:
    """The records the grading JoinNode wrote, when it finished in ``wf_dir``."""
    result = Path(wf_dir) / "grade" / "result_grade.pklz"
    if not result.is_file():
        return []
    from nipype.utils.filemanip import loadpkl
    try:
        outputs = loadpkl(result).outputs
    except Exception:  # noqa: BLE001 - an unreadable result: grade again
        return []
    return list(outputs.out_records or []) if outputs is not None else []


def finish_measured(records: Sequence[str], settings: Settings, cwd: Path,
                    graded: bool = False) -> dict[str, str]:
    """Grade (unless ``graded``) and write the runs of ``records`` in this process, outside
    Nipype's scheduler (after an interrupt stopped it). Returns ``{bids_name: status}``."""
    if not records:
        return {}
    ex = settings.execution
    if not graded:
        grade = GradeRuns(grading=settings.to_dict()["grading"], in_records=list(records))
        records = grade.run(cwd=str(_fresh(cwd / "grade"))).outputs.out_records
    write = WriteRuns(in_records=list(records), output_dir=str(ex.output_dir),
                      settings=redact(settings.to_dict()), reports=ex.reports)
    out = write.run(cwd=str(_fresh(cwd / "write"))).outputs
    return {Path(path).stem: status for path, status in zip(out.out_json, out.status)}


def _fresh(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
