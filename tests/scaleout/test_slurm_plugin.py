"""`--plugin SLURM` on a real one-node SLURM cluster (slurmctld + slurmd + munged on
127.0.0.1, started for this module by scripts/ci/start_slurm.sh and stopped afterwards).

Nipype's own SLURM plugin submits one batch job per node with `sbatch`, polls `squeue` and
reads the node's result file when the job has left the queue. The cluster has no slurmdbd,
so `sacct` has nothing to report: the jobs are checked in the scheduler's job-completion log
(jobcomp/filetxt), with `scontrol show job` and with the job output files Nipype asked for.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from scaleout_common import (PLANS, REPO, assert_same_derivatives, cli_env, make_dataset,
                             run_cli)

pytestmark = pytest.mark.slow
SCRIPTS = REPO / "scripts" / "ci"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster; the daemons are stopped at teardown."""
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("SLURM is not installed and there is no apt-get to install slurm-wlm")
    install = subprocess.run([str(SCRIPTS / "install_slurm.sh")], capture_output=True,
                             text=True, timeout=1200)
    if install.returncode:
        pytest.skip("apt-get could not install slurm-wlm and munge: "
                    + " ".join((install.stderr or install.stdout).split()[-40:]))
    root = tmp_path_factory.mktemp("slurm")
    start = subprocess.run([str(SCRIPTS / "start_slurm.sh"), str(root)], capture_output=True,
                           text=True, timeout=120)
    try:
        assert start.returncode == 0, f"the SLURM cluster did not start:\n{start.stderr}"
        conf = start.stdout.strip().split("=", 1)[1]
        yield {"conf": conf, "root": root}
    finally:
        subprocess.run([str(SCRIPTS / "stop_slurm.sh"), str(root)], timeout=60)
        for pidfile in ("slurmctld.pid", "slurmd.pid", "munge/munged.pid"):
            assert not (root / pidfile).exists(), f"{pidfile} still there after stop_slurm.sh"


def _jobcomp(root: Path) -> list[dict[str, str]]:
    log = root / "jobcomp.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in lines]


def test_participant_level_through_slurm_matches_multiproc(slurm, tmp_path):
    bids = make_dataset(tmp_path / "bids")
    env = cli_env(SLURM_CONF=slurm["conf"], LOGNAME=os.environ.get("LOGNAME", "mmrqa"))
    # Smoke-test the cluster with the client tools the plugin relies on.
    probe = subprocess.run(["sbatch", "--parsable", "--wait", "-o", str(tmp_path / "probe.out"),
                            "--wrap", "echo scheduled"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert (tmp_path / "probe.out").read_text().strip() == "scheduled"

    plugin_args = tmp_path / "slurm.json"
    plugin_args.write_text(json.dumps({
        "sbatch_args": "--time=00:10:00 --cpus-per-task=1 --mem=1G",
        "max_jobs": 4,
    }))
    work = tmp_path / "work_slurm"
    proc = run_cli(bids, tmp_path / "slurm_out", "participant", "--plugin", "SLURM",
                   "--plugin-args", plugin_args, "-w", work, env=env, timeout=900)
    n = len(PLANS)
    assert f"{n} run(s) processed, 0 failed" in proc.stdout

    # Every node went through the scheduler and completed there.
    jobs = [j for j in _jobcomp(slurm["root"])
            if j.get("Name") != "wrap" and not j.get("Name", "").startswith("mmrqa-")]
    assert jobs, "no job in the SLURM job-completion log"
    assert all(j["JobState"] == "COMPLETED" and j["NodeList"] == "mmrqa-node" for j in jobs), jobs
    kinds = Counter(next((k for k in ("measure", "grade", "write")
                          if k in j["Name"]), "other") for j in jobs)
    # One job per run, then the grading JoinNode; the derivatives are written by the
    # submitting process (run_without_submitting), not by a job.
    assert kinds == {"measure": n, "grade": 1}, kinds
    show = subprocess.run(["scontrol", "show", "job", jobs[0]["JobId"]], env=env,
                          capture_output=True, text=True, timeout=60)
    assert "JobState=COMPLETED" in show.stdout, show.stdout + show.stderr
    batch = work / "mmrqa_participant_wf" / "batch"
    assert len(list(batch.glob("batchscript_*.sh"))) >= n + 1
    outs = {p.name for p in batch.glob("slurm-*.out")}
    assert {f"slurm-{j['JobId']}.out" for j in jobs if "measure" in j["Name"]} <= outs

    # Same metrics and grades as the same dataset on MultiProc.
    run_cli(bids, tmp_path / "multi_out", "participant", "--nprocs", "2",
            "-w", tmp_path / "work_multi", env=env)
    assert_same_derivatives(tmp_path / "slurm_out", tmp_path / "multi_out")


def _wait_for_job(job_id: str, env: dict[str, str], timeout: float = 600) -> str:
    """Poll `scontrol show job` until the job has ended; returns its final state."""
    deadline = time.monotonic() + timeout
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        show = subprocess.run(["scontrol", "show", "job", job_id], env=env,
                              capture_output=True, text=True, timeout=60)
        match = re.search(r"JobState=(\w+)", show.stdout)
        state = match.group(1) if match else state
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            return state
        time.sleep(1.0)
    raise AssertionError(f"job {job_id} still {state} after {timeout} s")


def test_bids_app_array_then_group(slurm, tmp_path):
    """examples/slurm_array.sh: one participant per array task, the group level after."""
    bids = make_dataset(tmp_path / "bids")
    out = tmp_path / "derivatives" / "mmrqa"
    env = cli_env(SLURM_CONF=slurm["conf"], MMRQA=f"{sys.executable} -m mmrqa_bids",
                  CPUS="1", MEM="1G", TIME="00:10:00", MAX_PARALLEL="2")
    proc = subprocess.run([str(REPO / "examples" / "slurm_array.sh"), str(bids), str(out),
                           "--no-reports"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.search(r"participant array (\d+) \((\d+) tasks\), group job (\d+)", proc.stdout)
    assert match, proc.stdout
    array, n_tasks, group = match.groups()
    assert int(n_tasks) == len({p.subject for p in PLANS})
    assert _wait_for_job(group, env) == "COMPLETED"
    for task in range(1, int(n_tasks) + 1):
        assert _wait_for_job(f"{array}_{task}", env) == "COMPLETED"
        log = (out / "logs" / "slurm" / f"participant_{array}_{task}.out").read_text()
        assert "1 run(s) processed, 0 failed" in log, log
    rows = (out / "group_T1w.tsv").read_text().splitlines()
    assert len(rows) == 1 + len(PLANS)
    work_root = tmp_path / "derivatives" / "mmrqa_work"
    assert sorted(p.name for p in work_root.iterdir() if p.is_dir()) == ["01", "02", "03"]


def test_slurm_graph_plugin(slurm, tmp_path):
    bids = make_dataset(tmp_path / "bids")
    env = cli_env(SLURM_CONF=slurm["conf"])
    plugin_args = tmp_path / "graph.json"
    plugin_args.write_text(json.dumps({"sbatch_args": "--time=00:10:00 --mem=1G"}))
    try:
        res = run_cli(bids, tmp_path / "graph_out", "participant", "--plugin", "SLURMGraph",
                      "--plugin-args", plugin_args, "-w", tmp_path / "work_graph", env=env,
                      timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "submitted to the scheduler with SLURMGraph" in res.stdout
        deadline = time.monotonic() + 600
        while subprocess.run(["squeue", "-h"], env=env, capture_output=True,
                             text=True).stdout.strip():
            assert time.monotonic() < deadline, "SLURMGraph jobs still queued after 600 s"
            time.sleep(1.0)
        run_cli(bids, tmp_path / "multi_out", "participant", "--nprocs", "2",
                "-w", tmp_path / "work_multi", env=env)
        # SLURMGraph returns before the runs exist, so it has no join step (dataset grades);
        # MultiProc's whole-dataset run has one: compare after the group level, as run
        for out in ("graph_out", "multi_out"):
            done = run_cli(bids, tmp_path / out, "group", env=env)
            assert done.returncode == 0, done.stdout + done.stderr
        assert_same_derivatives(tmp_path / "graph_out", tmp_path / "multi_out")
    finally:
        # A private cluster: nothing else of ours is queued there.
        subprocess.run(["scancel", "--user", str(os.getuid())], env=env, timeout=60)
