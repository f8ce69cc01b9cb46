"""Fault injection for the reliability tests and ``benchmarks/fault_injection.py``.

Hostile inputs are real files (a 155-byte NIfTI claiming 1000^3 voxels, a truncated failure
record, a folder replaced by a file). Faults that no file can cause (a ``MemoryError`` in one
run, a grader that raises, a slow run to interrupt) are injected by running the real command
line through this module::

    python -m mmrqa_bids.testing.faults --raise sub-02_T1w=MemoryError --slow 2 -- \\
        BIDS_DIR OUTPUT_DIR participant ...

which patches the named step in this process (and so in forked MultiProc workers) and then
calls :func:`mmrqa_bids.cli.run.main`. Nothing here is imported by mmrqa itself.
"""
from __future__ import annotations

import argparse
import builtins
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Sequence

from mmrqa_bids.testing.cli import REPO

#: Exceptions ``--raise`` can inject, by name (``builtins`` names).
INJECTABLE = ("MemoryError", "PermissionError", "RuntimeError", "ValueError", "KeyError",
              "ZeroDivisionError", "OSError")


def build_t1w_dataset(root: str | Path, subjects: Sequence[str] = ("01", "02", "03", "04"),
                      seed: int = 1) -> Path:
    """A 3 mm T1w-only dataset (one run per subject): a participant run takes seconds."""
    from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

    root = Path(root)
    build_dataset(root, [RunPlan(s, "T1w") for s in subjects], voxel_size=3.0, seed=seed)
    return root


def hostile_header(path: str | Path, shape: tuple[int, ...] = (1000, 1000, 1000),
                   dtype: str = "int16", gzipped: bool = False, payload: int = 0) -> Path:
    """A NIfTI-1 whose header claims ``shape`` but that holds ``payload`` zero bytes of data
    (the issue's 155-byte file, or a small ``.nii.gz`` claiming gigabytes)."""
    import nibabel as nb
    import numpy as np

    header = nb.Nifti1Header()
    header.set_data_dtype(np.dtype(dtype))
    header.set_data_shape(shape)
    header.set_qform(np.eye(4), code=1)
    header.set_sform(np.eye(4), code=1)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4 + b"\0" * payload
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if gzipped else raw)
    return path


def run_faulty(cli_args: Sequence[str | Path], raises: dict[str, str] | None = None,
               slow: float = 0.0, grade_error: str | None = None, nan_metric: str | None = None,
               env: dict[str, str] | None = None, timeout: int = 600,
               popen: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
    """The real command line with the faults injected (see the module docstring)."""
    cmd = [sys.executable, "-m", "mmrqa_bids.testing.faults"]
    for name, exc in (raises or {}).items():
        cmd += ["--raise", f"{name}={exc}"]
    if slow:
        cmd += ["--slow", str(slow)]
    if grade_error:
        cmd += ["--grade-error", grade_error]
    if nan_metric:
        cmd += ["--nan-metric", nan_metric]
    cmd += ["--", *map(str, cli_args)]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    if popen:  # its own process group, signalled as a whole (a terminal's Ctrl-C, scancel)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full_env, start_new_session=True)
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)


def interrupt_after(proc: subprocess.Popen, marker: str, signum: int = signal.SIGINT,
                    timeout: float = 120.0) -> tuple[int, str, str]:
    """Send ``signum`` to the process group of ``proc`` (started by :func:`run_faulty` with
    ``popen=True``: workers included, as a terminal's Ctrl-C or a scheduler's SIGTERM reach
    them) once ``marker`` appears in its stdout; return ``(exit code, stdout, stderr)``. A
    group still running ``timeout`` seconds later is killed (code -9)."""
    lines, deadline = [], time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            os.killpg(proc.pid, signum)
            break
        if time.monotonic() > deadline:
            break
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # a run that does not stop (or orphaned workers)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\nstill running {timeout:.0f} s after the signal: killed"
    return proc.returncode, "".join(lines) + out, err


def strict_json_load(path: Path) -> object:
    """Parse ``path`` as JSON refusing NaN/Infinity (what browsers, jq and Node accept)."""
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")
    return json.loads(path.read_text(), parse_constant=refuse)


def output_problems(out: str | Path) -> list[str]:
    """Every JSON under ``out`` parsed strictly, every TOML parsed, no temporary file left:
    the problems found (empty when all is valid)."""
    problems = []
    for path in sorted(Path(out).rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(".tmp"):
            problems.append(f"{path}: temporary file left")
        elif path.suffix == ".json":
            try:
                strict_json_load(path)
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}")
        elif path.suffix == ".toml":
            try:
                tomllib.loads(path.read_text())
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}")
    return problems


def kept_runs(out: str | Path, names: Sequence[str]) -> list[str]:
    """The runs of ``names`` with an outcome on disk: a valid run JSON or a failure record."""
    kept = []
    for name in names:
        docs = list(Path(out).glob(f"sub-*/**/{name}.json")) + \
            [Path(out) / "logs" / "failed" / f"{name}.json"]
        for doc in docs:
            try:
                if doc.is_file() and isinstance(strict_json_load(doc), dict):
                    kept.append(name)
                    break
            except (OSError, ValueError):
                continue
    return kept


def _patch(raises: dict[str, str], slow: float, grade_error: str | None,
           nan_metric: str | None = None) -> None:
    from mmrqa_bids.interfaces import measure as measure_mod

    if nan_metric:  # a metric the image makes undefined (e.g. FBER of a zero background)
        measure_fn = measure_mod.measure

        def nan_measure(*args, **kwargs):
            result = measure_fn(*args, **kwargs)
            result.metrics[nan_metric] = float("nan")
            return result

        measure_mod.measure = nan_measure
    # The measure node's first step on the run's file: slow it, or fail it, there.
    checksum = measure_mod.file_checksum
    by_file = {f"{name}.nii.gz": exc for name, exc in raises.items()}

    def faulty_checksum(path, *args, **kwargs):
        if slow:
            time.sleep(slow)
        name = Path(path).name
        if name in by_file:
            raise getattr(builtins, by_file[name])(f"injected in {name.split('.')[0]}")
        return checksum(path, *args, **kwargs)

    measure_mod.file_checksum = faulty_checksum
    if grade_error:
        from mmrqa_bids.grading import classifier

        def failing_grade(self, requests):
            raise getattr(builtins, grade_error)("injected grader error")

        classifier.ClassifierGrader.grade = failing_grade


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mmrqa's command line with injected faults")
    parser.add_argument("--raise", dest="raises", action="append", default=[],
                        metavar="BIDS_NAME=EXCEPTION")
    parser.add_argument("--slow", type=float, default=0.0, help="seconds of sleep per run")
    parser.add_argument("--grade-error", choices=INJECTABLE)
    parser.add_argument("--nan-metric", metavar="NAME", help="this metric comes out NaN")
    parser.add_argument("cli", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    raises = dict(item.split("=", 1) for item in args.raises)
    assert all(exc in INJECTABLE for exc in raises.values()), raises
    _patch(raises, args.slow, args.grade_error, args.nan_metric)
    from mmrqa_bids.cli.run import main as cli_main
    cli = args.cli[1:] if args.cli[:1] == ["--"] else args.cli
    return cli_main(cli)


if __name__ == "__main__":
    sys.exit(main())
