"""``mmrqa BIDS_DIR OUTPUT_DIR {participant,group,train}``: parse, build Settings, dispatch."""
from __future__ import annotations

import gc
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

# Nipype's telemetry check would try the network at import time; there is none on clusters.
os.environ.setdefault("NIPYPE_NO_ET", "1")

from mmrqa_bids.bids import DatasetError, check_dataset  # noqa: E402
from mmrqa_bids.cli.console import configure as configure_console  # noqa: E402
from mmrqa_bids.cli.interrupts import (Interrupted, InterruptState,  # noqa: E402
                                       interrupt_on_signals)
from mmrqa_bids.cli.parser import build_parser  # noqa: E402
from mmrqa_bids.derivatives import DerivativesLayout  # noqa: E402
from mmrqa_bids.io import read_json_object  # noqa: E402
from mmrqa_bids.grading.base import GraderError  # noqa: E402
from mmrqa_bids.settings import Execution, Grading, Settings, Training  # noqa: E402

EXIT_OK, EXIT_RUNS_FAILED, EXIT_USAGE = 0, 1, 2
logger = logging.getLogger(__name__)
LOCAL_PLUGINS = ("Linear", "MultiProc", "LegacyMultiProc")
GRAPH_PLUGINS = ("SLURMGraph", "SGEGraph", "PBSGraph", "DAGMan")


def default_work_dir(output_dir: Path) -> Path:
    """The work directory shared by every run into one output folder, under the system temp
    dir (writable in containers): ``--resume`` and the train level's caches use it."""
    import hashlib
    key = hashlib.sha1(str(output_dir.resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"mmrqa_work_{key}"


def private_work_dir(output_dir: Path) -> Path:
    """A work directory of this invocation only (``<shared name>_<pid>_<ns>``): concurrent
    participant runs into one output folder never touch each other's, and it is removed at
    the end (kept for graph plugins, whose jobs run later)."""
    shared = default_work_dir(output_dir)
    return shared.with_name(f"{shared.name}_{os.getpid()}_{time.time_ns()}")


def uses_private_work_dir(args) -> bool:
    """Participant level without ``--work-dir`` or ``--resume`` (which name a shared one)."""
    return args.analysis_level == "participant" and not args.work_dir and not args.resume


def local_folder(model: str | None) -> str | None:
    """``--model`` as an absolute path when it names a local folder (the runs' provenance
    records it, and the group level reads the folder's cohort models from there whatever its
    working directory); a hub id or a missing path unchanged."""
    return str(Path(model).resolve()) if model and Path(model).is_dir() else model


def build_settings(args) -> Settings:
    output_dir = args.output_dir.resolve()
    plugin = args.plugin or ("MultiProc" if args.nprocs > 1 else "Linear")
    # One --batch-size for two settings; when it is not given each keeps its own default.
    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    execution = Execution(
        bids_dir=args.bids_dir.resolve(),
        output_dir=output_dir,
        analysis_level=args.analysis_level,
        work_dir=(args.work_dir or (private_work_dir(output_dir) if uses_private_work_dir(args)
                                    else default_work_dir(output_dir))).resolve(),
        participant_label=tuple(args.participant_label),
        session_id=tuple(args.session_id),
        run_id=tuple(args.run_id),
        task_id=tuple(args.task_id),
        modalities=tuple(args.modalities),
        bids_filters=read_json_object(args.bids_filter_file, "BIDS filter file", DatasetError)
        if args.bids_filter_file else {},
        nprocs=args.nprocs,
        omp_nthreads=args.omp_nthreads,
        mem_gb=args.mem_gb,
        plugin=plugin,
        plugin_args=read_json_object(args.plugin_args, "plugin arguments", DatasetError)
        if args.plugin_args else {},
        mriqc_dir=args.mriqc_dir.resolve() if args.mriqc_dir else None,
        inu_method=args.inu_method,
        reports=not args.no_reports,
        resume=args.resume,
        verbose=args.verbose,
    )
    grading = Grading(grader=args.grader, model=local_folder(args.model), adapter=args.adapter,
                      llm_base_url=args.llm_base_url, llm_model=args.llm_model,
                      **batch, device=args.device, dtype=args.dtype,
                      max_new_tokens=args.max_new_tokens, cohort_by=args.cohort_by,
                      reference=args.reference.resolve() if args.reference else None)
    training = Training(labels=args.labels, simulate=args.simulate,
                        holdout_fraction=args.holdout_fraction, qa_source=args.qa_source,
                        qa_fraction=args.qa_fraction, lora_r=args.lora_r,
                        lora_alpha=args.lora_alpha, learning_rate=args.learning_rate,
                        epochs=args.epochs, **batch, base_model=args.base_model,
                        output_model=args.output_model, seed=args.seed,
                        lora_targets=args.lora_targets, lora_dropout=args.lora_dropout,
                        lr_scheduler=args.lr_scheduler)
    return Settings(execution=execution, grading=grading, training=training)


def prepare_output_dir(output_dir: Path) -> None:
    try:
        DerivativesLayout(output_dir).logs.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".mmrqa-write-test"):
            pass
    except OSError as exc:
        raise DatasetError(f"{output_dir}: output directory is not writable "
                           f"({exc.strerror or exc})") from exc


def save_settings(settings: Settings) -> Path:
    """``logs/settings_<level>_<UTC stamp, microseconds>_<pid>.toml``, redacted: concurrent
    invocations never share a name, and no secret reaches the file."""
    import tomli_w

    from mmrqa_bids.io import atomic_write_text
    from mmrqa_bids.redaction import redact
    stamp = f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S.%f')}_{os.getpid()}"
    ex = settings.execution
    path = DerivativesLayout(ex.output_dir).settings_file(ex.analysis_level, stamp)
    return atomic_write_text(path, tomli_w.dumps(redact(settings.to_dict())))


def run_participant(settings: Settings, interrupts: InterruptState | None = None) -> int:
    from mmrqa_bids.bids import collect_runs
    from mmrqa_bids.grading import check_grader
    from mmrqa_bids.derivatives import write_dataset_description
    from mmrqa_bids.io import folder_lock
    from mmrqa_bids.workflows.participant import init_participant_wf

    ex = settings.execution
    layout = DerivativesLayout(ex.output_dir)
    t0 = time.perf_counter()
    check_grader(settings.grading)
    runs = collect_runs(ex.bids_dir, ex.output_dir, modalities=ex.modalities,
                        participant_label=ex.participant_label, session_id=ex.session_id,
                        run_id=ex.run_id, task_id=ex.task_id, bids_filters=ex.bids_filters)
    logger.info(f"{len(runs)} run(s) to assess ({time.perf_counter() - t0:.1f} s to index); "
                f"grader: {settings.grading.grader}")
    matched, cohort_models = None, None
    if settings.grading.reference:  # match every run to a stored cohort before measuring any
        from mmrqa_bids.reference_grades import (load_stored_references, match_runs,
                                                 reference_cohort_models)
        if ex.plugin in GRAPH_PLUGINS:  # they return before any run is written
            raise DatasetError(f"--reference needs a plugin that waits for the runs, not "
                               f"{ex.plugin}; use SLURM/SGE/PBS (or grade with the group level)")
        matched = match_runs(runs, load_stored_references(settings.grading.reference), ex.bids_dir)
        cohort_models = reference_cohort_models(settings.grading)
        cohort_models.log(logger)
    with folder_lock(layout.logs):  # concurrent runs into one folder: one writer at a time
        write_dataset_description(layout, ex.bids_dir)
    wf = init_participant_wf(runs, settings)
    with folder_lock(ex.work_dir, ".mmrqa-work.lock", on_wait=_waiting):
        code = _run_workflow(wf, runs, settings, layout, t0, interrupts or InterruptState())
    if matched is not None and code in (EXIT_OK, EXIT_RUNS_FAILED):
        from mmrqa_bids.reference_grades import apply_references
        n = apply_references(layout, runs, matched, ex.reports, cohort_models)
        logger.info(f"{n} run(s) graded against the stored cohort references")
    elif code in (EXIT_OK, EXIT_RUNS_FAILED) and selects_whole_dataset(settings):
        _join_grades(settings)
    return code


def selects_whole_dataset(settings: Settings) -> bool:
    """A participant invocation that measured every run of the dataset (of its modalities:
    cohorts never mix suffixes) and waited for them: no participant, session, run, task or
    BIDS-filter selection, no graph plugin (it returns before any run is written)."""
    ex = settings.execution
    return not (ex.participant_label or ex.session_id or ex.run_id or ex.task_id
                or ex.bids_filters) and ex.plugin not in GRAPH_PLUGINS


def _group_model_dir(settings: Settings) -> Path | None:
    """The folder of cohort models the group level (and the join step) reads: only the
    metric classifier's ``--model`` is one."""
    from mmrqa_bids.cohorts.dataset import classifier_model_folder
    folder = classifier_model_folder(settings.grading.grader, settings.grading.model)
    return Path(folder) if folder else None


def _join_grades(settings: Settings) -> None:
    """The join step of a whole-dataset participant invocation: every run graded against its
    cohort exactly as the group level does (run JSONs and individual reports; no group TSV
    or report). A cohort error leaves the absolute grades, with one warning line; an
    interrupt (:class:`Interrupted`) is raised on after one line saying what the runs hold."""
    from mmrqa_bids.group import join_grades
    from mmrqa_bids.cohorts.basis import BASIS_DATASET

    ex = settings.execution
    try:
        docs = join_grades(ex.output_dir, ex.modalities, reports=ex.reports,
                           cohort_by=settings.grading.cohort_by,
                           bids_dir=ex.bids_dir if ex.bids_dir.is_dir() else None,
                           model_dir=_group_model_dir(settings))
    except Interrupted as exc:
        logger.info(_interrupted_grading("join step", exc))
        raise
    except DatasetError as exc:
        logger.warning(f"WARNING join step: no dataset grades ({exc}); the runs keep the absolute "
                       "model's grade until the group level runs")
        return
    grades = [d.get("grade") or {} for d in docs]
    n = sum(1 for g in grades if g.get("basis") == BASIS_DATASET)
    # the "done" line above counted the absolute grades: say what the runs carry now, alike
    labels = Counter(g["label"] for g in grades if g.get("label"))
    tally = ", ".join(f"{k}: {v}" for k, v in sorted(labels.items()))
    logger.info(f"join step: {n} of {len(docs)} run(s) graded against their cohort in this "
                f"dataset (dataset grades); grades now {tally}; the group level regrades every "
                "run with the dataset's runs at that time")


def _waiting(lock: Path) -> None:
    logger.info(f"the work directory {lock.parent} is in use by another mmrqa run "
                "(shared by --work-dir or --resume); waiting for it to finish")


def _run_workflow(wf, runs, settings: Settings, layout: DerivativesLayout, t0: float,
                  interrupts: InterruptState) -> int:
    """Run the participant workflow in its (claimed) work directory, then account for
    every run: its status, a failure record for a run lost to a crash, the summary."""
    from mmrqa_bids.workflows.participant import (finish_measured, graded_records,
                                                  measured_records)

    ex = settings.execution
    wf_dir = Path(ex.work_dir) / wf.name
    if not ex.resume and wf_dir.exists():
        shutil.rmtree(wf_dir)
    plugin_args = dict(ex.plugin_args)
    # Nipype reads the poll interval from the workflow config only, never from plugin_args.
    # MultiProc notices a finished node only at its next poll, so each node leaves its
    # worker idle for half the interval on average (benchmarks/scaling.py); a poll costs the
    # main process under a millisecond of CPU. Cluster plugins poll with one squeue/qstat
    # call per queued job: poll less often there.
    poll = plugin_args.pop("poll_sleep_duration", 0.05 if ex.plugin in LOCAL_PLUGINS else 5.0)
    wf.config["execution"] = {
        "crashdump_dir": str(layout.logs),
        "crashfile_format": "txt",
        "stop_on_first_crash": "false",
        "parameterize_dirs": "false",
        "hash_method": "content",
        "remove_unnecessary_outputs": "false",
        "poll_sleep_duration": float(poll),
    }
    wf.config["logging"] = _nipype_logging(ex.verbose)
    if ex.plugin in ("MultiProc", "LegacyMultiProc"):
        plugin_args.setdefault("n_procs", ex.nprocs)
        if ex.plugin == "MultiProc" and sys.platform == "linux":
            # Workers forked from this process start at once with every module imported;
            # forkserver (Python 3.14's default) re-imports them in each worker first.
            plugin_args.setdefault("mp_context", "fork")
        if ex.mem_gb:
            plugin_args.setdefault("memory_gb", ex.mem_gb)
    # Worker processes (forked, or started by a scheduler) get the same thread count, so
    # every plugin computes the same floating-point reductions.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ex.omp_nthreads)
    crashed, interrupted, graph = None, None, None
    started = time.time()
    try:
        from threadpoolctl import threadpool_limits
        # MultiProc collects garbage before every submission round; frozen start-up objects
        # make that cheap. BLAS/OpenMP threads per process follow --omp-nthreads.
        gc.freeze()
        # A signal stops the scheduler at the next node boundary (cli/interrupts.py).
        plugin_args["status_callback"] = interrupts.status_callback(
            plugin_args.get("status_callback"))
        with threadpool_limits(limits=ex.omp_nthreads), interrupts.deferred():
            graph = wf.run(plugin=ex.plugin, plugin_args=plugin_args)
    except RuntimeError as exc:  # Nipype raises after running every branch it could
        crashed = " ".join(str(exc).split())[:500]
    except Interrupted as exc:  # SIGINT/SIGTERM: nothing new is scheduled
        interrupted = exc
    if ex.plugin in GRAPH_PLUGINS and not crashed and not interrupted:
        # Graph plugins hand the whole graph to the scheduler and return at once.
        logger.info(f"{len(runs)} run(s) submitted to the scheduler with {ex.plugin} in "
                    f"{time.perf_counter() - t0:.1f} s; outputs appear in {ex.output_dir} as the "
                    "jobs finish; run the group level once they are done")
        return EXIT_OK
    statuses = _statuses(graph, wf_dir)
    if interrupted:
        logger.info(f"interrupted ({interrupted}): no new run is started; writing the runs "
                    "already measured (interrupt again to abandon them)")
        try:
            graded = graded_records(wf_dir)
            todo = graded or measured_records(wf_dir, [r.bids_name for r in runs
                                                       if r.bids_name not in statuses])
            statuses.update(finish_measured(todo, settings, wf_dir / "_after_interrupt",
                                            graded=bool(graded)))
        except Interrupted:
            logger.info("interrupted again: the measured runs are not written")
    else:
        statuses.update(_record_lost_runs(runs, statuses, settings, layout, crashed))
    _redact_crash_files(layout.logs, started)
    elapsed = time.perf_counter() - t0
    counts = Counter(statuses.values())
    failed = counts.pop("failed", 0) + counts.pop("unparsed", 0)
    missing = len(runs) - len(statuses)
    head = f"interrupted after {elapsed:.1f} s" if interrupted else f"done in {elapsed:.1f} s"
    logger.info(f"{head}: {len(statuses)} run(s) processed, {failed} failed"
                + (f", {missing} not processed" if missing else "") + "; "
                + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if interrupted:
        return interrupted.exit_code
    if crashed:
        logger.error(f"ERROR: some workflow steps crashed; see crash files in "
                     f"{layout.logs} ({crashed})")
        return EXIT_RUNS_FAILED
    if ex.reports:
        logger.info(f"individual reports: {layout.run_report('sub-*')}")
    return EXIT_RUNS_FAILED if failed or missing else EXIT_OK


def _statuses(graph, wf_dir: Path) -> dict[str, str]:
    """``{bids_name: status}`` of the runs the write node wrote: from the executed graph,
    or from the node's result file when Nipype raised (the write node may have run)."""
    outputs = None
    if graph is not None:
        outputs = next((n.result.outputs for n in graph.nodes()
                        if n.name == "write" and n.result is not None), None)
    elif (wf_dir / "write" / "result_write.pklz").is_file():
        from nipype.utils.filemanip import loadpkl
        try:
            outputs = loadpkl(wf_dir / "write" / "result_write.pklz").outputs
        except Exception:  # noqa: BLE001 - an unreadable result: the runs count as lost
            outputs = None
    if outputs is None or not outputs.out_json:
        return {}
    status = outputs.status if isinstance(outputs.status, list) else [outputs.status]
    paths = outputs.out_json if isinstance(outputs.out_json, list) else [outputs.out_json]
    return {Path(p).stem: s for p, s in zip(paths, status)}


def _record_lost_runs(runs, statuses: dict[str, str], settings: Settings,
                      layout: DerivativesLayout, crashed: str | None) -> dict[str, str]:
    """A failure record for each run a workflow crash left without any output, so every
    run of the invocation ends graded or failed."""
    from mmrqa_bids.derivatives import write_run
    from mmrqa_bids.redaction import redact

    lost = {}
    for run in runs:
        if run.bids_name in statuses:
            continue
        record = {"run": run.to_dict(), "stage": "workflow",
                  "error": f"a workflow step crashed before this run was written; see the "
                           f"crash files in {layout.logs} ({crashed or 'no status returned'})"}
        try:
            write_run(record, layout, redact(settings.to_dict()), settings.execution.reports)
        except Exception as exc:  # noqa: BLE001 - still counted as failed below
            logger.error(f"ERROR {run.bids_name}: cannot write its failure record ({exc})")
        lost[run.bids_name] = "failed"
    return lost


def _redact_crash_files(logs: Path, since: float) -> None:
    """Nipype's crash files quote node inputs (the grader's URL among them): rewrite those
    of this invocation through the redaction step."""
    from mmrqa_bids.io import atomic_write_text
    from mmrqa_bids.redaction import redact_text

    for path in logs.glob("crash-*.txt"):
        try:
            if path.stat().st_mtime >= since - 1:
                text = path.read_text(errors="replace")
                clean = redact_text(text)
                if clean != text:
                    atomic_write_text(path, clean)
        except OSError:
            continue


def _interrupted_grading(step: str, exc: Interrupted) -> str:
    """The line of a dataset grading (group level, join step) stopped by a signal."""
    return (f"{step} interrupted ({exc}): no run JSON is half-written (each holds the grade it "
            "had or its new dataset grade); run the group level to grade every run against "
            "its cohort")


def run_group(settings: Settings) -> int:
    from mmrqa_bids.group import group_level
    ex = settings.execution
    try:
        written, unreadable = group_level(ex.output_dir, ex.modalities, reports=ex.reports,
                                          cohort_by=settings.grading.cohort_by,
                                          bids_dir=ex.bids_dir if ex.bids_dir.is_dir() else None,
                                          model_dir=_group_model_dir(settings))
    except Interrupted as exc:
        logger.info(_interrupted_grading("group level", exc))
        raise
    for key, path in sorted(written.items()):
        logger.info(f"group {key.split('.')[-1].upper()}: {path}")
    # the rows the group level tabulated with status "unreadable"; the exit code says so too
    for row in unreadable:
        logger.error(f"ERROR unreadable: {row['error']}")
    return EXIT_RUNS_FAILED if unreadable else EXIT_OK


def run_train(settings: Settings) -> int:
    from mmrqa_bids.train.level import run_train as _run_train
    return _run_train(settings)


def main(argv: Sequence[str] | None = None) -> int:
    from mmrqa_bids.io import clean_orphan_temp_files
    from mmrqa_bids.redaction import check_url_credentials, redact_text

    parser = build_parser()
    args = parser.parse_args(argv)
    configure_console("mmrqa", args.verbose - args.quiet)
    settings = None
    try:
        with interrupt_on_signals() as interrupts:
            # Refused before anything is written (the settings log would hold the secret).
            try:
                check_url_credentials(args.llm_base_url, "--llm-base-url")
            except ValueError as exc:
                raise DatasetError(str(exc)) from None
            settings = build_settings(args)
            ex = settings.execution
            if ex.analysis_level != "group":
                check_dataset(ex.bids_dir, ex.output_dir)
            elif ex.output_dir.resolve() == ex.bids_dir.resolve():
                raise DatasetError(f"{ex.output_dir}: OUTPUT_DIR is the BIDS directory; "
                                   "refusing to write into raw data")
            if ex.mriqc_dir and not ex.mriqc_dir.is_dir():
                raise DatasetError(f"{ex.mriqc_dir}: --mriqc-dir is not a directory")
            prepare_output_dir(ex.output_dir)
            orphans = clean_orphan_temp_files(ex.output_dir)
            if orphans:
                logger.info(f"removed {len(orphans)} temporary file(s) left by an "
                            f"interrupted earlier run in {ex.output_dir}")
            _configure_logging(ex.verbose)
            _redact_logs()
            save_settings(settings)
            if ex.analysis_level == "participant":
                return run_participant(settings, interrupts)
            return {"group": run_group, "train": run_train}[ex.analysis_level](settings)
    except (DatasetError, GraderError) as exc:
        print(f"mmrqa: error: {redact_text(str(exc))}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except Interrupted as exc:
        print(f"mmrqa: interrupted ({exc})", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mmrqa: interrupted", file=sys.stderr)
        return 130
    finally:
        if settings is not None and uses_private_work_dir(args) \
                and settings.execution.plugin not in GRAPH_PLUGINS:
            _remove_private_work_dir(settings.execution.work_dir)


def _remove_private_work_dir(path: Path) -> None:
    """Removed now, and again at exit: after an interrupt, MultiProc workers may still be
    finishing a node in it until the interpreter joins them (which happens before the
    ``atexit`` handlers run)."""
    import atexit

    shutil.rmtree(path, ignore_errors=True)
    atexit.register(shutil.rmtree, path, True)


def _nipype_logging(verbose: int) -> dict[str, str]:
    level = "WARNING" if verbose == 0 else ("INFO" if verbose == 1 else "DEBUG")
    return {"workflow_level": level, "interface_level": level, "utils_level": level}


def _redact_logs() -> None:
    """Every log line through the redaction step (mmrqa_bids.redaction): the root logger's
    handlers, mmrqa's console (mmrqa_bids.cli.console) and Nipype's own."""
    import logging

    from mmrqa_bids.redaction import install_log_redaction
    for name in ("", "mmrqa_bids", "nipype.workflow", "nipype.interface", "nipype.utils"):
        install_log_redaction(logging.getLogger(name))


def _configure_logging(verbose: int) -> None:
    """Nipype's own loggers: quiet unless -v (mmrqa's progress lines are its own logger's)."""
    from nipype import config, logging
    config.update_config({"logging": _nipype_logging(verbose)})
    logging.update_logging(config)


if __name__ == "__main__":
    sys.exit(main())
