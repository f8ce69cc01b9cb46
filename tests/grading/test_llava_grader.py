"""The local LLaVA-OneVision grader on the offline tiny model (random weights)."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmrqa_bids.grading.base import GraderError, GradeRequest
from mmrqa_bids.grading.llava import (LlavaGrader, adapter_checksum, check_adapter, check_model,
                                      label_token_ids, make_label_probe)
from mmrqa_bids.settings import Grading


def settings(model, **kw) -> Grading:
    return Grading(grader="llava", model=str(model), max_new_tokens=kw.pop("max_new_tokens", 6), **kw)


@pytest.fixture(scope="module")
def grader(tiny_llava_dir):
    return LlavaGrader.from_settings(settings(tiny_llava_dir, batch_size=4, device="cpu"))


def req(name: str, mosaic: Path | None, snr: float = 12.0) -> GradeRequest:
    return GradeRequest(bids_name=name, suffix="T1w", metrics={"snr1": snr, "cjv": 0.4}, mosaic=mosaic)


def test_check_reports_bad_models_and_adapters_in_one_line(tiny_llava_dir, tmp_path):
    with pytest.raises(GraderError, match="needs --model"):
        check_model(None)
    with pytest.raises(GraderError, match=r"nowhere: model folder not found"):
        check_model(str(tmp_path / "nowhere"))
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(GraderError, match="not a file"):
        check_model(str(tmp_path / "file.bin"))
    with pytest.raises(GraderError, match="missing config.json"):
        check_model(str(tmp_path))
    check_model(str(tiny_llava_dir))
    check_model("llava-hf/llava-onevision-qwen2-0.5b-ov-hf")  # hub ids are resolved at load
    with pytest.raises(GraderError, match="adapter folder not found"):
        check_adapter(tmp_path / "no_adapter")
    with pytest.raises(GraderError, match="missing adapter_config.json"):
        check_adapter(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(GraderError, match="adapter weights missing"):
        check_adapter(tmp_path)
    with pytest.raises(GraderError, match="adapter folder not found"):
        LlavaGrader.check(settings(tiny_llava_dir, adapter=tmp_path / "gone"))


def test_wrong_checkpoint_kind_is_a_grader_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "preprocessor_config.json").write_text("{}")
    with pytest.raises(GraderError, match="not LLaVA-OneVision"):
        LlavaGrader.from_settings(settings(tmp_path, device="cpu"))


def test_batch_grades_in_order_and_records_failures(grader, mosaic_png, tmp_path):
    grades = grader.grade([req("a", mosaic_png), req("b", tmp_path / "lost.png"),
                           req("c", mosaic_png, snr=3.0)])
    assert len(grades) == 3
    assert "lost.png: cannot read the mosaic" in grades[1].parse_error
    for grade in (grades[0], grades[2]):
        # random weights: the answer is recorded verbatim and marked unparseable
        assert grade.label is None and grade.raw is not None
        assert grade.parse_error.startswith("unparseable answer")
    assert set(grader.last_timings) == {"mosaic", "prompt", "generate", "parse"}
    prov = grader.provenance()
    assert prov["backend"] == "llava" and prov["adapter"] is None and prov["adapter_checksum"] is None
    assert prov["device"] == "cpu" and prov["dtype"] == "float32"


def test_left_padded_batch_matches_one_by_one(grader, mosaic_png):
    many = [req("a", mosaic_png, 12.0), req("b", mosaic_png, 123456.789), req("c", mosaic_png, 1.5)]
    batched = [g.raw for g in grader.grade(many)]
    single = [grader.grade([r])[0].raw for r in many]
    assert batched == single


def test_label_probe_reads_the_distribution_after_grade(grader):
    import torch

    tok = grader.processor.tokenizer
    ids = label_token_ids(tok)
    assert all(ids.values()) and not set.intersection(*ids.values())
    prompt = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
    rows = [prompt + tok.encode("Grade:", add_special_tokens=False),
            prompt + tok.encode("Quality", add_special_tokens=False)]
    width = max(map(len, rows))
    input_ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    probe = make_label_probe(tok, prompt_length=width - (len(rows[0]) - len(prompt)), batch=2)
    scores = torch.full((2, len(tok)), -30.0)
    medium = next(iter(ids["Medium"]))
    scores[:, medium] = 5.0
    scores[:, next(iter(ids["Bad"]))] = 5.0 - float(torch.log(torch.tensor(3.0)))
    # the probe works on the generated part: shift both rows so the prompt is common
    out = probe(input_ids, scores)
    assert torch.equal(out, scores)  # never changes generation
    got = probe.probabilities[0]
    assert got is not None and got["Medium"] == pytest.approx(0.75, abs=1e-3)
    assert got["Bad"] == pytest.approx(0.25, abs=1e-3) and got["Good"] < 1e-6
    assert probe.probabilities[1] is None


def test_adapter_is_applied_and_checksummed(tiny_llava_dir, tiny_adapter_dir, mosaic_png):
    import torch

    from mmrqa_bids.grading.llava import load_model

    base, processor, _ = load_model(str(tiny_llava_dir), device="cpu", dtype="float32")
    tuned, _, _ = load_model(str(tiny_llava_dir), tiny_adapter_dir, device="cpu", dtype="float32")
    ids = processor.tokenizer("Grade: Good", return_tensors="pt")
    with torch.inference_mode():
        assert not torch.allclose(base(**ids).logits, tuned(**ids).logits)
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update(name.encode())
        digest.update((tiny_adapter_dir / name).read_bytes())
    assert adapter_checksum(tiny_adapter_dir) == "sha256:" + digest.hexdigest()


def test_heavy_imports_stay_lazy():
    code = ("import sys\n"
            "import mmrqa_bids.cli.run, mmrqa_bids.grading.llava, mmrqa_bids.grading.openai_server\n"
            "from mmrqa_bids.cli.run import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'openai') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--max-new-tokens" in proc.stdout


@pytest.mark.slow
def test_cli_participant_with_llava_and_adapter(tiny_llava_dir, tiny_adapter_dir, small_bids, tmp_path):
    from mmrqa_bids.cli.run import main

    out = tmp_path / "out"
    rc = main([str(small_bids), str(out), "participant", "-w", str(tmp_path / "work"),
               "--grader", "llava", "--model", str(tiny_llava_dir), "--adapter", str(tiny_adapter_dir),
               "--batch-size", "2", "--device", "cpu", "--max-new-tokens", "6"])
    # random weights answer nonsense: every run is graded, recorded as unparsed (exit 1)
    assert rc == 1
    docs = sorted(out.glob("sub-*/anat/*_T1w.json"))
    assert len(docs) == 2
    for path in docs:
        doc = json.loads(path.read_text())
        prov = doc["provenance"]
        assert prov["backend"] == "llava" and prov["model_id"] == str(tiny_llava_dir)
        assert prov["adapter"] == str(tiny_adapter_dir)
        assert prov["adapter_checksum"] == adapter_checksum(tiny_adapter_dir)
        assert doc["grade"]["label"] is None and doc["parse_error"].startswith("unparseable answer")
        assert isinstance(doc["raw_answer"], str)
        assert prov["settings"]["grading"]["max_new_tokens"] == 6


def test_generation_failure_fails_the_batch_not_the_dataset(grader, mosaic_png, monkeypatch):
    def out_of_memory(**kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(grader.model, "generate", out_of_memory)
    grades = grader.grade([req("a", mosaic_png), req("b", mosaic_png)])
    assert [g.label for g in grades] == [None, None]
    assert all(g.parse_error == "generation failed: CUDA out of memory. Tried to allocate 2.00 GiB"
               for g in grades)


@pytest.mark.parametrize("extra, message", [
    (["--model", "/nonexistent/llava"],
     "/nonexistent/llava: model folder not found (and not a hub id like org/name)"),
    (["--adapter", "/nonexistent/lora"], "/nonexistent/lora: adapter folder not found"),
])
def test_cli_setup_errors_exit_2_before_any_run(tiny_llava_dir, small_bids, tmp_path, capsys, extra,
                                                message):
    from mmrqa_bids.cli.run import main

    argv = [str(small_bids), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w"),
            "--grader", "llava", "--model", str(tiny_llava_dir)] + extra
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mmrqa: error: {message}"
    assert not list((tmp_path / "out").glob("sub-*"))
