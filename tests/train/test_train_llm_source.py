"""``train --qa-source llm`` through the CLI against a local OpenAI-compatible server, with
the LLM judge of the evaluation on the same endpoint; a re-run takes the QA answers from the
on-disk cache."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("openai")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qa"))

from qa_fake_llm import FakeQALLM  # noqa: E402
from test_train_level import cli  # noqa: E402


@pytest.mark.slow
def test_qa_source_llm_end_to_end_with_cache_and_judge(tiny_base, rated_bids, tmp_path):
    root, tsv = rated_bids
    out = tmp_path / "out"
    args = [root, out, "train", "--labels", tsv, "--base-model", tiny_base, "--qa-source", "llm",
            "--qa-fraction", 0.34, "--epochs", 1, "--batch-size", 8, "--holdout-fraction", 0.2,
            "--device", "cpu", "-w", tmp_path / "work", "--participant-label", "01", "02", "03"]
    with FakeQALLM(invalid_first=True) as server:
        args += ["--llm-base-url", server.base_url, "--llm-model", "qwen-test"]
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        qa_requests = [r for r in server.requests if "Score the candidate" not in r["messages"][-1]["content"]]
        assert len(qa_requests) == 6  # 3 examples, each answered invalid once then valid
        model = out / "models" / "mmrqa-model-lora"
        records = [json.loads(x) for x in (model / "dataset" / "train.hf.jsonl").read_text().splitlines()]
        kinds = [r["kind"] for r in records]
        assert kinds.count("grade") == 2 and len(kinds) == 2 + round(0.34 * 2 * 9)
        answer = next(r for r in records if r["kind"] == "grade")["messages"][-1]["content"][0]["text"]
        assert "LLM signal_effects for a" in answer and answer.startswith("Grade: ")
        evaluation = json.loads((model / "evaluation.json").read_text())
        judge = evaluation["judge"]
        assert judge["model"] == "qwen-test" and judge["n_calls"] == 3 and judge["n_examples"] == 1
        judged = [r for r in server.requests if "Score the candidate" in r["messages"][-1]["content"]]
        # an unparsed answer has no narrative: it scores 0 without a judge call
        assert len(judged) == 3 * (1 - judge["unjudgeable_answers"])
        assert set(judge["mean"]) == {"artifact_identification", "diagnostic_relevance"}
        n_before = len(server.requests)
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        new = server.requests[n_before:]
        assert all("Score the candidate" in r["messages"][-1]["content"] for r in new)
