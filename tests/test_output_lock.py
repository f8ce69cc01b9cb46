"""The output folder's grading lock (mmrqa_bids/output_lock.py): a second group level (or join
step) into one folder waits for the first, saying so; a filesystem without locks is said in one
warning line; the lock file trips nothing that reads the outputs."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mmrqa_bids.derivatives import DerivativesLayout, collect_documents
from mmrqa_bids.group import join_grades, run_group
from mmrqa_bids.output_lock import GRADING_LOCK, grading_lock
from mmrqa_bids.testing.cli import REPO
from mmrqa_bids.testing.faults import output_problems
from mmrqa_bids.testing.synthetic_runs import synthetic_outputs

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
#: Holds the grading lock of argv[1], says "held", waits for the file argv[2] to appear (at
#: most 120 s), and writes the marker file argv[3] as the last thing before it lets go.
HOLDER = """\
import sys, time
from pathlib import Path
from mmrqa_bids.output_lock import grading_lock
with grading_lock(sys.argv[1]) as lock:
    assert lock is not None
    print("held", flush=True)
    deadline = time.monotonic() + 120
    while not Path(sys.argv[2]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    Path(sys.argv[3]).write_text("released")
"""


def _hold(out: Path, go: Path, marker: Path) -> subprocess.Popen:
    """A process holding the grading lock of ``out`` until ``go`` exists."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out), str(go), str(marker)],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _group(tmp_path: Path, out: Path) -> subprocess.Popen:
    """The real ``mmrqa BIDS OUT group --no-reports`` (no BIDS folder needed), running."""
    return subprocess.Popen([sys.executable, "-m", "mmrqa_bids", str(tmp_path / "no_bids"),
                             str(out), "group", "--no-reports"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def _read_until(proc: subprocess.Popen, text: str) -> list[str]:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if text in line:
            break
    return lines


def test_a_second_group_level_waits_for_the_holder_then_grades(tmp_path):
    """Another process holds the lock: the real ``mmrqa ... group`` says it waits, naming the
    lock file, and writes nothing before the holder let go (the holder's marker file, its
    last write under the lock, is older than every run JSON, group table and cohort
    reference the group level wrote)."""
    out, go, marker = tmp_path / "out", tmp_path / "go", tmp_path / "released"
    runs = synthetic_outputs(out)
    holder = _hold(out, go, marker)
    try:
        group = _group(tmp_path, out)
        lines = _read_until(group, "waiting for it to finish")
        time.sleep(0.5)  # it keeps waiting while the lock is held
        assert group.poll() is None and not (out / "group_T1w.tsv").exists()
        go.touch()
        rest, err = group.communicate(timeout=300)
    finally:
        go.touch()
        holder.wait(timeout=60)
    stdout = "".join(lines) + rest
    assert group.returncode == 0, stdout + err
    lock = out / GRADING_LOCK
    waits = [ln for ln in stdout.splitlines() if "waiting for it to finish" in ln]
    assert waits == [f"[mmrqa] another mmrqa run is grading {out} (it holds {lock}); waiting "
                     "for it to finish, then grading the newest outputs"]
    released = marker.stat().st_mtime_ns
    written = runs + [out / "group_T1w.tsv", *sorted((out / "cohorts").glob("*.json"))]
    assert len(written) == len(runs) + 2
    assert all(p.stat().st_mtime_ns >= released for p in written)
    assert {json.loads(p.read_text())["grade"]["basis"] for p in runs} == {"dataset"}


def test_a_join_step_waits_for_a_group_level_holding_the_lock(tmp_path, capsys):
    """The join step (group.join_grades) takes the same lock: it waits for the holder too."""
    out, go, marker = tmp_path / "out", tmp_path / "go", tmp_path / "released"
    runs = synthetic_outputs(out)
    holder = _hold(out, go, marker)
    release = threading.Timer(1.5, go.touch)
    release.start()
    try:
        t0 = time.monotonic()
        docs = join_grades(out, ("T1w",), reports=False)
        elapsed = time.monotonic() - t0
    finally:
        release.join()
        holder.wait(timeout=60)
    assert "another mmrqa run is grading" in capsys.readouterr().out
    assert elapsed >= 1.0 and {d["grade"]["basis"] for d in docs} == {"dataset"}
    assert all(p.stat().st_mtime_ns >= marker.stat().st_mtime_ns for p in runs)


def test_no_wait_line_when_nobody_holds_the_lock(tmp_path, capsys):
    out = tmp_path / "out"
    synthetic_outputs(out)
    run_group(out, ("T1w",), reports=False)
    assert "waiting" not in capsys.readouterr().out
    assert (out / GRADING_LOCK).is_file()


def test_an_interrupt_while_waiting_stops_the_group_level_and_writes_nothing(tmp_path):
    """SIGINT to a group level waiting for the lock: exit 130 at once, no output touched."""
    out, go, marker = tmp_path / "out", tmp_path / "go", tmp_path / "released"
    runs = synthetic_outputs(out)
    before = {p: p.read_bytes() for p in runs}
    holder = _hold(out, go, marker)
    try:
        group = _group(tmp_path, out)
        lines = _read_until(group, "waiting for it to finish")
        group.send_signal(signal.SIGINT)
        rest, err = group.communicate(timeout=60)
        assert not marker.exists()  # stopped while the holder still held the lock
    finally:
        go.touch()
        holder.wait(timeout=60)
    assert group.returncode == 130, "".join(lines) + rest + err
    assert "group level interrupted (SIGINT): no run JSON is half-written" in rest
    assert "mmrqa: interrupted (SIGINT)" in err
    assert {p: p.read_bytes() for p in runs} == before
    assert not (out / "group_T1w.tsv").exists()


def test_a_filesystem_without_locks_is_one_warning_line_and_the_grading_goes_on(
        tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    runs = synthetic_outputs(out)

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run_group(out, ("T1w",), reports=False)
    console = capsys.readouterr().out.splitlines()
    warnings = [ln for ln in console if "does not support file locks" in ln]
    assert warnings == [f"[mmrqa] WARNING {out / GRADING_LOCK}: this filesystem does not support "
                        f"file locks ({os.strerror(errno.ENOLCK)}); grading without the lock, so "
                        f"another participant or group run grading {out} at the same time could "
                        "interleave its writes with this one's"]
    assert {json.loads(p.read_text())["grade"]["basis"] for p in runs} == {"dataset"}
    # EOPNOTSUPP (SMB, some FUSE mounts) alike
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: (_ for _ in ()).throw(
        OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))))
    with grading_lock(out) as lock:
        assert lock is None
    assert "does not support file locks" in capsys.readouterr().out


def test_other_lock_errors_and_errors_of_the_block_are_raised(tmp_path, monkeypatch):
    def broken(fd, operation):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(OSError) as info:
        with grading_lock(tmp_path):
            pytest.fail("the block must not run without the lock after an I/O error")
    assert info.value.errno == errno.EIO
    monkeypatch.undo()
    # an ENOLCK raised by the grading itself is not taken for a filesystem without locks
    with pytest.raises(OSError) as info:
        with grading_lock(tmp_path):
            raise OSError(errno.ENOLCK, "from the block")
    assert info.value.strerror == "from the block"


def test_the_lock_file_trips_nothing_that_reads_the_outputs(tmp_path):
    """The lock file stays in OUT: the run JSONs read, the group tables, a rerun (which
    changes nothing) and the output check of the fault-injection suite all ignore it."""
    out = tmp_path / "out"
    runs = synthetic_outputs(out)
    run_group(out, ("T1w",), reports=False)
    assert (out / GRADING_LOCK).is_file()
    assert len(collect_documents(DerivativesLayout(out))) == len(runs)
    rows = (out / "group_T1w.tsv").read_text().splitlines()
    assert len(rows) == 1 + len(runs)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    first = {p: p.read_bytes() for p in files}
    run_group(out, ("T1w",), reports=False)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    assert [p for p in files if p.read_bytes() != first[p]] == []
    assert output_problems(out) == []


def test_a_missing_output_folder_is_not_created_for_the_lock(tmp_path):
    with grading_lock(tmp_path / "missing") as lock:
        assert lock is None
    assert not (tmp_path / "missing").exists()
