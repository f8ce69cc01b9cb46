"""Participant-level wall time, Linear vs MultiProc: the speedup, where the time goes, and
the overhead Nipype adds per run.

    python benchmarks/scaling.py [--runs 8] [--nprocs 2] [--voxel-size 1] [--repeats 3]
                                 [--poll 0.2 ...] [--mp-context forkserver ...] [--no-ceiling]

For each configuration the real CLI runs on the same generated dataset (T1w runs of the
demo head, a third of them with simulated motion), with a fresh work directory, the
configurations interleaved so that each sees the same machine load; the figures are the
median over ``--repeats`` (the whole run with the median workflow time).

Every command runs through a tracing wrapper that only times calls (it changes nothing
else): ``Node.run`` in whichever process runs the node (wall and CPU time), the plugin's
``run`` and ``Workflow.run`` in the main process. Phases of one command:

- start-up: interpreter start, imports, argument parsing, dataset check (until the
  participant level starts);
- imports: the participant level's own imports (Nipype, the workflow, metrics, reports);
- grader check, index: the grader's validation, pybids indexing;
- build: dataset_description.json, building the workflow;
- expand: ``Workflow.run`` until the plugin starts (graph flattening and expansion);
- execute: the plugin's ``run`` (every node, scheduling, waiting);
- workflow: from the end of indexing to the end of the participant level (build + expand +
  execute + collecting the statuses): the CLI's ``done in`` minus its ``to index``;
- per node kind: wall and CPU seconds summed over the nodes (``measure`` = one run each);
- worker idle (MultiProc): workers x execute - node wall sum: the time a worker had no
  node, i.e. the scheduler's polling latency, dispatch, and the serial grading/writing tail;
- tail: from the end of the last run node to the end of execute (grading, writing, polls);
- Nipype overhead per run (Linear, where nodes run one at a time):
  ``(workflow - sum of the interfaces' run time) / runs``: building and expanding the graph,
  hashing, pickling, node directories; everything around the computations themselves.

The ceiling (unless ``--no-ceiling``): the run nodes' own work (``MeasureRun``, i.e. load,
metrics, mosaics, record) for every run, without Nipype, first in one process, then spread
over ``--nprocs`` forked processes with a perfect greedy scheduler (a process pool, one run
per task). Its ratio is the best speedup this computation can get on this machine with this
many processes (memory bandwidth, shared caches, SMT siblings and other users' load all show
up in it); MultiProc's execute speedup divided by it is the workflow's parallel efficiency.

The machine's load matters: 'others' is the CPU (in cores) that processes other than the
benchmarked command used while it ran (from /proc/stat), and with the kernel's autogroup
scheduling a busy machine gives a session the same share whatever its number of processes.
Targets (issue 9): MultiProc speedup >= 1.6x with 2 processes on 2 cores (judged on a quiet
machine); Nipype overhead < 0.5 s per run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset  # noqa: E402

# Written to the trace folder and imported by every traced command (PYTHONPATH): times
# Node.run in whichever process runs the node (MultiProc's forked workers inherit the patch;
# with forkserver, the server preloads this module), the plugin's run, Workflow.run and the
# participant level, one JSON line per call in MMRQA_TRACE_DIR/<pid>.jsonl.
# Instrumentation only: the CLI itself is unchanged.
TRACER = """
import json, multiprocessing, os, sys, time
T_START = time.time()
TRACE_DIR = os.environ["MMRQA_TRACE_DIR"]

def emit(**rec):
    with open(os.path.join(TRACE_DIR, f"{os.getpid()}.jsonl"), "a") as fh:
        fh.write(json.dumps(rec) + "\\n")

def timed(kind, name_of, fn):
    def wrapper(self, *args, **kwargs):
        t0, c0 = time.time(), time.process_time()
        try:
            return fn(self, *args, **kwargs)
        finally:
            c1 = time.process_time()
            emit(kind=kind, name=name_of(self), pid=os.getpid(), t0=t0, t1=time.time(),
                 cpu=c1 - c0, c1=c1)
    return wrapper

from nipype.pipeline import engine as pe
from nipype.pipeline.engine import nodes
from nipype.pipeline.plugins.base import DistributedPluginBase
from nipype.pipeline.plugins.linear import LinearPlugin
from nipype.interfaces.base.core import BaseInterface
nodes.Node.run = timed("node", lambda n: n.fullname, nodes.Node.run)
BaseInterface.run = timed("interface", lambda i: type(i).__name__, BaseInterface.run)
pe.Workflow.run = timed("workflow", lambda w: w.name, pe.Workflow.run)
for cls in (DistributedPluginBase, LinearPlugin):
    cls.run = timed("plugin", lambda p: type(p).__name__, cls.run)

def main():
    multiprocessing.get_context("forkserver").set_forkserver_preload([__name__])
    import mmrqa_bids.bids as bids
    import mmrqa_bids.cli.run as cli
    import mmrqa_bids.grading as grading
    # Looked up by the participant level when it runs: the patched functions are used.
    bids.collect_runs = timed("index", lambda _: "", bids.collect_runs)
    grading.check_grader = timed("grader check", lambda _: "", grading.check_grader)
    participant = cli.run_participant
    def run_participant(settings):
        t0, c0 = time.time(), time.process_time()
        try:
            return participant(settings)
        finally:
            c1 = time.process_time()
            emit(kind="participant", name="", pid=os.getpid(), t0=t0, t1=time.time(),
                 cpu=c1 - c0, c1=c1)
    cli.run_participant = run_participant
    rc = cli.main(sys.argv[1:])
    emit(kind="process", name="", pid=os.getpid(), t0=T_START, t1=time.time(),
         cpu=time.process_time())
    sys.exit(rc)
"""
DONE = re.compile(r"done in ([0-9.]+) s")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Measure:
    """One command: phase wall times (s), CPU times (s), and the machine's load."""

    label: str
    workers: int
    wall: float
    cpu: float
    others: float  # cores used by other processes of the machine during the command
    load: tuple[float, float]  # 1-minute load average before, after
    phases: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, tuple[int, float, float]] = field(default_factory=dict)  # n, wall, cpu
    run_cpus: list[float] = field(default_factory=list)  # CPU seconds of each run node

    @property
    def node_wall(self) -> float:
        return sum(w for _, w, _ in self.kinds.values())

    @property
    def node_cpu(self) -> float:
        return sum(c for _, _, c in self.kinds.values())


def plans(n_runs: int) -> list[RunPlan]:
    return [RunPlan(f"{i + 1:02d}", "T1w", artifact="motion" if i % 3 == 2 else None,
                    severity=0.6) for i in range(n_runs)]


def _busy_ticks() -> int:
    """Non-idle CPU ticks of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as fh:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, fh.readline().split()[1:9])
    return user + nice + system + irq + softirq + steal


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _node_kind(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


def phases_from_trace(trace_dir: Path, measure: Measure) -> None:
    records = [json.loads(line) for path in trace_dir.glob("*.jsonl")
               for line in path.read_text().splitlines()]

    def one(kind: str) -> dict:
        found = [r for r in records if r["kind"] == kind]
        if len(found) != 1:
            raise SystemExit(f"trace: expected one {kind!r} record, found {len(found)}")
        return found[0]

    proc, part = one("process"), one("participant")
    index, check = one("index"), one("grader check")
    wf, plugin = one("workflow"), one("plugin")
    nodes = [r for r in records if r["kind"] == "node"]
    interfaces = [r for r in records if r["kind"] == "interface"
                  and r["name"] != "IdentityInterface"]
    for r in nodes:
        n, w, c = measure.kinds.get(_node_kind(r["name"]), (0, 0.0, 0.0))
        measure.kinds[_node_kind(r["name"])] = (n + 1, w + r["t1"] - r["t0"], c + r["cpu"])
    measure_ends = [r["t1"] for r in nodes if _node_kind(r["name"]) == "measure"]
    measure.run_cpus = [r["cpu"] for r in nodes if _node_kind(r["name"]) == "measure"]
    execute = plugin["t1"] - plugin["t0"]
    measure.phases.update({
        # Interpreter start before the tracer's first line and teardown after its last one
        # are not separable: both are counted in start-up.
        "start-up": part["t0"] - proc["t0"] + (measure.wall - (proc["t1"] - proc["t0"])),
        "imports": check["t0"] - part["t0"],
        "grader check": check["t1"] - check["t0"],
        "index": index["t1"] - index["t0"],
        "build": wf["t0"] - index["t1"],
        "expand": plugin["t0"] - wf["t0"],
        "execute": execute,
        "workflow": part["t1"] - index["t1"],
        "exit": proc["t1"] - part["t1"],
        "first node starts": min(r["t0"] for r in nodes) - plugin["t0"],
        "tail": plugin["t1"] - max(measure_ends) if measure_ends else 0.0,
        "worker idle": measure.workers * execute - sum(r["t1"] - r["t0"] for r in nodes),
        "main CPU in execute": plugin["cpu"],
        "interface wall": sum(r["t1"] - r["t0"] for r in interfaces),
        # CPU of the main process from the end of indexing to the end of the participant
        # level: with Linear, every node's CPU as well (the workflow's CPU cost).
        "workflow CPU (main)": part["c1"] - index["c1"],
    })


def run_once(label: str, workers: int, bids: Path, scratch: Path, args: list[str],
             repo: Path = REPO) -> Measure:
    tag = re.sub(r"[^A-Za-z0-9]+", "_", label)
    out, work, trace = (scratch / f"out_{tag}", scratch / f"work_{tag}",
                        Path(tempfile.mkdtemp(prefix=f"trace_{tag}_", dir=scratch)))
    (trace / "_mmrqa_trace.py").write_text(TRACER)
    env = dict(os.environ, MMRQA_TRACE_DIR=str(trace), PYTHONPATH=os.pathsep.join(
        p for p in (str(trace), str(repo), os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-c", "import _mmrqa_trace; _mmrqa_trace.main()", str(bids),
           str(out), "participant", "-w", str(work), *args]
    load0, cpu0, busy0 = os.getloadavg()[0], _children_cpu(), _busy_ticks()
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    cpu, busy = _children_cpu() - cpu0, (_busy_ticks() - busy0) / CLK_TCK
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    if not DONE.search(proc.stdout):
        raise SystemExit(f"unexpected CLI output (no 'done in'):\n{proc.stdout}")
    measure = Measure(label, workers, wall, cpu, max(busy - cpu, 0.0) / wall,
                      (load0, os.getloadavg()[0]))
    phases_from_trace(trace, measure)
    return measure


def _measure_one(path: str) -> tuple[float, float]:
    """The run node's own work, as MeasureRun does it, in a scratch folder (wall, CPU)."""
    from mmrqa_bids.bids import RunSpec
    from mmrqa_bids.interfaces.measure import MeasureRun

    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="mmrqa_ceiling_") as cwd, \
            contextlib.redirect_stdout(io.StringIO()):
        run = RunSpec(Path(path), "T1w", "anat", {"subject": Path(path).name[4:6]})
        MeasureRun(run=run.to_dict()).run(cwd=cwd)
    return time.perf_counter() - t0, time.process_time() - c0


def ceiling(paths: list[str], nprocs: int) -> dict[str, float]:
    """Every run's MeasureRun without Nipype: one process, then ``nprocs`` forked ones."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # as the CLI's default --omp-nthreads 1
        _measure_one(paths[0])  # warm imports and caches, not timed
        load0, busy0, c0 = os.getloadavg()[0], _busy_ticks(), time.process_time()
        t0 = time.perf_counter()
        serial = [_measure_one(p) for p in paths]
        serial_wall = time.perf_counter() - t0
        serial_cpu = time.process_time() - c0
        serial_others = ((_busy_ticks() - busy0) / CLK_TCK - serial_cpu) / serial_wall
        busy0, cc0 = _busy_ticks(), _children_cpu()
        t0 = time.perf_counter()
        with mp.get_context("fork").Pool(nprocs) as pool:
            parallel = pool.map(_measure_one, paths, chunksize=1)
        parallel_wall = time.perf_counter() - t0
    parallel_cpu = _children_cpu() - cc0
    return {"serial": serial_wall, "parallel": parallel_wall,
            "serial_cpu": serial_cpu, "parallel_cpu": parallel_cpu,
            "per_run_serial": statistics.mean(w for w, _ in serial),
            "per_run_parallel": statistics.mean(w for w, _ in parallel),
            "others_serial": max(serial_others, 0.0),
            "others_parallel": max(((_busy_ticks() - busy0) / CLK_TCK - parallel_cpu)
                                   / parallel_wall, 0.0),
            "load": load0}


def idle_model(linear: Measure, nprocs: int, poll: float, inflation: float = 1.0) -> float:
    """Predicted MultiProc speedup on an idle machine, from the Linear run's CPU times.

    Linear on an idle core takes its workflow CPU time ``L``. MultiProc: the main process's
    serial part ``S = L - sum(node CPU)`` (build, expansion; an overestimate: Linear's main
    process also ran the scheduler's loop), then the run nodes, each ``cpu x inflation`` plus
    half a poll interval (the scheduler notices a finished node at its next poll), placed
    greedily longest first on ``nprocs`` workers (LPT), then grading and writing, each after
    half a poll, and half a poll to notice the end. Speedup = ``L / (S + makespan + tail)``.
    A model, not a measurement: ``inflation`` is how much slower a node runs next to another
    one (memory bandwidth, caches, SMT), 1.0 for none.
    """
    total = linear.phases["workflow CPU (main)"]
    serial = max(total - linear.node_cpu, 0.0)
    loads = [0.0] * nprocs
    for cpu in sorted(linear.run_cpus, reverse=True):
        loads[loads.index(min(loads))] += cpu * inflation + poll / 2
    tail = sum(c for k, (_, _, c) in linear.kinds.items() if k != "measure") + 1.5 * poll
    return total / (serial + max(loads) + tail)


def wait_for_idle(max_wait: float, busy_below: float = 0.25) -> float:
    """Wait (at most ``max_wait`` s) until the machine's busy cores over one second fall
    below ``busy_below``; returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait:
        busy0 = _busy_ticks()
        time.sleep(1.0)
        if (_busy_ticks() - busy0) / CLK_TCK < busy_below:
            break
    return time.perf_counter() - start


def median_run(runs: list[Measure]) -> Measure:
    """The command with the median workflow time (robust to a noisy neighbour)."""
    return sorted(runs, key=lambda m: m.phases["workflow"])[(len(runs) - 1) // 2]


def _table(measures: list[Measure], runs: int) -> None:
    width = max(14, *(len(m.label) + 2 for m in measures))
    print(f"{'seconds':<28}" + "".join(f"{m.label:>{width}}" for m in measures))

    def row(name: str, values: list[str]) -> None:
        print(f"{name:<28}" + "".join(f"{v:>{width}}" for v in values))

    row("whole command (wall)", [f"{m.wall:.2f}" for m in measures])
    for phase in ("start-up", "imports", "grader check", "index", "build", "expand",
                  "execute", "workflow", "exit"):
        row(f"  {phase}", [f"{m.phases[phase]:.2f}" for m in measures])
    kinds = sorted({k for m in measures for k in m.kinds},
                   key=lambda k: (k != "measure", k))
    for kind in kinds:
        row(f"  node {kind} wall / CPU",
            [f"{m.kinds[kind][1]:.2f} / {m.kinds[kind][2]:.2f}" if kind in m.kinds else "-"
             for m in measures])
    row("  run node per run wall/CPU",
        [f"{m.kinds['measure'][1] / runs:.2f} / {m.kinds['measure'][2] / runs:.2f}"
         for m in measures])
    row("  first node starts after", [f"{m.phases['first node starts']:.2f}" for m in measures])
    row("  tail after last run node", [f"{m.phases['tail']:.2f}" for m in measures])
    row("  worker idle (all workers)", [f"{m.phases['worker idle']:.2f}" for m in measures])
    row("  main-process CPU, execute", [f"{m.phases['main CPU in execute']:.2f}"
                                        for m in measures])
    row("CPU, command + workers", [f"{m.cpu:.2f}" for m in measures])
    row("cores got (CPU / wall)", [f"{m.cpu / m.wall:.2f}" for m in measures])
    row("others' cores meanwhile", [f"{m.others:.2f}" for m in measures])
    row("load average before/after", [f"{m.load[0]:.1f}/{m.load[1]:.1f}" for m in measures])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--voxel-size", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--poll", type=float, nargs="*", default=[],
                        help="extra MultiProc runs with these poll_sleep_duration values "
                             "(passed as --plugin-args, which the CLI moves to the workflow "
                             "config)")
    parser.add_argument("--mp-context", nargs="*", default=[],
                        choices=["fork", "forkserver"],
                        help="extra MultiProc runs with these multiprocessing start methods")
    parser.add_argument("--compare", type=Path, metavar="CHECKOUT",
                        help="also run Linear and MultiProc from another mmrqa checkout (e.g. "
                             "`git archive main`), interleaved with this one: before/after "
                             "under the same load")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each command, wait up to SECONDS for the machine to be "
                             "idle (under 0.25 busy cores over one second)")
    parser.add_argument("--no-reports", action="store_true")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the runs-without-Nipype ceiling measurement")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mmrqa_scaling_") as tmp:
        scratch = Path(tmp)
        bids = scratch / "bids"
        paths = [str(p) for p in build_dataset(bids, plans(args.runs),
                                                voxel_size=args.voxel_size)]
        extra = ["--no-reports"] if args.no_reports else []
        print(f"participant level, {args.runs} T1w runs at {args.voxel_size:g} mm, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
              f"median of {args.repeats}", flush=True)

        def plugin_args(name: str, values: dict) -> list[str]:
            path = scratch / f"{name}.json"
            path.write_text(json.dumps(values))
            return ["--plugin-args", str(path)]

        multi = f"MultiProc-{args.nprocs}"
        configs: dict[str, tuple[int, list[str], Path]] = {
            "Linear": (1, ["--plugin", "Linear"], REPO),
            multi: (args.nprocs, ["--nprocs", str(args.nprocs)], REPO)}
        for poll in args.poll:
            configs[f"{multi} poll {poll:g}"] = (args.nprocs, [
                "--nprocs", str(args.nprocs),
                *plugin_args(f"poll{poll:g}", {"poll_sleep_duration": poll})], REPO)
        for context in args.mp_context:
            configs[f"{multi} {context}"] = (args.nprocs, [
                "--nprocs", str(args.nprocs),
                *plugin_args(f"ctx_{context}", {"mp_context": context})], REPO)
        if args.compare:
            configs["Linear (compare)"] = (1, ["--plugin", "Linear"], args.compare.resolve())
            configs[f"{multi} (compare)"] = (args.nprocs, ["--nprocs", str(args.nprocs)],
                                             args.compare.resolve())
        runs: dict[str, list[Measure]] = {label: [] for label in configs}
        waited, busy_starts = 0.0, 0
        for _ in range(args.repeats):
            for label, (workers, cli_args, repo) in configs.items():
                if args.wait_idle:
                    wait = wait_for_idle(args.wait_idle)
                    waited += wait
                    busy_starts += wait >= args.wait_idle
                runs[label].append(run_once(label, workers, bids, scratch, cli_args + extra,
                                            repo))
        measures = [median_run(ms) for ms in runs.values()]
        bound = None if args.no_ceiling else ceiling(paths, args.nprocs)

    linear, multiproc = measures[0], measures[1]
    _table(measures, args.runs)
    if args.wait_idle:
        print(f"waited {waited:.0f} s in all for an idle machine; {busy_starts} of "
              f"{args.repeats * len(configs)} commands started on a busy one")
    print("every repeat, workflow s (execute s; other processes' cores meanwhile):")
    for label, ms in runs.items():
        print(f"  {label:<26}" + "  ".join(
            f"{m.phases['workflow']:.2f} ({m.phases['execute']:.2f}; {m.others:.2f})"
            for m in ms))
    speedup = linear.phases["workflow"] / multiproc.phases["workflow"]
    execute = linear.phases["execute"] / multiproc.phases["execute"]
    overhead = (linear.phases["workflow"] - linear.phases["interface wall"]) / args.runs
    print(f"speedup {multi} vs Linear (workflow): {speedup:.2f}x (target >= 1.6x) "
          f"{'OK' if speedup >= 1.6 else 'MISSED'}")
    print(f"speedup {multi} vs Linear (execute only): {execute:.2f}x; "
          f"(whole command): {linear.wall / multiproc.wall:.2f}x")
    print(f"Nipype overhead per run (Linear, workflow - interfaces' run time): {overhead:.3f} s "
          f"(target < 0.5 s) {'OK' if overhead < 0.5 else 'MISSED'}")
    print(f"CPU seconds {multi} / Linear: {multiproc.cpu / linear.cpu:.2f}; run-node CPU per "
          f"run {linear.kinds['measure'][2] / args.runs:.2f} s (Linear) vs "
          f"{multiproc.kinds['measure'][2] / args.runs:.2f} s ({multi})")
    for m in measures[2:]:
        if m.label.endswith("(compare)"):
            continue
        print(f"{m.label} vs {multi} (workflow): "
              f"{multiproc.phases['workflow'] / m.phases['workflow']:.2f}x")
    if args.compare:
        lin_c, multi_c = measures[-2], measures[-1]
        print(f"compare checkout {args.compare}: speedup {multi} vs Linear (workflow) "
              f"{lin_c.phases['workflow'] / multi_c.phases['workflow']:.2f}x, (execute) "
              f"{lin_c.phases['execute'] / multi_c.phases['execute']:.2f}x; this checkout "
              f"vs it: Linear {lin_c.phases['workflow'] / linear.phases['workflow']:.2f}x, "
              f"{multi} {multi_c.phases['workflow'] / multiproc.phases['workflow']:.2f}x "
              f"faster; CPU {lin_c.cpu:.2f} / {multi_c.cpu:.2f} s there")
    inflation = (multiproc.kinds["measure"][2] / multiproc.kinds["measure"][0]) / (
        linear.kinds["measure"][2] / linear.kinds["measure"][0])
    print(f"model, not a measurement (see idle_model): on an idle machine with the CLI's 0.05 s "
          f"poll, MultiProc-{args.nprocs} would be {idle_model(linear, args.nprocs, 0.05):.2f}x "
          f"Linear if its processes did not slow each other, "
          f"{idle_model(linear, args.nprocs, 0.05, inflation):.2f}x with the run-node CPU "
          f"inflation measured here ({inflation:.2f}x)")
    if bound:
        ratio = bound["serial"] / bound["parallel"]
        print(f"ceiling, the run nodes' work without Nipype ({args.runs} runs): one process "
              f"{bound['serial']:.2f} s ({bound['serial_cpu']:.2f} s CPU, others "
              f"{bound['others_serial']:.2f} cores), {args.nprocs} processes "
              f"{bound['parallel']:.2f} s ({bound['parallel_cpu']:.2f} s CPU, others "
              f"{bound['others_parallel']:.2f} cores): {ratio:.2f}x; per run "
              f"{bound['per_run_serial']:.2f} s alone vs {bound['per_run_parallel']:.2f} s "
              f"side by side")
        print(f"parallel efficiency of the workflow (execute speedup / ceiling): "
              f"{execute / ratio:.0%}")
    others = [m.others for ms in runs.values() for m in ms]
    if bound:
        others += [bound["others_serial"], bound["others_parallel"]]
    if max(others) > 0.25:
        print(f"note: the machine was not idle (other processes used up to {max(others):.2f} "
              f"cores during a measurement; see 'others' and the load average); "
              "wall-time speedups are only meaningful on an otherwise idle machine. CPU "
              "seconds and the per-node figures still show where the time goes.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
