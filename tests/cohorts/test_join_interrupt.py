"""SIGINT in the middle of a dataset grading: the participant level's join step and the group
level. The real command line runs in a subprocess whose run-JSON rewrites
(``group.atomic_write_json``) are slowed down (1 s each, 4 at a time) and say so on stdout;
the test sends SIGINT 0.3 s after the first rewrite starts. Expected: exit 130, one line saying what
the runs hold, every run JSON whole and holding its old grade or its new one, and a group
level afterwards that completes and then changes nothing when run again."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cohort_study import N_T1W, assert_group_rerun_changes_nothing, per_subject_study

from mmrqa_bids.testing.cli import REPO, run_cli
from mmrqa_bids.testing.faults import output_problems

pytestmark = pytest.mark.slow
#: ``python -c DRIVER ARGS``: ``mmrqa ARGS`` with every rewrite of the dataset grading slowed
#: down and announced ("[test] rewriting <file>"), 4 writes at a time.
DRIVER = """\
import sys, time
from pathlib import Path
import mmrqa_bids.group as group
from mmrqa_bids.cli.run import main

write = group.atomic_write_json
def slow_write(path, obj):
    print(f"[test] rewriting {Path(path).name}", flush=True)
    time.sleep(1.0)
    return write(path, obj)

group.atomic_write_json = slow_write
group.WRITE_THREADS = 4
sys.exit(main(sys.argv[1:]))
"""


def _run_jsons(out: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(out.glob("sub-*/anat/*.json"))}


def _interrupt_at_first_rewrite(*args: str | Path) -> tuple[int, str, str]:
    """``mmrqa ARGS`` through :data:`DRIVER`; SIGINT 0.3 s after its first rewrite starts
    (the writes are all queued then, 4 of them in progress)."""
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("[test] rewriting"):
                # every write is queued by now; the first 4 are in progress for 0.7 s more
                time.sleep(0.3)
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, "".join(lines) + out, err


def _group_completes_then_changes_nothing(bids: Path, out: Path) -> dict[str, dict]:
    """A group level after the interrupt completes; a second one rewrites nothing. Returns
    the run JSONs as the group level leaves them."""
    group = run_cli(bids, out, "group")
    assert group.returncode == 0, group.stdout + group.stderr
    assert_group_rerun_changes_nothing(bids, out)
    assert output_problems(out) == []
    return {name: json.loads(p.read_text()) for name, p in _run_jsons(out).items()}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The dataset, and its outputs after a per-subject participant run (absolute grades)."""
    root = tmp_path_factory.mktemp("join_interrupt")
    bids, out, _ = per_subject_study(root, "absolute")
    return root, bids, out


def test_sigint_during_the_join_step(study):
    """A whole-dataset participant run, SIGINT while its join step rewrites the run JSONs:
    the runs already measured stay, each run JSON holds the absolute grade the write node gave
    it or its dataset grade, and the group level finishes the grading."""
    root, bids, _ = study
    out = root / "join"
    code, stdout, stderr = _interrupt_at_first_rewrite(bids, out, "participant", "--nprocs", "2",
                                                       "-w", root / "work_join")
    assert code == 130, stdout + stderr
    lines = [ln for ln in stdout.splitlines() if "join step interrupted" in ln]
    assert lines == ["[mmrqa] join step interrupted (SIGINT): no run JSON is half-written (each "
                     "holds the grade it had or its new dataset grade); run the group level to "
                     "grade every run against its cohort"]
    assert "mmrqa: interrupted (SIGINT)" in stderr
    assert "join step:" not in stdout  # no tally of a grading that did not finish
    assert output_problems(out) == []  # every JSON parses (strictly), no temporary file left
    interrupted = {name: json.loads(p.read_text()) for name, p in _run_jsons(out).items()}
    assert len(interrupted) == N_T1W + 2
    final = _group_completes_then_changes_nothing(bids, out)
    assert final.keys() == interrupted.keys()
    new = [n for n, doc in interrupted.items() if doc == final[n]]
    old = [n for n, doc in interrupted.items() if doc != final[n]]
    for name in old:  # the participant level's absolute grade, as the write node wrote it
        grade = interrupted[name]["grade"]
        assert grade["basis"] == "model", name
        assert grade["label"] == final[name]["grade"]["model_grade"]["label"], name
    # the writes in progress when the signal came finished, the queued ones were dropped
    assert 4 <= len(new) < len(interrupted), (new, old)  # 4 unless the signal came late
    assert {final[n]["grade"]["basis"] for n in final if n.endswith("T1w")} == {"dataset"}


def test_sigint_during_the_group_level(study):
    """SIGINT while the group level rewrites the run JSONs: every run JSON is byte for byte
    the one it had or the one an uninterrupted group level writes."""
    root, bids, absolute = study
    out = root / "group"
    shutil.copytree(absolute, out)
    before = {name: p.read_bytes() for name, p in _run_jsons(out).items()}
    code, stdout, stderr = _interrupt_at_first_rewrite(bids, out, "group")
    assert code == 130, stdout + stderr
    assert ("[mmrqa] group level interrupted (SIGINT): no run JSON is half-written (each holds "
            "the grade it had or its new dataset grade); run the group level to grade every run "
            "against its cohort") in stdout.splitlines()
    assert "mmrqa: interrupted (SIGINT)" in stderr
    assert not list(out.glob("group_*.tsv"))  # the tables come after the grading
    assert output_problems(out) == []
    after = {name: p.read_bytes() for name, p in _run_jsons(out).items()}
    _group_completes_then_changes_nothing(bids, out)
    final = {name: p.read_bytes() for name, p in _run_jsons(out).items()}
    assert after.keys() == before.keys() == final.keys()
    assert all(after[n] in (before[n], final[n]) for n in after)
    # the 4 writes in progress when the signal came finished, the queued ones were dropped
    finished = sum(after[n] == final[n] != before[n] for n in after)
    assert 4 <= finished < len(after)  # 4 unless the signal came late
