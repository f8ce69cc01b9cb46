"""``train --qa-source llm`` through the CLI against a local OpenAI-compatible server; a
re-run takes the QA answers from the on-disk cache. The judge has its own test below."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("openai")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "qa"))

from qa_fake_llm import FakeQALLM  # noqa: E402
from mmrqa_bids.testing.cli import run_cli  # noqa: E402


@pytest.mark.slow
def test_qa_source_llm_end_to_end_with_cache_and_judge(tiny_base, rated_bids, tmp_path):
    root, tsv = rated_bids
    out = tmp_path / "out"
    args = [root, out, "train", "--labels", tsv, "--base-model", tiny_base, "--qa-source", "llm",
            "--qa-fraction", 0.1, "--epochs", 1, "--batch-size", 6, "--holdout-fraction", 0,
            "--device", "cpu", "-w", tmp_path / "work", "--participant-label", "01", "02", "03"]
    with FakeQALLM(invalid_first=True) as server:
        args += ["--llm-base-url", server.base_url, "--llm-model", "qwen-test"]
        proc = run_cli(*args, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        qa_requests = [r for r in server.requests if "Score the candidate" not in r["messages"][-1]["content"]]
        assert len(qa_requests) == 6  # 3 examples, each answered invalid once then valid
        model = out / "models" / "mmrqa-model-lora"
        records = [json.loads(x) for x in (model / "dataset" / "train.hf.jsonl").read_text().splitlines()]
        kinds = [r["kind"] for r in records]
        assert kinds.count("grade") == 3 and len(kinds) == 3 + round(0.1 * 3 * 9)
        answer = next(r for r in records if r["kind"] == "grade")["messages"][-1]["content"][0]["text"]
        assert "LLM signal_effects for a" in answer and answer.startswith("Grade: ")
        manifest = json.loads((model / "dataset" / "manifest.json").read_text())
        assert {e["qa_source"] for e in manifest["examples"]} == {"llm:qwen-test"}
        n_before = len(server.requests)
        proc = run_cli(*args, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(server.requests) == n_before  # every QA answer came from the cache


def test_llm_judge_scores_narratives_and_skips_without_endpoint():
    from mmrqa_bids.train.lora.judge import judge

    items = [{"example_id": "a", "label": "Bad", "artifact": "motion",
              "reference": "Grade: Bad ...", "candidate": "Grade: Bad, motion ghosts."},
             {"example_id": "b", "label": "Good", "artifact": None,
              "reference": "Grade: Good ...", "candidate": ""}]
    assert judge(items, None, None) == {
        "skipped": "no judge endpoint configured (--llm-base-url and --llm-model)"}
    with FakeQALLM() as server:
        result = judge(items, server.base_url, "judge-model", n_calls=2)
        assert len(server.requests) == 2  # the unparsed answer is not sent
    assert result["unjudgeable_answers"] == 1 and result["n_calls"] == 2
    # (70 + 0) / 2 and (55 + 0) / 2: an answer without narrative scores 0
    assert result["mean"] == {"artifact_identification": 35.0, "diagnostic_relevance": 27.5}
    assert result["call_std_mean"] == {"artifact_identification": 0.0, "diagnostic_relevance": 0.0}
