"""The fault-injection cases of issue 22, each run through the real command line.

Every case returns a :class:`CaseResult`: the exit code(s), how many of its runs have an
outcome on disk (a valid run JSON or a failure record), whether every output file parses
strictly (JSON without NaN, TOML, no temporary file left), and whether anything was lost
(the case's own check). ``tests/reliability`` asserts them; ``benchmarks/fault_injection.py``
prints them as a table.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import nibabel as nb
import numpy as np

from mmrqa_bids.testing.cli import REPO
from mmrqa_bids.testing.faults import (build_t1w_dataset, hostile_header, interrupt_after,
                                       kept_runs, output_problems, run_faulty)

SUBJECTS = ("01", "02", "03", "04")
NAMES = tuple(f"sub-{s}_T1w" for s in SUBJECTS)
#: Secrets the echo-server case plants; none may appear in any output.
FAKE_KEY = "sk-fault-0123456789abcdef"
FAKE_QUERY_TOKEN = "qtok-9876543210"


@dataclass
class CaseResult:
    case: str
    exit_codes: list[int]
    expected: list[int]
    runs: int
    kept: int
    problems: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    detail: str = ""
    #: runs an interrupt stopped before they were measured (not processed, not lost)
    not_started: int = 0

    @property
    def files_valid(self) -> bool:
        return not self.problems

    @property
    def ok(self) -> bool:
        return self.exit_codes == self.expected and self.files_valid and not self.lost

    def row(self) -> tuple[str, str, str, str, str]:
        codes = ",".join(map(str, self.exit_codes))
        kept = f"{self.kept}/{self.runs}" if self.runs else "n/a"
        if self.not_started:
            kept += f" (+{self.not_started} not processed)"
        return (self.case, codes, kept, "yes" if self.files_valid else "NO",
                "nothing" if not self.lost else f"{len(self.lost)} LOST")


def _env(root: Path) -> dict[str, str]:
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {"TMPDIR": str(tmp), "PYTHONPATH": str(REPO), "NIPYPE_NO_ET": "1"}


def _cli(*args: Any, env: dict[str, str], popen: bool = False):
    cmd = [sys.executable, "-m", "mmrqa_bids", *map(str, args)]
    full = {**os.environ, **env}
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full)
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=600)


def _doc(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when it is missing or not one."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _work_dirs_left(root: Path) -> list[str]:
    return [p.name for p in (root / "tmp").glob("mmrqa_work_*")]


def _finish(case: str, root: Path, out: Path, codes: list[int], expected: list[int],
            names=NAMES, lost: list[str] | None = None, detail: str = "") -> CaseResult:
    kept = kept_runs(out, names) if out.exists() else []
    problems = output_problems(out) if out.exists() else []
    left = _work_dirs_left(root)
    if left:
        problems.append(f"work directories left in TMPDIR: {left}")
    return CaseResult(case, codes, expected, len(names), len(kept), problems,
                      lost if lost is not None else [n for n in names if n not in kept], detail)


# ----------------------------------------------------------------------- concurrency
def concurrent(labels: list[list[str]], name: str) -> Callable[[Path, Path], CaseResult]:
    def case(root: Path, bids: Path) -> CaseResult:
        out, env = root / "out", _env(root)
        procs = []
        for i, group in enumerate(labels):
            procs.append(_cli(bids, out, "participant", "--no-reports", "--participant-label",
                              *group, env=env, popen=True))
            time.sleep(0.5 if i == 0 else 0.1)  # the cluster pattern: jobs a moment apart
        results = [p.communicate(timeout=600) for p in procs]
        codes = [p.returncode for p in procs]
        wanted = sorted({f"sub-{s}_T1w" for g in labels for s in g})
        summaries = [o for o, _ in results if "run(s) processed" in o]
        logs = list((out / "logs").glob("settings_participant_*.toml"))
        detail = f"{len(summaries)}/{len(procs)} summaries, {len(logs)} settings logs"
        res = _finish(name, root, out, codes, [0] * len(procs), names=wanted, detail=detail)
        if len(logs) != len(procs):
            res.problems.append(f"{len(logs)} settings logs for {len(procs)} invocations")
        if len(summaries) != len(procs):
            res.problems.append("an invocation printed no summary")
        return res
    case.__name__ = name
    return case


def shared_work_dir(root: Path, bids: Path) -> CaseResult:
    """Two invocations naming the same ``--work-dir``: the second waits for the first (a
    lock), rather than wiping the folder under it."""
    out, env, work = root / "out", _env(root), root / "shared_work"
    procs = []
    for i, group in enumerate((["01", "02"], ["03", "04"])):
        # runs slowed by 1 s each, so that the two surely overlap
        procs.append(run_faulty([bids, out, "participant", "--no-reports", "-w", work,
                                 "--participant-label", *group], slow=1.0, env=env,
                                popen=True))
        time.sleep(0.5 if i == 0 else 0)
    results = [p.communicate(timeout=600) for p in procs]
    waited = sum("waiting for it to finish" in o for o, _ in results)
    res = _finish("2 concurrent, one shared --work-dir", root, out,
                  [p.returncode for p in procs], [0, 0], detail=f"{waited} waited for the lock")
    if not waited:
        res.problems.append("neither invocation waited for the shared work directory")
    return res


# ----------------------------------------------------------------------- per-run isolation
def memory_error_in_one_run(root: Path, bids: Path) -> CaseResult:
    out = root / "out"
    proc = run_faulty([bids, out, "participant", "--no-reports"],
                      raises={"sub-02_T1w": "MemoryError"}, env=_env(root))
    res = _finish("MemoryError in one run", root, out, [proc.returncode], [1])
    fail = out / "logs" / "failed" / "sub-02_T1w.json"
    record = _doc(fail)
    crash = Path(record.get("crash_file", "/nonexistent"))
    if record.get("stage") != "measure" or not crash.is_file() \
            or "MemoryError" not in crash.read_text():
        res.lost.append("sub-02_T1w: no failure record with stage and crash file")
    if "4 run(s) processed, 1 failed" not in proc.stdout:
        res.lost.append("summary not true")
    return res


def grader_error(root: Path, bids: Path) -> CaseResult:
    out = root / "out"
    proc = run_faulty([bids, out, "participant", "--no-reports"], grade_error="RuntimeError",
                      env=_env(root))
    res = _finish("grader raises", root, out, [proc.returncode], [1])
    stages = {_doc(p).get("stage") for p in (out / "logs" / "failed").glob("*.json")}
    if stages != {"grade"} or "4 run(s) processed, 4 failed" not in proc.stdout:
        res.lost.append(f"failure records / summary wrong (stages {stages})")
    return res


def unwritable_run_folder(root: Path, bids: Path) -> CaseResult:
    """``OUT/sub-02`` is a file: sub-02's outputs cannot be written (root ignores chmod)."""
    out = root / "out"
    out.mkdir(parents=True)
    (out / "sub-02").write_text("not a folder\n")
    proc = run_faulty([bids, out, "participant", "--no-reports"], env=_env(root))
    (out / "sub-02").unlink()  # not an mmrqa output: leave it out of the strict parse
    res = _finish("run folder unwritable", root, out, [proc.returncode], [1])
    fail = out / "logs" / "failed" / "sub-02_T1w.json"
    if _doc(fail).get("stage") != "write":
        res.lost.append("sub-02_T1w: no failure record with stage write")
    return res


def hostile_headers(root: Path, bids: Path) -> CaseResult:
    data = root / "bids"
    shutil.copytree(bids, data)
    hostile_header(data / "sub-05" / "anat" / "sub-05_T1w.nii", (1000, 1000, 1000), "int16")
    hostile_header(data / "sub-06" / "anat" / "sub-06_T1w.nii.gz", (2000, 2000, 2000), "int16",
                   gzipped=True, payload=1 << 20)
    out = root / "out"
    t0 = time.monotonic()
    proc = _cli(data, out, "participant", "--no-reports", env=_env(root))
    names = NAMES + ("sub-05_T1w", "sub-06_T1w")
    res = _finish("hostile headers (155 B / 1 MB claiming 2-16 GB)", root, out,
                  [proc.returncode], [1], names=names,
                  detail=f"{time.monotonic() - t0:.1f} s")
    for name in ("sub-05_T1w", "sub-06_T1w"):
        fail = out / "logs" / "failed" / f"{name}.json"
        if "header claims" not in str(_doc(fail).get("error")):
            res.lost.append(f"{name}: not refused from its header")
    return res


# ----------------------------------------------------------------------- interrupts
def interrupted(signum: int, nprocs: int) -> Callable[[Path, Path], CaseResult]:
    name = f"{signal.Signals(signum).name} mid-run (--nprocs {nprocs})"

    def case(root: Path, bids: Path) -> CaseResult:
        out = root / "out"
        proc = run_faulty([bids, out, "participant", "--no-reports", "--nprocs", str(nprocs)],
                          slow=1.5, env=_env(root), popen=True)
        code, stdout, _err = interrupt_after(proc, "measured sub-01_T1w", signum)
        written = [n for n in NAMES if f"[mmrqa] {n}: " in stdout]
        res = _finish(name, root, out, [code], [128 + signum])
        # nothing reported written may be missing; runs never measured are not "lost"
        res.lost = [n for n in written if n not in kept_runs(out, NAMES)]
        res.not_started = res.runs - res.kept
        summary = next((ln for ln in stdout.splitlines() if "interrupted after" in ln), "")
        if f"{res.not_started} not processed" not in summary and res.not_started:
            res.lost.append(f"summary untrue: {summary!r}")
        if "interrupted after" not in stdout or not written:
            res.lost.append("no summary, or nothing written")
        return res
    case.__name__ = name
    return case


def orphan_temp_file(root: Path, bids: Path) -> CaseResult:
    out = root / "out"
    target = out / "sub-01" / "anat" / "sub-01_T1w.json"
    code = ("import os, signal, sys; import mmrqa_bids.io as io; "
            "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL); "
            "io.atomic_write_text(sys.argv[1], '{\"half\": ')")
    subprocess.run([sys.executable, "-c", code, str(target)], env={**os.environ, **_env(root)})
    before = list(target.parent.glob("*.tmp"))
    proc = _cli(bids, out, "participant", "--no-reports", env=_env(root))
    res = _finish("orphan .tmp after SIGKILL", root, out, [proc.returncode], [0],
                  detail=f"{len(before)} orphan(s) before")
    if not before or "removed 1 temporary file" not in proc.stdout:
        res.lost.append("orphan not created or not reported removed")
    return res


# ----------------------------------------------------------------------- numerics
def nan_metric(root: Path, bids: Path) -> CaseResult:
    out = root / "out"
    proc = run_faulty([bids, out, "participant"], nan_metric="mrqy_FBER", env=_env(root))
    res = _finish("NaN metric (injected)", root, out, [proc.returncode], [0])
    doc = _doc(out / "sub-01" / "anat" / "sub-01_T1w.json")
    if doc.get("metrics", {}).get("mrqy_FBER", 0) is not None \
            or "mrqy_FBER" not in doc.get("metric_notes", {}):
        res.lost.append("mrqy_FBER not null with a note")
    return res


def skull_stripped(root: Path, bids: Path) -> CaseResult:
    """sub-01 with everything outside the brain set to 0 (a skull-stripped T1w: the air has
    no signal, so the metrics of the background are not computable)."""
    from mmrqa_bids.io import load_image
    from mmrqa_bids.metrics import measure

    data = root / "bids"
    shutil.copytree(bids, data)
    path = data / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    img = nb.load(str(path))
    ras, volume = load_image(path, "T1w")
    brain = measure(volume, "T1w", ras.header.get_zooms()).tissue_labels > 0
    # back from RAS to the file's voxel order
    ornt = nb.orientations.ornt_transform(nb.orientations.io_orientation(ras.affine),
                                          nb.orientations.io_orientation(img.affine))
    mask = nb.orientations.apply_orientation(brain, ornt)
    stripped = np.where(mask, np.asarray(img.dataobj), 0).astype(img.get_data_dtype())
    nb.save(nb.Nifti1Image(stripped, img.affine, img.header), str(path))
    out = root / "out"
    proc = _cli(data, out, "participant", env=_env(root))
    res = _finish("skull-stripped T1w (zero background)", root, out, [proc.returncode], [0])
    doc = _doc(out / "sub-01" / "anat" / "sub-01_T1w.json")
    nulls = sorted(k for k, v in doc.get("metrics", {}).items() if v is None)
    if not nulls or set(nulls) - set(doc.get("metric_notes", {})):
        res.lost.append(f"null metrics {nulls} without notes, or none")
    res.detail = f"{len(nulls)} null metric(s), each with a note"
    return res


def overflow(root: Path, bids: Path) -> CaseResult:
    data = root / "bids"
    shutil.copytree(bids, data)
    path = data / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    img = nb.load(str(path))
    nb.save(nb.Nifti1Image(np.asarray(img.dataobj, dtype=np.float64) * 1e30, img.affine),
            str(path))
    out = root / "out"
    proc = _cli(data, out, "participant", "--no-reports", env=_env(root))
    res = _finish("float64 volume at 1e30", root, out, [proc.returncode], [0])
    efc = _doc(out / "sub-01" / "anat" / "sub-01_T1w.json").get("metrics", {}).get("efc")
    ref = _doc(out / "sub-02" / "anat" / "sub-02_T1w.json").get("metrics", {}).get("efc")
    if not (efc and ref and 0.5 < efc / ref < 2):
        res.lost.append(f"efc {efc} against {ref} for the same head at ordinary scale")
    note = _doc(out / "sub-01" / "anat" / "sub-01_T1w.json").get("metric_notes", {})
    if "intensity_scale" not in note:
        res.lost.append("no note of the rescaling")
    res.detail = f"efc {efc:.3f} (sub-02: {ref:.3f})" if efc and ref else f"efc {efc}"
    return res


# ----------------------------------------------------------------------- secrets
class EchoServer:
    """An OpenAI-like server on 127.0.0.1 that leaks: ``GET .../models`` lists one model,
    ``POST .../chat/completions`` answers 403 with a body quoting the request's
    ``Authorization`` header and full path (query included), as a misconfigured proxy does."""

    def __init__(self, model: str = "echo"):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _send(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                server.seen.append(self.headers.get("Authorization", ""))
                if "models" in self.path:
                    self._send(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.seen.append(self.headers.get("Authorization", ""))
                self._send(403, {"error": {"message": (
                    f"forbidden: Authorization: {self.headers.get('Authorization')} for "
                    f"http://127.0.0.1{self.path} (api-key rejected)"), "code": 403}})

        self.seen: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "EchoServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def secrets_echoed(root: Path, bids: Path) -> CaseResult:
    out = root / "out"
    with EchoServer() as server:
        env = {**_env(root), "MMRQA_LLM_API_KEY": FAKE_KEY}
        proc = _cli(bids, out, "participant", "--grader", "openai", "--llm-model", "echo",
                    "--llm-base-url", f"{server.base_url}?api-key={FAKE_QUERY_TOKEN}",
                    "--participant-label", "01", "02", env=env)
    names = NAMES[:2]
    res = _finish("LLM server echoing the key", root, out, [proc.returncode], [1], names=names)
    leaks = [str(p) for p in out.rglob("*") if p.is_file()
             and any(s in p.read_text(errors="replace") for s in (FAKE_KEY, FAKE_QUERY_TOKEN))]
    leaks += [f"console: {s}" for s in (FAKE_KEY, FAKE_QUERY_TOKEN)
              if s in proc.stdout + proc.stderr]
    if not any(FAKE_KEY in s for s in server.seen):
        leaks.append("the server never received the key (case did not run)")
    res.lost += [f"secret in {leak}" for leak in leaks]
    res.detail = f"{len(leaks)} leak(s)"
    return res


def credentials_in_url(root: Path, bids: Path) -> CaseResult:
    out = root / "out"
    proc = _cli(bids, out, "participant", "--grader", "openai",
                "--llm-base-url", "http://admin:hunter22@127.0.0.1:9/v1", env=_env(root))
    res = CaseResult("credentials in the URL", [proc.returncode], [2], 0, 0,
                     output_problems(out) if out.exists() else [])
    if out.exists():
        res.lost.append("output folder written before refusing")
    if "hunter22" in proc.stdout + proc.stderr:
        res.lost.append("password echoed on the console")
    return res


# ----------------------------------------------------------------------- group level
def group_corrupt(root: Path, bids: Path) -> CaseResult:
    out = root / "out"
    run_faulty([bids, out, "participant", "--no-reports"], raises={"sub-04_T1w": "ValueError"},
               env=_env(root))
    failed = out / "logs" / "failed" / "sub-04_T1w.json"
    meta = out / "sub-03" / "anat" / "sub-03_T1w.json"
    trunc = out / "sub-02" / "anat" / "sub-02_T1w.json"
    if failed.exists() and meta.exists() and trunc.exists():
        failed.write_text(failed.read_text()[:25])  # truncated failure record
        doc = _doc(meta)
        doc["metrics"] = None
        meta.write_text(json.dumps(doc))
        trunc.write_text(trunc.read_text()[:300])
    proc = _cli(bids, out, "group", "--no-reports", env=_env(root))
    rows = {}
    table = out / "group_T1w.tsv"
    if table.exists():
        lines = table.read_text().splitlines()
        header = lines[0].split("\t")
        for line in lines[1:]:
            cells = dict(zip(header, line.split("\t")))
            rows[cells["bids_name"]] = cells
    lost = [n for n in NAMES if n not in rows]
    for n in ("sub-02_T1w", "sub-03_T1w", "sub-04_T1w"):
        if n in rows and (rows[n]["status"] != "unreadable" or n not in rows[n]["error"]):
            lost.append(f"{n}: not an unreadable row naming the file")
    # the corrupted files are the case's input, not outputs to validate
    problems = [p for p in output_problems(out)
                if not any(str(f) in p for f in (failed, meta, trunc))]
    return CaseResult("group: corrupt records", [proc.returncode], [1], len(NAMES),
                      len(NAMES) - len([n for n in NAMES if n not in rows]), problems, lost,
                      f"{sum(r['status'] == 'unreadable' for r in rows.values())} unreadable rows")


def group_into_bids(root: Path, bids: Path) -> CaseResult:
    data = root / "bids"
    shutil.copytree(bids, data)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    proc = _cli(data, data, "group", env=_env(root))
    after = sorted(p.relative_to(data) for p in data.rglob("*"))
    lost = [] if before == after else [f"wrote {sorted(set(after) - set(before))} into BIDS_DIR"]
    return CaseResult("group with OUTPUT_DIR = BIDS_DIR", [proc.returncode], [2], 0, 0, [], lost)


CASES: tuple[Callable[[Path, Path], CaseResult], ...] = (
    concurrent([["01", "02"], ["03", "04"]], "2 concurrent, disjoint labels"),
    concurrent([["01", "02", "03"], ["02", "03", "04"]], "2 concurrent, overlapping labels"),
    concurrent([["01"], ["02"], ["03"], ["04"]], "4 concurrent, disjoint labels"),
    concurrent([["01", "02"], ["02", "03"], ["03", "04"], ["04", "01"]],
               "4 concurrent, overlapping labels"),
    shared_work_dir,
    memory_error_in_one_run,
    grader_error,
    unwritable_run_folder,
    hostile_headers,
    interrupted(signal.SIGINT, 1),
    interrupted(signal.SIGTERM, 2),
    orphan_temp_file,
    nan_metric,
    skull_stripped,
    overflow,
    secrets_echoed,
    credentials_in_url,
    group_corrupt,
    group_into_bids,
)


def case_name(case: Callable[[Path, Path], CaseResult]) -> str:
    return case.__name__


def shared_dataset(root: Path) -> Path:
    """The 4-run T1w dataset every case reads (never written to)."""
    return build_t1w_dataset(root / "bids_shared", SUBJECTS)
